"""Fixtures shared by the test files."""

from __future__ import annotations

from pathlib import Path

import pytest
from _workflow import SMOKE_ARGS, copy_project, run_snakemake


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """One smoke run of the whole DAG per session (tests/configs/smoke.yaml, book included):
    the project folder it ran in. Tests read it; none may change its results."""
    proj = copy_project(tmp_path_factory.mktemp("smoke"))
    res = run_snakemake(SMOKE_ARGS, proj)
    assert res.returncode == 0, res.stderr[-4000:]
    return proj
