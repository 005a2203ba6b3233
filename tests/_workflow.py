"""Running the DAG from tests: a copy of the project in a temporary folder, and Snakemake in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ifl.config import REPO_ROOT

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "IFL_PYTHON": sys.executable}
SMOKE_ARGS = ("--cores", "2", "--configfile", "tests/configs/smoke.yaml")


def run_snakemake(args: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """Snakemake with ``args`` in ``cwd``, output captured."""
    return subprocess.run(
        SNAKEMAKE + list(args), cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout
    )


def copy_project(dst: Path) -> Path:
    """The files a run needs (workflow, notebooks, book sources, the presets' and the tests'
    configs) copied into ``dst``."""
    for name in (
        "Snakefile",
        "config.yaml",
        "config",
        "environment.yml",
        "workflow",
        "notebooks",
        "book",
        "slurm",
        "tests/configs",
    ):
        src = REPO_ROOT / name
        target = dst / name
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns("_build"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
    return dst
