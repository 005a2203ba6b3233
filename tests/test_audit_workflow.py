"""The audit preset's DAG: the SLURM dry run lists one generation, one steering and one
hidden-state job per model with GPU resources from the config, config errors stop it in one
line, and (slow) rule `all` runs end to end on tiny random instances of nine families, from the
staged downloads to the chapter "Beyond LLaVA"."""

from __future__ import annotations

import json
import re

import nbformat
import pandas as pd
import pytest
import yaml
from _audit_fixtures import build, build_all
from _workflow import run_snakemake as _run
from test_paper_workflow import _annotate, _job_counts, proj  # noqa: F401

from ifl.config import REPO_ROOT
from ifl.models.families import TESTED

AUDIT = ["--configfile", "config/audit.yaml"]
TRAINING = ("compose", "stage1", "stage2", "remedy_mix", "remedy_train", "tokenizer", "instruct")


def _jobs(out: str, rule: str) -> list[str]:
    """The dry run's job blocks of ``rule``."""
    return [b for b in out.split("\n\n") if re.search(rf"^rule {rule}:$", b, re.MULTILINE)]


def test_slurm_dry_run_lists_jobs_per_model_with_gpus_from_the_config(proj):  # noqa: F811
    res = _run(["-n", "--cores", "all", "--profile", "slurm", *AUDIT], proj)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    counts = _job_counts(out)
    models = yaml.safe_load((proj / "config" / "audit.yaml").read_text(encoding="utf-8"))["models"]
    n = len(models)
    for rule in ("generate", "steer", "audit_states"):
        assert counts.get(rule) == n, (rule, counts.get(rule))
    assert counts["stage"] == n + 6  # the models, GlotLID, NLLB and the four benchmarks
    assert counts["gold_sample"] == counts["gold_annotate"] == 1  # annotation is the default
    assert not set(TRAINING) & set(counts) and "organism_report" not in counts
    # GPUs per job from the config: resources.gpu_generate, or a model's own `gpus`.
    for rule in ("generate", "steer", "audit_states"):
        jobs = _jobs(out, rule)
        big = [j for j in jobs if "Mistral-Small" in j]
        assert len(big) == 1 and re.search(r"\bgpu=2\b", big[0]) and "mem_mb=128000" in big[0]
        assert all(re.search(r"\bgpu=1\b", j) and "mem_mb=64000" in j for j in jobs if j not in big)
    assert "paper-generate --model resources/models/Qwen/Qwen2.5-VL-7B-Instruct" in out
    assert "paper-stage --repo-type model --repo-id google/gemma-3-12b-it" in out


def test_without_gold_sample_the_dag_has_no_annotation(proj):  # noqa: F811
    cfg = yaml.safe_load((proj / "config" / "audit.yaml").read_text(encoding="utf-8"))
    cfg["gold"]["enabled"] = False
    (proj / "nogold.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    res = _run(["-n", "--cores", "1", "--configfile", "nogold.yaml"], proj)
    assert res.returncode == 0, res.stderr[-3000:]
    counts = _job_counts(res.stdout + res.stderr)
    assert "gold_sample" not in counts and "gold_annotate" not in counts
    assert counts["labelled"] == counts["audit_table"] == 1


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c["models"].append("./nowhere"), "no checkpoint (config.json) in folder './nowhere'"),
        (lambda c: c["steering"].update(models=["gpt-4o"]), "steering.models: 'gpt-4o' is not a model of this run"),
    ],
)  # fmt: skip
def test_bad_audit_config_stops_before_any_job(proj, edit, expected):  # noqa: F811
    """Checked when the DAG is parsed (the other model-list errors: tests/test_audit.py)."""
    cfg = yaml.safe_load((proj / "config" / "audit.yaml").read_text(encoding="utf-8"))
    edit(cfg)
    (proj / "bad.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    res = _run(["-n", "--cores", "1", "--configfile", "bad.yaml"], proj)
    assert res.returncode != 0
    assert expected in res.stderr, res.stderr[-2000:]


def _stage_benchmarks(resources) -> None:
    """The stand-ins of the audit's non-model assets: NLLB, GlotLID and the four benchmarks."""
    from _paper_fixtures import (
        _stage,
        build_glotlid,
        build_maxm,
        build_multiq,
        build_palo,
        build_translator,
        build_visit,
    )

    from ifl.download import DATASET_ASSETS, GLOTLID, model_asset

    _stage(model_asset("facebook/nllb-200-distilled-1.3B"), resources, build_translator)
    _stage(GLOTLID, resources, lambda p: build_glotlid(p / "model_v3.bin"))
    for key, builder in (("maxm", lambda p: build_maxm(p, per_split=2)), ("llava-w", build_palo),
                         ("visit", build_visit), ("multiq", lambda p: build_multiq(p, 2))):  # fmt: skip
        _stage(DATASET_ASSETS[key], resources, builder)


@pytest.mark.slow
def test_whole_audit_dag_runs_on_nine_families(proj):  # noqa: F811
    """Rule `all` of the audit preset on tiny random checkpoints of nine families (eight
    staged as hub repositories, LLaVA as a local folder), two languages: translation, tasks,
    generation in both conditions, GlotLID, the judge, the gold sheet (stopping until it is
    annotated), DSL, steering of every model, hidden states, CKA between every pair, the
    projections, the chapter and the book."""
    resources = proj / "resources"
    _stage_benchmarks(resources)
    # SmolVLM is Idefics3's architecture with a video processor (tests/test_families.py)
    hub = build_all(resources, [f for f in TESTED if f not in ("llava", "smolvlm")])
    build("llava", proj / "local" / "llava")
    cfg = yaml.safe_load((REPO_ROOT / "config" / "audit.yaml").read_text(encoding="utf-8"))
    cfg.update(run_name="audit-smoke", device="cpu", threads=1, languages=["en", "zh"])
    cfg["models"] = ["./local/llava", *hub.values()]
    cfg["datasets"]["VisIT"]["translate_to"] = ["zh"]
    cfg["translation"].update(batch_size=8, max_length=32)
    cfg["generate"].update(
        batch_size=8, max_new_tokens={b: 3 for b in cfg["generate"]["max_new_tokens"]}
    )
    cfg["judge"] = {"kind": "reference"}  # GPT-4o is out of reach; any judge is a proxy to DSL
    cfg["gold"].update(size=120, sheet="annotated.csv")
    cfg["dsl"] = {"folds": 2, "splits": 1, "learner": "logistic"}
    cfg["steering"].update(cka_images=6, projection="tsne", projection_points=12)
    (proj / "smoke.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    run = proj / "results" / "audit-smoke"
    args = ["--cores", "2", "--configfile", "smoke.yaml"]

    # Everything but the estimates runs; then the DAG stops at the unannotated gold sheet.
    res = _run([*args, "--keep-going"], proj, timeout=900)
    assert res.returncode != 0
    assert "annotate results/audit-smoke/gold/sheet.csv" in res.stderr, res.stderr[-4000:]
    _annotate(run / "gold" / "sheet.csv", proj / "annotated.csv")
    res = _run(args, proj, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]

    names = ["llava", *(h.split("/")[1] for h in hub.values())]
    measured = pd.read_parquet(run / "measured.parquet")
    assert sorted(set(measured["model"])) == sorted(names)
    both = measured[measured["benchmark"] != "MultiQ"].groupby("model")["condition"].nunique()
    assert (both == 2).all()  # every model answered with and without the image
    labels = measured.loc[measured["reply"] != "", "lid_label"]  # an empty reply has none
    assert len(labels) and labels.str.match(r"[a-z]{3}_[A-Z][a-z]{3}$").all()  # GlotLID
    # Prompts in each family's own format: Qwen's image placeholder, Gemma's turns, none in text.
    qwen = measured[(measured["model"] == "qwen2_5_vl")]
    assert (
        qwen.loc[qwen["condition"] == "image", "prompt"]
        .str.contains("<|image_pad|>", regex=False)
        .all()
    )
    assert not qwen.loc[qwen["condition"] == "text", "prompt"].str.contains("image_pad").any()
    gemma = measured[measured["model"] == "gemma3"]["prompt"]
    assert gemma.str.startswith("<start_of_turn>user\n").all()
    table5 = pd.read_csv(run / "tables" / "steering_table5.csv")
    assert set(table5["model"]) == set(names) and table5["primary"].any()
    for name in names:  # hidden states of every model, with its family
        facts = json.loads((run / "inside" / name / "facts.json").read_text(encoding="utf-8"))
        assert facts["family"] == name and facts["image_tokens"] > 0
    cka = pd.read_csv(run / "tables" / "cka.csv")
    pairs = cka[["model_a", "model_b"]].drop_duplicates()
    assert len(pairs) == len(names) * (len(names) - 1) // 2
    assert set(pd.read_csv(run / "tables" / "projection.csv")["model"]) == set(names)
    audit = pd.read_csv(run / "tables" / "audit.csv")
    ours = audit[audit["source"] == "this run"]
    assert ours["model"].tolist() == names and (ours["method"] == "dsl").all()
    assert (
        ours[["ifl", "ifl_ci_low", "fidelity_image", "fidelity_text", "steer_diff"]]
        .notna()
        .all()
        .all()
    )
    assert set(audit.loc[audit["source"] != "this run", "model"]) == {
        "LLaVA-1.5-7B (paper)", "LLaVA-1.5-13B (paper)"}  # fmt: skip
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert set(summary["beyond_llava"]) == set(names)
    html = proj / "book" / "_build" / "audit-smoke" / "html"  # the book of this run
    pages = {p.stem for p in (html / "notebooks").glob("*.html")}
    assert pages == {"01_fidelity", "02_prevalence", "04_inside", "06_beyond_llava", "99_how_built"}
    chapter = (html / "notebooks" / "06_beyond_llava.html").read_text(encoding="utf-8")
    assert "DSL estimates" in chapter and "qwen3_vl" in chapter
    log = (proj / "logs" / "audit-smoke" / "book.log").read_text(encoding="utf-8")
    assert "build succeeded" in log and "WARNING" not in log, log[-3000:]
    assert "Nothing to be done" in _run([*args, "-n"], proj).stdout


def test_chapter_says_plainly_that_proxy_estimates_are_not_debiased(tmp_path):
    """Without a gold sample the chapter reports the LID proxy's estimates and says that they
    are not debiased (the chapter run on hand-made tables of that form)."""
    from ifl.notebook import execute

    rows = []
    for i, model in enumerate(["a", "b"]):
        rows.append({"model": model, "source": "this run", "method": "naive_proxy",
                     "family": "llava", "processor": "official", "layers": 2, "steer_layer": 1,
                     "ifl": -0.1 * i, "ifl_ci_low": -0.2, "ifl_ci_high": 0.1,
                     "fidelity_image": 0.5, "fidelity_text": 0.6, "ifl_cells": -0.1,
                     "ifl_remedy": 0.0, "steer_diff": 0.1, "steer_diff_ci_low": 0.0,
                     "steer_diff_ci_high": 0.2, "languages_sd": 0.1, "q_p": 0.5, "i2": 0.0})  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "audit.csv", index=False)
    pd.DataFrame({"model": ["a", "b"], "language": ["zh", "zh"], "estimate": [-0.1, 0.0],
                  "method": "naive_proxy", "source": "this run"}).to_csv(tmp_path / "lang.csv", index=False)  # fmt: skip
    for name in ("cka", "points", "gaps", "steer"):
        (tmp_path / f"{name}.csv").write_text("", encoding="utf-8")
    out = tmp_path / "out.ipynb"
    execute(REPO_ROOT / "notebooks" / "06_beyond_llava.ipynb", out, {
        "audit_csv": str(tmp_path / "audit.csv"), "languages_csv": str(tmp_path / "lang.csv"),
        "cka_csv": str(tmp_path / "cka.csv"), "projection_csv": str(tmp_path / "points.csv"),
        "gap_csv": str(tmp_path / "gaps.csv"), "by_language_csv": str(tmp_path / "steer.csv"),
        "paper_dir": str(REPO_ROOT / "book" / "data" / "paper")})  # fmt: skip
    shown = " ".join(
        str(o.get("data", {}).get("text/markdown", "")) + str(o.get("text", ""))
        for cell in nbformat.read(out, 4).cells
        for o in cell.get("outputs", [])
    )
    assert "it is not debiased" in shown and "DSL estimates" not in shown
