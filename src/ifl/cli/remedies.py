"""The remedies (workflow/rules/remedies.smk; remedies-merge in paper_remedies.smk too): mixes,
training, merging, replies, the gold sheet, labels, tables and the modality gap."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ifl.cli.registry import REQ, Subcommands
from ifl.runtime import from_config

command = Subcommands()


def _gold_kwargs(cfg: dict) -> dict:
    """How the remedies' gold sample is drawn (the same in the sheet and in the labels)."""
    return {
        "gold_size": cfg["remedies"]["gold_size"],
        "multipliers": cfg["gold"]["multipliers"],
        "seed": cfg["seed"] + 60,
    }


@command(
    "remedies-mix", ("--corpus", REQ), ("--instructions", REQ), ("--variant", REQ), ("--out", REQ)
)
def _mix(a, cfg):
    """A trained variant's stage-2 mix, and the shares it was built to have (printed)."""
    from ifl.data.corpus import read_scenes, read_visual_items
    from ifl.data.mixes import build_mix, proportions
    from ifl.io import write_parquet
    from ifl.remedies import remedy_languages, trained_variant

    spec = trained_variant(cfg, a.variant)
    org = cfg["organism"]
    mix = build_mix(
        pd.read_parquet(a.instructions), read_visual_items(a.corpus), read_scenes(a.corpus),
        text_only_share=org["text_only_share"], text_ratio=spec["text_ratio"],
        text_phase=spec["text_phase"], tasks=spec["tasks"],
        non_english_share=spec["non_english_share"], languages=remedy_languages(cfg),
        error_rate=org["translation_error_rate"], seed=cfg["seed"] + 40,
    )  # fmt: skip
    print(json.dumps({"variant": a.variant, "rows": len(mix), **proportions(mix)}))
    write_parquet(mix, a.out)


@command("remedies-train", ("--stage1", REQ), ("--corpus", REQ), ("--mix", REQ), ("--variant", REQ),
         ("--out", REQ))  # fmt: skip
def _train(a, cfg):
    """Stage 2 of the base on a variant's mix, from the base's stage-1 checkpoint."""
    from ifl.data.corpus import read_images
    from ifl.remedies import trained_variant
    from ifl.train.organism import pixel_tensor, stage2_phased

    spec = trained_variant(cfg, a.variant)
    org = cfg["organism"]
    device = from_config(cfg)
    pixels = pixel_tensor(read_images(a.corpus), org["image_size"])
    stage2_phased(
        Path(a.stage1),
        pixels,
        pd.read_parquet(a.mix),
        org["stage2"],
        Path(a.out),
        final_fraction=spec["final_fraction"],
        seed=cfg["seed"] + 40,
        device=device,
    )


@command("remedies-merge", ("--vlm", REQ), ("--llm", REQ), ("--alpha", {"type": float, **REQ}),
         ("--out", REQ))  # fmt: skip
def _merge(a, cfg):
    """(1 - alpha) x the VLM's fine-tuned LLM + alpha x the original LLM, shard by shard."""
    from ifl.train.merge import merge_llm

    print(json.dumps(merge_llm(a.vlm, a.llm, a.alpha, a.out)))


@command("remedies-generate", ("--model", REQ), ("--tasks", REQ), ("--name", REQ), ("--out", REQ))
def _generate(a, cfg):
    """Replies of a variant to the remedies' evaluation subset (``remedies.eval``)."""
    from ifl import generate
    from ifl.remedies import eval_tasks

    model, processor = generate.load_vlm(a.model, from_config(cfg))
    q = generate.queries(eval_tasks(pd.read_parquet(a.tasks), cfg))
    generate.run(
        model,
        processor,
        q,
        a.out,
        model_name=a.name,
        **generate.settings(cfg),
    )


@command(
    "remedies-base", ("--generations", {"nargs": "+", **REQ}), ("--tasks", REQ), ("--out", REQ)
)
def _base(a, cfg):
    """The base VLM's replies to the evaluation subset, taken from the main run's."""
    from ifl.io import read_parquets, write_parquet
    from ifl.remedies import eval_tasks

    gens = read_parquets(a.generations)
    keep = set(eval_tasks(pd.read_parquet(a.tasks), cfg)["task_id"])
    base = gens[gens["task_id"].isin(keep)].assign(model="base")
    write_parquet(
        base.sort_values(["task_id", "condition"], kind="stable").reset_index(drop=True), a.out
    )


@command(
    "remedies-gold-sample", ("--generations", {"nargs": "+", **REQ}), ("--tasks", REQ),
    ("--out", REQ), ("--sheet", REQ),
)  # fmt: skip
def _gold_sample(a, cfg):
    """The remedies' gold sample and its blank sheet (annotated by people: ``gold.annotator``
    sheet, as the paper preset's)."""
    from ifl.annotate import export_sheet
    from ifl.io import read_parquets, write_parquet
    from ifl.remedies import gold_sample_of

    sample = gold_sample_of(
        read_parquets(a.generations), pd.read_parquet(a.tasks), **_gold_kwargs(cfg)
    )
    write_parquet(sample, a.out)
    export_sheet(sample, a.sheet)


@command("remedies-gold-annotate", ("--sample", REQ), ("--sheet", REQ), ("--tasks", REQ),
         ("--out", REQ))  # fmt: skip
def _gold_annotate(a, cfg):
    """The annotated remedies sheet: the oracle's answers, or the completed sheet at
    ``remedies.gold_sheet`` validated (the job stops, naming the sheet to fill, until then)."""
    from ifl.annotate import write_sheet
    from ifl.labels import annotated_sheet

    sheet = annotated_sheet(
        pd.read_parquet(a.sample),
        pd.read_parquet(a.tasks),
        oracle=cfg["gold"]["annotator"] == "oracle",
        completed=cfg["remedies"].get("gold_sheet"),
        blank=a.sheet,
        key="remedies.gold_sheet",
        replies=", the remedies' replies",
    )
    write_sheet(sheet, a.out)


@command(
    "remedies-label", ("--generations", {"nargs": "+", **REQ}), ("--tasks", REQ), ("--out", REQ),
    ("--annotated", {"default": None}),
)  # fmt: skip
def _label(a, cfg):
    """LID and judge of every remedy reply, with gold labels from ``--annotated`` (the sheet of
    remedies-gold-annotate) or, without it, from the oracle-annotated gold sample."""
    from ifl import lid
    from ifl.annotate import read_annotated
    from ifl.io import read_parquets, write_parquet
    from ifl.judge import make_judge
    from ifl.remedies import labelled_table

    df = labelled_table(
        lid.measure(read_parquets(a.generations), lid.from_config(cfg)),
        pd.read_parquet(a.tasks),
        make_judge(cfg["judge"]),
        **_gold_kwargs(cfg),
        oracle=cfg["gold"]["annotator"] == "oracle",
        sheet=read_annotated(a.annotated) if a.annotated else None,
    )
    write_parquet(df, a.out)


@command("remedies-tables", ("--labelled", REQ), ("--out", REQ))
def _tables(a, cfg):
    """IFL and accuracy of every variant (DSL, the naive proxy and the oracle)."""
    from ifl.io import write_csv
    from ifl.remedies import base_entry, remedy_table, variants

    d = cfg["dsl"]
    table = remedy_table(
        pd.read_parquet(a.labelled),
        variants(cfg),
        base_model=base_entry(cfg)["name"],
        folds=d["folds"],
        splits=d["splits"],
        learner=d["learner"],
        seed=cfg["seed"],
    )
    write_csv(table, a.out)


@command("remedies-gap", ("--models", {"nargs": "+", **REQ}), ("--names", {"nargs": "+", **REQ}),
         ("--tasks", REQ), ("--out", REQ))  # fmt: skip
def _gap(a, cfg):
    """Mean image-token and question-token features of the variants in 2-D (the modality gap)."""
    from PIL import Image

    from ifl import generate
    from ifl.io import write_csv
    from ifl.models.prompts import prompt
    from ifl.remedies import eval_tasks, gap_features, gap_points

    if len(a.models) != len(a.names):
        raise ValueError(f"{len(a.models)} models but {len(a.names)} names")
    gap = cfg["remedies"]["gap"]
    tasks = eval_tasks(pd.read_parquet(a.tasks), cfg)
    tasks = tasks[tasks["benchmark"] != "MultiQ"]  # its image is unrelated to the question
    # a machine translation can come back empty: such a question has no embedding to average
    tasks = tasks[tasks["question"].fillna("").str.strip() != ""]
    if tasks.empty:
        raise ValueError("remedies.eval has no task with a related image for the modality gap")
    rng = np.random.default_rng(cfg["seed"] + 70)
    n = min(gap["max_points"], len(tasks))
    tasks = tasks.iloc[np.sort(rng.choice(len(tasks), size=n, replace=False))]
    images = [np.asarray(Image.open(p).convert("RGB")) for p in tasks["image"]]
    prompts = [prompt(q, image=True) for q in tasks["question"]]
    device = from_config(cfg)
    parts = []
    for path, name in zip(a.models, a.names, strict=True):
        model, processor = generate.load_vlm(path, device)
        img, txt = gap_features(model, processor, prompts, tasks["question"].tolist(), images)
        parts.append(gap_points(img, txt, variant=name, seed=cfg["seed"], method=gap["method"]))
    write_csv(pd.concat(parts, ignore_index=True), a.out)
