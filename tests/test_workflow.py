"""The DAG as a whole: lint, the SLURM profile's dry run, and a smoke run on a tiny config."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pandas as pd
import pytest
from _workflow import ENV, SMOKE_ARGS, SNAKEMAKE
from _workflow import copy_project as _copy_project
from _workflow import run_snakemake as _run

from ifl.config import REPO_ROOT


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
def test_smoke_run_builds_the_book_and_is_idempotent(smoke_run):
    proj = smoke_run
    args = list(SMOKE_ARGS)
    book = proj / "book" / "_build" / "smoke" / "html"  # one book per run
    html = (book / "index.html").read_text(encoding="utf-8")
    summary = json.loads((proj / "results" / "smoke" / "summary.json").read_text())
    assert set(summary["fidelity"]) == {"leo-clip-en", "leo-clip-de"}
    assert "What this run found" in html and "Image-induced fidelity loss" in html
    assert "leo-clip-en" in (book / "headline_tables.html").read_text(encoding="utf-8")
    # Formulas render offline: MathJax is served from the book, not from a CDN.
    assert 'src="_static/mathjax/tex-chtml.js' in html and "cdn.jsdelivr" not in html
    assert (book / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert not (proj / "book" / "_build" / "html").exists()
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
def test_killed_run_resumes_to_identical_tables(tmp_path, smoke_run):
    """SIGKILL of snakemake and all its jobs mid-run; the rerun completes and matches a clean
    run (the session's smoke run). Both runs stop at the compared tables: the notebooks and the
    book after them are the smoke run's to check."""
    clean = smoke_run
    args = [*SMOKE_ARGS, "--rerun-incomplete", *(f"results/smoke/{name}" for name in TABLES)]
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
    assert not (killed / "results/smoke/tables/fidelity.csv").exists()  # killed before the end
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
