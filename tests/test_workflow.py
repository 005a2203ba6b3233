"""The DAG as a whole: lint, the SLURM profile's dry run, and a smoke run on a tiny config."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from ifl.config import REPO_ROOT

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "IFL_PYTHON": sys.executable}


def _run(args: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        SNAKEMAKE + args, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout
    )


def _copy_project(dst: Path) -> Path:
    for name in (
        "Snakefile",
        "config.yaml",
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


def test_lint_is_clean():
    res = _run(["--lint", "--cores", "1"], REPO_ROOT)
    assert res.returncode == 0, res.stdout + res.stderr


def test_slurm_profile_dry_run_lists_jobs_with_resources(tmp_path):
    proj = _copy_project(tmp_path)
    res = _run(["-n", "--cores", "all", "--profile", "slurm"], proj)
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    assert re.search(r"^stage2\s+14$", out, re.MULTILINE), out[-3000:]
    assert "mem_mb=3000" in out and "runtime=30" in out


def test_remedies_can_be_left_out(tmp_path):
    """`remedies.enabled: false`: no remedy job, no remedies chapter, the rest of the DAG as is."""
    proj = _copy_project(tmp_path)
    (proj / "off.yaml").write_text("remedies: {enabled: false}\n")
    res = _run(["-n", "--cores", "1", "--configfile", "off.yaml"], proj)
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    assert "remedy_" not in out and "05_remedies" not in out
    assert re.search(r"^stage2\s+14$", out, re.MULTILINE) and "04_inside" in out


def test_bad_config_stops_before_any_job(tmp_path):
    proj = _copy_project(tmp_path)
    bad = proj / "bad.yaml"
    bad.write_text("grid:\n  - {llm: vicnua, vision: clip, data: en}\n")
    res = _run(["-n", "--cores", "1", "--configfile", str(bad)], proj)
    assert res.returncode != 0
    assert "grid[0].llm: 'vicnua' is not a backbone; allowed values: leo, vicuna, yi" in res.stderr
    assert not (proj / "results").exists() or not any((proj / "results").rglob("*.parquet"))


@pytest.mark.slow
def test_smoke_run_builds_the_book_and_is_idempotent(tmp_path):
    proj = _copy_project(tmp_path)
    args = ["--cores", "2", "--configfile", "tests/configs/smoke.yaml"]
    res = _run(args, proj)
    assert res.returncode == 0, res.stderr[-4000:]
    html = (proj / "book" / "_build" / "html" / "index.html").read_text(encoding="utf-8")
    summary = json.loads((proj / "results" / "smoke" / "summary.json").read_text())
    assert set(summary["fidelity"]) == {"leo-clip-en", "leo-clip-de"}
    assert "Headline figures" in html and "leo-clip-en" in html
    # Formulas render offline: MathJax is served from the book, not from a CDN.
    assert 'src="_static/mathjax/tex-chtml.js' in html and "cdn.jsdelivr" not in html
    assert (proj / "book" / "_build" / "html" / "_static" / "mathjax" / "tex-chtml.js").is_file()
    fid = pd.read_csv(proj / "results" / "smoke" / "tables" / "fidelity.csv")
    assert set(fid["condition"]) == {"image", "text"} and set(fid["language"]) == {"en", "de"}
    # Nothing changed: nothing to do.
    again = _run(args + ["-n"], proj)
    assert "Nothing to be done" in again.stdout + again.stderr
    # A notebook parameter reruns only that notebook and the book.
    cfg = (
        proj / "tests/configs/smoke.yaml"
    ).read_text() + "notebooks: {fidelity: {palette: deep}}\n"
    (proj / "tests/configs/smoke.yaml").write_text(cfg)
    dry = _run(args + ["-n", "--quiet", "rules"], proj)
    jobs = dry.stdout + dry.stderr
    assert re.search(r"^notebook\s+1$", jobs, re.MULTILINE) and re.search(
        r"^book\s+1$", jobs, re.MULTILINE
    )
    assert "stage2" not in jobs and "generate" not in jobs


TABLES = (
    "measured.parquet",
    "labelled.parquet",
    "tables/ifl.csv",
    "tables/design_effects.csv",
    "tables/fidelity.csv",
)


@pytest.mark.slow
def test_killed_run_resumes_to_identical_tables(tmp_path):
    """SIGKILL of snakemake and all its jobs mid-run; the rerun completes and matches a clean run."""
    clean = _copy_project(tmp_path / "clean")
    args = ["--cores", "2", "--configfile", "tests/configs/smoke.yaml", "--rerun-incomplete"]
    assert _run(args, clean).returncode == 0
    killed = _copy_project(tmp_path / "killed")
    proc = subprocess.Popen(
        SNAKEMAKE + args,
        cwd=killed,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    # Kill while training is under way (after the first checkpoints exist, before generation ends).
    while time.time() < deadline and not any((killed / "results/smoke/models").glob("stage1/*")):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "results/smoke/summary.json").exists()
    # What `make book` does before running: drop the lock a killed run left (no snakemake alive).
    assert (
        _run(
            ["--unlock", "--cores", "1", "--configfile", "tests/configs/smoke.yaml"], killed
        ).returncode
        == 0
    )
    res = _run(args, killed)
    assert res.returncode == 0, res.stderr[-3000:]
    for name in TABLES:
        a, b = clean / "results/smoke" / name, killed / "results/smoke" / name
        if name.endswith(".parquet"):
            pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b))
        else:
            assert a.read_bytes() == b.read_bytes(), name
