"""The package's import graph (ifl.imports): its packages import one way, no module uses another
module's private names; the walker itself on small packages with a known answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from ifl.imports import (
    cycles,
    layers,
    module_graph,
    package_graph,
    package_layers,
    private_imports,
    read_imports,
)


def test_the_packages_of_ifl_import_one_way():
    imports = read_imports()
    assert cycles(package_graph(imports)) == []
    assert cycles(module_graph(imports)) == []


def test_no_module_of_ifl_uses_another_modules_private_names():
    assert private_imports(read_imports()) == []


def test_the_layers_put_every_package_above_what_it_imports():
    table = package_layers()
    level = dict(zip(table["package"], table["layer"], strict=True))
    for row in table.itertuples():
        for dep in filter(None, row.imports.split(", ")):
            assert level[dep] < row.layer, (row.package, dep)
    assert level["ifl"] == 0 and level["cli"] == table["layer"].max()
    assert {"world", "data", "train", "steering", "represent", "cli"} <= set(level)


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "ifl" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "ifl"


def test_a_cycle_and_private_names_are_found(tmp_path: Path):
    pkg = _package(
        tmp_path,
        {
            "__init__.py": "",
            "a/__init__.py": "",
            "a/x.py": "from ifl.b.y import _helper\n\ndef f():\n    from ifl import c\n    c._g()\n",
            "b/__init__.py": "",
            "b/y.py": "from . import z\nfrom ifl.a import x\n\ndef _helper():\n    return x.__name__\n",
            "b/z.py": "from ..c import public\n",
            "c.py": "import ifl\n\ndef public():\n    pass\n\ndef _g():\n    pass\n",
        },
    )
    imports = read_imports(pkg)
    assert {(i.importer, i.module, i.name) for i in private_imports(imports)} == {
        ("ifl.a.x", "ifl.b.y", "_helper"),
        ("ifl.a.x", "ifl.c", "_g"),
    }  # x.__name__ is no private name
    assert cycles(package_graph(imports)) == [["a", "b"]]
    assert cycles(module_graph(imports)) == [["ifl.a.x", "ifl.b.y"]]
    assert ("ifl.b.z", "ifl.c") in module_graph(imports).edges  # relative imports resolved
    with pytest.raises(ValueError, match="import cycle between a, b"):
        layers(package_graph(imports))


def test_layers_are_the_longest_import_chain_below(tmp_path: Path):
    pkg = _package(
        tmp_path,
        {
            "__init__.py": "X = 1\n",
            "base.py": "from ifl import X\n",
            "mid/__init__.py": "",
            "mid/m.py": "from ifl.base import X\n",
            "top.py": "from ifl import X\nfrom ifl.mid import m\n",
            "alone.py": "",
        },
    )
    table = package_layers(pkg).set_index("package")
    assert table["layer"].to_dict() == {"ifl": 0, "alone": 0, "base": 1, "mid": 2, "top": 3}
    assert table.loc["mid", "kind"] == "subpackage" and table.loc["mid", "modules"] == 2
    assert table.loc["top", "imports"] == "ifl, mid" and table.loc["ifl", "kind"] == "root"
