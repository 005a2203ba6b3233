"""The paper preset's subcommands (ifl.cli.paper_*) chained on tiny staged stand-ins, on the
CPU: what the rules of workflow/rules/paper_*.smk run, in their order, in one process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from _paper_fixtures import build_resources

from ifl.cli import main
from ifl.config import REPO_ROOT, load

torch.set_num_threads(1)
LANGS = ["en", "de", "zh"]


def _config(resources: Path, **overrides) -> dict:
    """config/paper.yaml shrunk to the stand-ins: CPU, three languages, a step per stage."""
    cfg = yaml.safe_load((REPO_ROOT / "config" / "paper.yaml").read_text(encoding="utf-8"))
    cfg.update(resources_dir=str(resources), device="cpu", threads=1, languages=LANGS)
    cfg["datasets"]["VisIT"]["translate_to"] = ["de", "ar"]  # ar is not in LANGS: skipped
    cfg["training_data"]["instruct"]["image_root"] = str(resources / "datasets" / "llava-images")
    cfg["translation"].update(shards=1, batch_size=8, max_length=32)
    small = {"batch_size": 2, "per_device_batch_size": 1, "max_steps": 1, "warmup_ratio": 0.0}
    small["deepspeed"] = "none"
    cfg["training"].update(max_length=128, bf16=False, gradient_checkpointing=False)
    cfg["training"]["stage1"].update(small)
    cfg["training"]["stage2"].update(small)
    cfg["generate"].update(batch_size=4, shards=1)
    cfg["generate"]["max_new_tokens"] = {b: 3 for b in ("MaXM", "LLaVA-W", "VisIT", "MultiQ")}
    cfg["steering"] = {"cka_images": 4}
    cfg.update(overrides)
    return cfg


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """``run(*args)`` calls ``ifl --config <paper test config> *args`` and checks it succeeded."""
    root = tmp_path_factory.mktemp("paper")
    build_resources(root / "resources")
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(_config(root / "resources")), encoding="utf-8")
    load(path)  # valid

    def _run(*args: str) -> Path:
        assert main(["--config", str(path), *args]) == 0, args
        return root

    _run.root = root
    return _run


@pytest.fixture(scope="module")
def tasks(run):
    out = run.root
    run("paper-visit", "--out", f"{out}/visit-en.parquet", "--image-dir", f"{out}/visit-images")
    run("paper-segments", "--corpus", "visit", "--visit", f"{out}/visit-en.parquet",
        "--out", f"{out}/visit-seg.parquet")  # fmt: skip
    shard = f"{out}/translate/visit/de/shard-0.parquet"
    run("paper-translate", "--segments", f"{out}/visit-seg.parquet", "--lang", "de",
        "--shard", "0", "--shards", "1", "--out", shard)  # fmt: skip
    run("paper-tasks", "--visit", f"{out}/visit-en.parquet", "--visit-shards", shard,
        "--out", f"{out}/tasks.parquet", "--image-dir", f"{out}/images")  # fmt: skip
    return pd.read_parquet(f"{out}/tasks.parquet")


def test_tasks_of_the_four_benchmarks_with_translated_visit(tasks):
    counts = tasks.groupby(["benchmark", "language"]).size().to_dict()
    assert counts[("MaXM", "en")] == 3 and counts[("MaXM", "zh")] == 3  # MaXM has no German
    assert counts[("LLaVA-W", "zh")] == 4 and ("LLaVA-W", "de") not in counts
    assert counts[("VisIT", "en")] == counts[("VisIT", "de")] == 3  # multi-image row dropped
    assert ("VisIT", "zh") not in counts  # not in datasets.VisIT.translate_to here
    assert {"en", "de", "zh"} == set(tasks.loc[tasks["benchmark"] == "MultiQ", "language"])
    assert tasks.loc[tasks["benchmark"] == "MultiQ", "image"].isna().all()  # image: null
    de = tasks[(tasks["benchmark"] == "VisIT") & (tasks["language"] == "de")]
    en = tasks[(tasks["benchmark"] == "VisIT") & (tasks["language"] == "en")]
    assert (de["question"].to_numpy() != en["question"].to_numpy()).all()  # translated
    assert set(de["image"]) == set(en["image"])  # same images


def test_released_vlm_answers_in_its_own_format(run, tasks):
    out = run.root
    run("paper-generate", "--model", "llava-1.5-7b", "--tasks", f"{out}/tasks.parquet",
        "--shard", "0", "--shards", "1", "--name", "llava-1.5-7b", "--out", f"{out}/gen.parquet")  # fmt: skip
    gen = pd.read_parquet(f"{out}/gen.parquet")
    assert set(gen["model"]) == {"llava-1.5-7b"}
    multiq = gen[gen["benchmark"] == "MultiQ"]
    assert set(multiq["condition"]) == {"text"}  # text only: no image to show
    assert len(gen) == 2 * len(tasks) - len(multiq)
    image = gen[gen["condition"] == "image"]["prompt"]
    assert image.str.startswith("USER: <image>\n").all() and image.str.endswith("ASSISTANT:").all()
    gemma = "llava-gemma-2b"
    run("paper-generate", "--model", gemma, "--tasks", f"{out}/tasks.parquet",
        "--shard", "0", "--shards", "2", "--name", gemma, "--out", f"{out}/gemma.parquet")  # fmt: skip
    prompts = pd.read_parquet(f"{out}/gemma.parquet")["prompt"]
    assert prompts.str.startswith("<start_of_turn>user\n").all()


def test_grid_vlm_composed_trained_in_two_stages_and_generating(run, tasks):
    out = run.root
    run("paper-segments", "--corpus", "instruct", "--out", f"{out}/instruct-seg.parquet")
    shard = f"{out}/translate/instruct/de/shard-0.parquet"
    run("paper-translate", "--segments", f"{out}/instruct-seg.parquet", "--lang", "de",
        "--shard", "0", "--shards", "1", "--out", shard)  # fmt: skip
    run("paper-instruct", "--lang", "de", "--shards", shard, "--out", f"{out}/instruct-de.json")
    data = json.loads(Path(f"{out}/instruct-de.json").read_text(encoding="utf-8"))
    assert len(data) == 5 and data[0]["image"] == "coco/train2017/000000000000.jpg"
    assert data[0]["conversations"][0]["value"].startswith("<image>\n")

    run("paper-compose", "--llm", "vicuna", "--vision", "dino", "--out", f"{out}/composed")
    run("paper-train", "--stage", "1", "--model", f"{out}/composed", "--out", f"{out}/stage1")
    run("paper-train", "--stage", "2", "--model", f"{out}/stage1",
        "--data", f"{out}/instruct-de.json", "--out", f"{out}/vicuna-dino-de")  # fmt: skip
    loss = pd.read_csv(f"{out}/vicuna-dino-de/loss.csv")
    assert loss["stage"].tolist() == ["stage2"] and np.isfinite(loss["loss"]).all()
    run("paper-generate", "--model", f"{out}/vicuna-dino-de", "--tasks", f"{out}/tasks.parquet",
        "--shard", "1", "--shards", "4", "--name", "vicuna-dino-de", "--out", f"{out}/grid.parquet")  # fmt: skip
    gen = pd.read_parquet(f"{out}/grid.parquet")
    assert len(gen) and set(gen["model"]) == {"vicuna-dino-de"}
    image = gen[gen["condition"] == "image"]["prompt"]
    assert image.str.startswith("USER: <image>\n").all()  # the trainer's format


def test_cka_images_from_llava_pretrain(run):
    out = run.root
    run("paper-cka-images", "--out", f"{out}/corpus")
    images = np.load(f"{out}/corpus/images.npy")
    assert images.shape == (4, 336, 336, 3) and images.dtype == np.uint8


def test_unstaged_assets_fail_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(_config(tmp_path / "empty")), encoding="utf-8")
    args = ["paper-stage", "--repo-type", "model", "--repo-id", "lmsys/vicuna-7b-v1.5"]
    assert main(["--config", str(path), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot download model 'lmsys/vicuna-7b-v1.5'" in err
    assert main(["--config", str(path), "paper-compose", "--llm", "vicuna", "--vision", "clip",
                 "--out", str(tmp_path / "x")]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "is not staged" in err and "download rules" in err


def test_remedy_variants_mixed_trained_merged_and_answering(run, tasks, capsys):
    """The paper preset's remedy commands (workflow/rules/paper_remedies.smk) on the stand-ins:
    task-instruction and text mixes from mix665k, its NLLB translations and the aya stand-in,
    stage 2 of a variant, merging with the staged Vicuna, replies to the evaluation subset."""
    from ifl.data.mixes import proportions
    from ifl.data.paper_mixes import read_mix

    out = run.root
    run("paper-segments", "--corpus", "instruct", "--out", f"{out}/instruct-seg.parquet")
    translations = []
    for lang in ("de", "zh"):  # remedies.languages of config/paper.yaml
        shard = f"{out}/translate/instruct/{lang}/shard-0.parquet"
        run("paper-translate", "--segments", f"{out}/instruct-seg.parquet", "--lang", lang,
            "--shard", "0", "--shards", "1", "--out", shard)  # fmt: skip
        run(
            "paper-instruct",
            "--lang",
            lang,
            "--shards",
            shard,
            "--out",
            f"{out}/instruct-{lang}.json",
        )
        translations += ["--translation", lang, f"{out}/instruct-{lang}.json"]
    run(
        "paper-remedy-mix",
        "--variant",
        "tasks-all-100",
        *translations,
        "--out",
        f"{out}/mix-tasks.json",
    )
    mix = read_mix(f"{out}/mix-tasks.json")
    p = proportions(mix)
    assert (
        p["non_english"] == 1.0 and (mix["source"] == "text_en").sum() == 1
    )  # 4 image rows + ShareGPT
    assert set(mix.loc[mix["source"] == "mvqa", "language"]) <= {"de", "zh"}
    run("paper-remedy-mix", "--variant", "text-25", "--out", f"{out}/mix-text.json")
    text = read_mix(f"{out}/mix-text.json")
    ml = text[text["source"] == "text_ml"]
    assert (
        len(ml) == 2
        and ml["conversations"].map(lambda c: c[0]["value"]).str.contains("prompt").all()
    )  # round(5 x 0.25 / 0.75) rows from the aya stand-in's inputs column
    with pytest.raises(AssertionError):  # a merge variant has no mix
        run("paper-remedy-mix", "--variant", "merge-50", "--out", f"{out}/x.json")

    run("paper-compose", "--llm", "vicuna", "--vision", "clip", "--out", f"{out}/composed-vc")
    run("paper-train", "--stage", "1", "--model", f"{out}/composed-vc", "--out", f"{out}/stage1-vc")
    run("paper-remedy-train", "--model", f"{out}/stage1-vc", "--mix", f"{out}/mix-tasks.json",
        "--variant", "tasks-all-100", "--out", f"{out}/tasks-all-100")  # fmt: skip
    loss = pd.read_csv(f"{out}/tasks-all-100/loss.csv")
    assert loss["stage"].tolist() == ["stage2-tasks-all-100"] and np.isfinite(loss["loss"]).all()
    run("paper-train", "--stage", "2", "--model", f"{out}/stage1-vc", "--out", f"{out}/base")
    vicuna = out / "resources" / "models" / "lmsys" / "vicuna-7b-v1.5"
    run("remedies-merge", "--vlm", f"{out}/base", "--llm", str(vicuna), "--alpha", "0.5",
        "--out", f"{out}/merge-50")  # fmt: skip
    assert json.loads(Path(f"{out}/merge-50/merge.json").read_text())["alpha"] == 0.5
    run("paper-generate", "--model", f"{out}/merge-50", "--tasks", f"{out}/tasks.parquet",
        "--remedies-eval", "--shard", "0", "--shards", "1", "--name", "merge-50",
        "--out", f"{out}/remedy-gen.parquet")  # fmt: skip
    gen = pd.read_parquet(f"{out}/remedy-gen.parquet")
    assert set(gen["benchmark"]) == {"MaXM", "LLaVA-W", "VisIT"}  # remedies.eval: no MultiQ
    assert set(gen["model"]) == {"merge-50"} and set(gen["condition"]) == {"image", "text"}
    # The remedies' own gold sheet: exported, then the job stops until people have filled it.
    run("remedies-gold-sample", "--generations", f"{out}/remedy-gen.parquet", "--tasks",
        f"{out}/tasks.parquet", "--out", f"{out}/rgold.parquet", "--sheet", f"{out}/rsheet.csv")  # fmt: skip
    sheet = pd.read_csv(f"{out}/rsheet.csv")
    assert len(sheet) == len(gen) and set(sheet["model"]) == {"merge-50"}  # gold_size > replies
    capsys.readouterr()
    args = ["remedies-gold-annotate", "--sample", f"{out}/rgold.parquet", "--sheet",
            f"{out}/rsheet.csv", "--tasks", f"{out}/tasks.parquet", "--out", f"{out}/rdone.csv"]  # fmt: skip
    assert main(["--config", str(out / "config.yaml"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"annotate {out}/rsheet.csv" in err
    assert "<remedies.gold_sheet in the config>" in err
