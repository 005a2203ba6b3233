"""The package's own imports, read from its source: which module imports which, the packages'
layers (the how-built page draws them), import cycles and private names used across modules.

A *package* here is a top-level part of ``ifl``: a subpackage (``ifl.world``, ``ifl.steering``,
...) or a top-level module (``ifl.lid``, ``ifl.generate``, ...); ``ifl`` itself is its
``__init__``. Every import statement counts, also those inside functions (the command line
imports the library lazily) and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import pandas as pd

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = "ifl"


@dataclass(frozen=True)
class Import:
    """One use of an ``ifl`` module by another: ``importer`` takes ``name`` from ``module``
    (``name`` None: the module itself, ``import ifl.x``)."""

    importer: str
    module: str
    name: str | None
    line: int


def module_names(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    out = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = [ROOT, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The absolute module of a ``from ... import`` (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def read_imports(package_dir: Path = PACKAGE_DIR) -> list[Import]:
    """Every import of an ``ifl`` module by a module of the package, and every attribute taken
    from a module bound by such an import (``from ifl import lid`` then ``lid.measure``)."""
    modules = module_names(package_dir)
    out = []
    for importer, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        bound: dict[str, str] = {}  # local name -> ifl module it refers to
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == ROOT:
                        out.append(Import(importer, alias.name, None, node.lineno))
                        if alias.asname:
                            bound[alias.asname] = alias.name
            elif isinstance(node, ast.ImportFrom):
                module = _resolve(node, importer, path.name == "__init__.py")
                if module.split(".")[0] != ROOT:
                    continue
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    if sub in modules:  # `from ifl import lid`: the module ifl.lid itself
                        out.append(Import(importer, sub, None, node.lineno))
                        bound[alias.asname or alias.name] = sub
                    else:
                        out.append(Import(importer, module, alias.name, node.lineno))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in bound
            ):
                out.append(Import(importer, bound[node.value.id], node.attr, node.lineno))
    return out


def is_private(name: str) -> bool:
    """``_name`` is private to its module; ``__dunder__`` names are not."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_imports(imports: list[Import]) -> list[Import]:
    """Uses of a module's private names (or of a private module) by another module."""
    return [
        i
        for i in imports
        if i.module != i.importer
        and (
            (i.name is not None and is_private(i.name))
            or any(is_private(part) for part in i.module.split("."))
        )
    ]


def package_of(module: str) -> str:
    """The top-level part of ``ifl`` a module belongs to (``ifl.steering.run`` -> ``steering``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ROOT


def module_graph(imports: list[Import]) -> nx.DiGraph:
    """Modules, with an edge from each module to every module it imports."""
    graph = nx.DiGraph()
    graph.add_nodes_from({i.importer for i in imports})
    graph.add_edges_from((i.importer, i.module) for i in imports if i.importer != i.module)
    return graph


def package_graph(imports: list[Import]) -> nx.DiGraph:
    """Packages, with an edge from each package to every other package it imports."""
    graph = nx.DiGraph()
    graph.add_nodes_from(package_of(m) for i in imports for m in (i.importer, i.module))
    graph.add_edges_from(
        (package_of(i.importer), package_of(i.module))
        for i in imports
        if package_of(i.importer) != package_of(i.module)
    )
    return graph


def cycles(graph: nx.DiGraph) -> list[list[str]]:
    """The import cycles: every group of nodes that import each other, sorted."""
    return sorted(sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1)


def layers(graph: nx.DiGraph) -> dict[str, int]:
    """Each node's layer: 0 when it imports no other node, else one above the highest node it
    imports. Raises ``ValueError`` naming a cycle, where layers do not exist."""
    found = cycles(graph)
    if found:
        raise ValueError(f"import cycle between {', '.join(found[0])}")
    out: dict[str, int] = {}
    for node in reversed(list(nx.topological_sort(graph))):
        out[node] = 1 + max((out[s] for s in graph.successors(node)), default=-1)
    return out


def package_layers(package_dir: Path = PACKAGE_DIR) -> pd.DataFrame:
    """The packages of ``ifl`` with their layer, kind (``subpackage``, ``module``, or ``root``
    for ``ifl/__init__.py``), number of modules and the packages each imports, bottom first."""
    modules = module_names(package_dir)
    graph = package_graph(read_imports(package_dir))
    graph.add_nodes_from(package_of(m) for m in modules)
    level = layers(graph)
    rows = []
    for name in graph.nodes:
        path = modules[ROOT if name == ROOT else f"{ROOT}.{name}"]
        kind = "subpackage" if path.name == "__init__.py" else "module"
        rows.append(
            {
                "package": name,
                "layer": level[name],
                "kind": "root" if name == ROOT else kind,
                "modules": sum(package_of(m) == name for m in modules),
                "imports": ", ".join(sorted(graph.successors(name))),
            }
        )
    return pd.DataFrame(rows).sort_values(["layer", "package"], ignore_index=True)
