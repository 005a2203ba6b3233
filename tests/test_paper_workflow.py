"""The paper preset's DAG: the SLURM profile's dry run lists the whole study with GPU resources,
staged downloads are not redone, config errors stop it before any job, and (slow) rule `all`
runs end to end on tiny staged stand-ins, book included."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from _workflow import copy_project
from _workflow import run_snakemake as _run

PAPER = ["--configfile", "config/paper.yaml"]
# Jobs per rule of the paper preset: 4 released VLMs + 14 grid VLMs, 8 shards each; 16 NLLB
# shards for each of VisIT-Bench's 9 languages and the grid's zh and de instructions (which the
# remedies reuse); 18 hub repositories (4 VLMs, 3 LLMs, 2 encoders, NLLB, GlotLID, 4 benchmarks,
# 2 training sets, the remedies' text data). Remedies: 9 trained variants (text 10/25 %, LRM-LLaVA's
# four task sets at 100 % and the set `all` at 40/70/150 %) and 4 merges, 8 shards of replies each.
EXPECTED = {
    "stage": 18,
    "visit": 1,
    "segments_visit": 1,
    "segments_instruct": 1,
    "translate": 16 * (9 + 2),
    "instruct": 2,
    "tasks": 1,
    "compose": 6,
    "stage1": 6,
    "stage2": 14,
    "generate": (4 + 14) * 8,
    "measure": 1,
    "judge": 1,
    "gold_sample": 1,
    "gold_annotate": 1,
    "labelled": 1,
    "prevalence": 1,
    "fidelity_table": 1,
    "steer": 6,  # the grid VLMs trained on English data
    "steer_sweep": 1,
    "cka": 1,
    "corpus": 1,
    "projection": 1,
    "notebook": 6,  # no organism chapter
    "summary": 1,
    "rulegraph": 1,
    "book": 1,
    "remedy_mix": 9,
    "remedy_train": 9,
    "remedy_merge": 4,
    "remedy_generate": 13 * 8,
    "remedy_base_generations": 1,
    "remedy_gold_sample": 1,
    "remedy_gold_annotate": 1,
    "remedy_label": 1,
    "remedy_tables": 1,
    "remedy_gap": 1,
}
ORGANISM_ONLY = ("tokenizer", "pretrain_llm", "pretrain_vision", "organism_report", "instruct_en")


@pytest.fixture
def proj(tmp_path) -> Path:
    """A copy of the project to run a preset in."""
    return copy_project(tmp_path)


def _job_counts(out: str) -> dict[str, int]:
    table = out[out.index("Job stats:") :]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


def test_paper_rules_lint_clean(proj):
    res = _run(["--lint", "--cores", "1", *PAPER], proj)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


def test_slurm_dry_run_lists_the_paper_dag(proj):
    res = _run(["-n", "--cores", "all", "--profile", "slurm", *PAPER], proj)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout + res.stderr
    counts = _job_counts(out)
    for rule, n in EXPECTED.items():
        assert counts.get(rule) == n, (rule, counts.get(rule), n)
    assert not set(ORGANISM_ONLY) & set(counts)
    # No organism chapter: the chapters are numbered from 1 all the same.
    for name, number in (("01_fidelity", 1), ("02_prevalence", 2), ("05_remedies", 5)):
        assert re.search(
            rf"notebook notebooks/{name}\.ipynb .* -p chapter {number}( |$)", out, re.M
        )
    # 8-GPU training through accelerate, one GPU per generation / translation shard
    stage2 = out[out.index("rule stage2:") :]
    stage2 = stage2[: stage2.index("\n\n")]
    assert "gpu=8" in stage2 and "mem_mb=480000" in stage2 and "runtime=1800" in stage2
    assert "-m accelerate.commands.launch --num_processes 8" in stage2
    generate = out[out.index("rule generate:") :]
    assert "gpu=1" in generate[: generate.index("\n\n")]
    # remedies: trained like stage 2, from the reference VLM's stage-1 checkpoint
    train = out[out.index("rule remedy_train:") :]
    train = train[: train.index("\n\n")]
    assert "gpu=8" in train and "-m accelerate.commands.launch --num_processes 8" in train
    assert "paper-remedy-train --model results/paper/models/stage1/vicuna-clip" in train
    mix = re.search(r"paper-remedy-mix --variant tasks-all-100 .*", out)[0]
    assert (
        "--translation zh results/paper/data/instruct-zh.json" in mix and "--base-data" not in mix
    )
    assert (
        "remedies-merge --vlm results/paper/models/vlm/vicuna-clip-en --llm resources/models/lmsys/vicuna-7b-v1.5"
        in out
    )
    assert re.search(
        r"paper-generate --model results/paper/remedies/vlm/text-10 --remedies-eval", out
    )
    assert "paper-stage --repo-type dataset --repo-id CohereForAI/aya_dataset" in out
    # downloads stage under resources/ and name the repository
    assert "resources/models/llava-hf/llava-1.5-7b-hf/.ifl-staged.json" in out
    assert "paper-stage --repo-type model --repo-id cis-lmu/glotlid" in out


def test_staged_downloads_are_not_redone(proj):
    from ifl.config import load
    from ifl.download import mark_staged
    from ifl.paper import assets

    cfg = load(proj / "config" / "paper.yaml")
    for asset in assets(cfg).values():  # what the login node left behind
        mark_staged(asset, proj / "resources")
    # the target goes first: --configfile takes every word after it as a file
    res = _run(["download", "-n", "--cores", "1", *PAPER], proj)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "Nothing to be done" in res.stdout + res.stderr
    res = _run(["-n", "--cores", "1", *PAPER], proj)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "stage" not in _job_counts(res.stdout + res.stderr)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda c: c["models"].update({"llava-9b": {"registry": "llava-9b"}}),
            "unknown model 'llava-9b'",
        ),
        (lambda c: c["backbones"]["yi"].pop("hub_id"), "backbones.yi: 'hub_id' is a required"),
        (
            lambda c: c["models"].update({"vicuna": {"registry": "llava-1.5-7b"}}),
            "name 'vicuna' is used in both models and backbones",
        ),
        (
            lambda c: c["training"]["stage2"].update(deepspeed="zero4"),
            "training.stage2.deepspeed: 'zero4' is not allowed",
        ),
        (
            lambda c: c["remedies"].pop("text_data"),
            "remedy variant 'text-10' mixes in text-only multilingual data: set remedies.text_data",
        ),
        (
            lambda c: c["remedies"]["text_data"]["columns"].update(response=None),
            "remedies.text_data.columns.response: None should be of type string",
        ),
    ],
)
def test_bad_paper_config_stops_before_any_job(proj, edit, expected):
    cfg = yaml.safe_load((proj / "config" / "paper.yaml").read_text(encoding="utf-8"))
    edit(cfg)
    bad = proj / "bad.yaml"
    # a complete file: Snakemake would merge the organism's backbones under a partial one
    bad.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    (proj / "config.yaml").write_text(bad.read_text(encoding="utf-8"), encoding="utf-8")
    res = _run(["-n", "--cores", "1", "--configfile", "bad.yaml"], proj)
    assert res.returncode != 0
    assert expected in res.stderr, res.stderr[-2000:]
    assert not (proj / "results").exists() or not any((proj / "results").rglob("*.parquet"))


def _annotate(sheet: Path, out: Path) -> None:
    """What the human annotators of appendix B do, done by a script: answer the three questions
    of every row of the exported sheet (a MultiQ row has no ground truth: correct = NA)."""
    import pandas as pd

    rows = pd.read_csv(sheet, dtype=str, keep_default_na=False)
    rows["answer_language"] = "english"  # the random stand-ins babble English words
    rows["matches_gold"] = (rows["language"] == "en").map({True: "true", False: "false"})
    rows["correct"] = [
        "na" if not ref else ("true" if i % 2 else "false")
        for i, ref in enumerate(rows["reference"])
    ]
    rows.to_csv(out, index=False)


@pytest.mark.slow
def test_whole_paper_dag_runs_on_stand_ins(proj):
    """Rule `all` of the paper preset on tiny staged stand-ins, on the CPU: translation, tasks,
    composing, both training stages, generation of a released and two grid VLMs, GlotLID, the
    judge, the gold sheet (stopping until it is annotated), DSL, steering, CKA, the 2-D
    projection, the notebooks and the book; and the remedies: a task-instruction and a text
    variant mixed and trained, a merge, their replies, the remedies' own gold sheet, the table
    and the modality gap. About four minutes on two cores."""
    import json

    import pandas as pd
    from _paper_fixtures import build_resources
    from test_paper_commands import _config

    resources = proj / "resources"
    build_resources(resources)
    cfg = _config(resources, resources_dir="resources")
    cfg["training_data"]["instruct"]["image_root"] = "resources/datasets/llava-images"
    cfg["models"] = {"llava-1.5-7b": {"registry": "llava-1.5-7b"}}
    cfg["grid"] = [{"llm": "vicuna", "vision": "clip", "data": d} for d in ("en", "de")]
    cfg["lid"]["model"] = "resources/models/cis-lmu/glotlid/model_v3.bin"
    cfg["run_name"] = "paper-smoke"
    cfg["judge"] = {"kind": "reference"}  # GPT-4o is out of reach; any judge is a proxy to DSL
    cfg["gold"].update(size=80, sheet="annotated.csv")  # of ~140 replies: every cell has labels
    cfg["dsl"].update(folds=2, splits=1)
    # One variant of each remedy, German only (the grid's translation of mix665k is reused).
    cfg["remedies"].update(
        languages=["de"], text_ratios=[0.25], merge_alphas=[0.5], non_english_shares=[],
        task_sets={"all": ["mvqa", "epvqa", "bvqa"]}, gold_size=40,
        gold_sheet="remedies-annotated.csv", gap={"variants": ["base", "tasks-all-100"], "max_points": 20},
    )  # fmt: skip
    (proj / "smoke.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    run = proj / "results" / "paper-smoke"
    args = ["--cores", "2", "--configfile", "smoke.yaml"]

    # Both gold sheets are exported, then the DAG stops: nobody has annotated them yet.
    res = _run([*args, "--keep-going"], proj, timeout=900)
    assert res.returncode != 0
    assert "annotate results/paper-smoke/gold/sheet.csv" in res.stderr, res.stderr[-4000:]
    assert "save the completed sheet at annotated.csv" in res.stderr
    assert "annotate results/paper-smoke/remedies/gold/sheet.csv" in res.stderr, res.stderr[-4000:]
    assert "save the completed sheet at remedies-annotated.csv" in res.stderr
    _annotate(run / "gold" / "sheet.csv", proj / "annotated.csv")
    _annotate(run / "remedies" / "gold" / "sheet.csv", proj / "remedies-annotated.csv")
    res = _run(args, proj, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]

    measured = pd.read_parquet(run / "measured.parquet")
    assert set(measured["model"]) == {"llava-1.5-7b", "vicuna-clip-en", "vicuna-clip-de"}
    assert {"lid_label", "fidelity_proxy"} <= set(measured.columns)
    assert measured["lid_label"].str.match(r"[a-z]{3}_[A-Z][a-z]{3}$").all()  # GlotLID
    assert (run / "models" / "vlm" / "vicuna-clip-de" / "model.safetensors").is_file()
    # MultiQ (image: null) is asked in the text condition only: it is in the gold sample, in
    # the labelled table and in fidelity.csv, but has no IFL (nothing to compare it with).
    labelled = pd.read_parquet(run / "labelled.parquet")
    multiq = labelled[labelled["benchmark"] == "MultiQ"]
    assert len(multiq) and set(multiq["condition"]) == {"text"}
    assert "MultiQ" in set(pd.read_parquet(run / "gold" / "sample.parquet")["benchmark"])
    fidelity = pd.read_csv(run / "tables" / "fidelity.csv")
    assert set(fidelity.loc[fidelity["benchmark"] == "MultiQ", "condition"]) == {"text"}
    ifl = pd.read_csv(run / "tables" / "ifl.csv")
    assert set(ifl["benchmark"]) == {"MaXM", "LLaVA-W", "VisIT"}
    assert set(ifl["model"]) == set(measured["model"]) and ifl["estimate"].notna().all()
    design = pd.read_csv(run / "tables" / "design_effects.csv")
    assert {"Image", "Data"} <= set(design.loc[design["language"] == "de", "term"])
    # Steering ran on the English-trained grid VLM, whose word tokenizer has the instructions.
    table5 = pd.read_csv(run / "tables" / "steering_table5.csv")
    assert set(table5["model"]) == {"vicuna-clip-en"} and table5["primary"].any()
    assert len(pd.read_csv(run / "tables" / "steering_sweep.csv"))
    cka = pd.read_csv(run / "tables" / "cka.csv")
    assert set(cka[["model_a", "model_b"]].iloc[0]) == {"vicuna-clip-en", "vicuna-clip-de"}
    assert len(pd.read_csv(run / "tables" / "projection.csv"))
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert {"fidelity", "prevalence", "steering", "remedies"} <= set(summary)
    assert "organism" not in summary
    # The book: the paper preset's six chapters, no organism entry, no warning.
    html = proj / "book" / "_build" / "paper-smoke" / "html"  # the book of this run
    pages = {p.stem for p in (html / "notebooks").glob("*.html")}
    assert pages == {"01_fidelity", "02_prevalence", "03_design_effects", "04_inside",
                     "05_remedies", "99_how_built"}  # fmt: skip
    assert "00_organism" not in (html / "index.html").read_text(encoding="utf-8")
    log = (proj / "logs" / "paper-smoke" / "book.log").read_text(encoding="utf-8")
    assert "build succeeded" in log and "WARNING" not in log, log[-3000:]
    how = (html / "notebooks" / "99_how_built.html").read_text(encoding="utf-8")
    assert "stage2" in how and "translate" in how  # job counts per rule
    assert "replication_ifl" in (html / "notebooks" / "03_design_effects.html").read_text(
        encoding="utf-8"
    )
    # The remedies: every variant answered the evaluation subset and has DSL estimates from the
    # annotated sheet; the mixes hold what the config asks for.
    variants = {"base", "text-25", "merge-50", "tasks-all-100"}
    remedies = pd.read_csv(run / "tables" / "remedies.csv")
    methods = set(remedies["method"])
    assert set(remedies["variant"]) == variants
    assert {"dsl", "naive_proxy"} <= methods and "oracle" not in methods
    labelled = pd.read_parquet(run / "remedies" / "labelled.parquet")
    assert labelled["fidelity_gold"].notna().sum() > 0
    assert "MultiQ" not in set(labelled["benchmark"])
    gap = pd.read_csv(run / "tables" / "remedies_gap.csv")
    assert set(gap["variant"]) == {"base", "tasks-all-100"}
    mixes = run / "remedies" / "mixes"
    mix = json.loads((mixes / "tasks-all-100.json").read_text(encoding="utf-8"))
    assert {ex["language"] for ex in mix if ex["source"] in ("mvqa", "epvqa", "bvqa")} == {"de"}
    text = json.loads((mixes / "text-25.json").read_text(encoding="utf-8"))
    assert sum(ex["source"] == "text_ml" for ex in text) == 2  # round(5 x 0.25 / 0.75)
    assert (run / "remedies" / "merged" / "merge-50" / "merge.json").is_file()
    assert (proj / "resources" / "datasets" / "CohereForAI" / "aya_dataset").is_dir()

    # Nothing changed: nothing to do.
    again = _run([*args, "-n"], proj)
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
