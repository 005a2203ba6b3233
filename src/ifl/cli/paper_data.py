"""The paper preset's data (workflow/rules/paper_data.smk): VisIT-Bench, NLLB translation, the
task table, the images CKA compares."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ifl.cli.registry import REQ, Subcommands
from ifl.runtime import from_config

command = Subcommands()


@command("paper-visit", ("--out", REQ), ("--image-dir", REQ))
def _visit(a, cfg):
    """English VisIT-Bench as task rows (the source of its translations)."""
    from ifl import paper
    from ifl.data.loaders import load_visit
    from ifl.io import write_parquet

    write_parquet(load_visit(paper.staged(cfg, "dataset:visit"), a.image_dir), a.out)


@command(
    "paper-segments",
    ("--corpus", {"choices": ["visit", "instruct"], **REQ}),
    ("--visit", {"default": None}),
    ("--out", REQ),
)
def _segments(a, cfg):
    """The unique segments NLLB translates: of English VisIT-Bench (``--visit``, its task rows)
    or of the stage-2 instructions."""
    from ifl import paper
    from ifl.io import write_parquet

    if a.corpus == "visit":
        if not a.visit:
            raise ValueError("--corpus visit needs --visit (the English VisIT-Bench table)")
        segments = paper.visit_segments(pd.read_parquet(a.visit))
    else:
        segments = paper.instruct_segments(paper.read_training(cfg, "instruct"))
    write_parquet(segments, a.out)


@command(
    "paper-translate",
    ("--segments", REQ),
    ("--lang", REQ),
    ("--shard", {"type": int, **REQ}),
    ("--shards", {"type": int, **REQ}),
    ("--out", REQ),
)
def _translate(a, cfg):
    """One NLLB shard: English segments into ``--lang`` (batched, resumable)."""
    from ifl import paper
    from ifl.translate_nllb import load_translator, translate_shard

    t = cfg["translation"]
    model, tokenizer = load_translator(paper.staged(cfg, "model:translator"), from_config(cfg))
    translate_shard(
        pd.read_parquet(a.segments),
        a.out,
        model,
        tokenizer,
        tgt=a.lang,
        shard_index=a.shard,
        n_shards=a.shards,
        batch_size=t["batch_size"],
        max_length=t["max_length"],
        num_beams=t["num_beams"],
    )


@command("paper-instruct", ("--lang", REQ), ("--shards", {"nargs": "+", **REQ}), ("--out", REQ))
def _instruct(a, cfg):
    """The stage-2 instructions in ``--lang``, in LLaVA's JSON format (image paths unchanged)."""
    from ifl import paper
    from ifl.data.llava_data import read_llava_json, translate_conversations, write_llava_json
    from ifl.translate_nllb import load_mapping

    path, _, limit = paper.training_json(cfg, "instruct")
    data = read_llava_json(path, None, limit=limit)
    write_llava_json(translate_conversations(data, load_mapping(a.shards)), a.out)


@command(
    "paper-tasks",
    ("--visit", {"default": None}),
    ("--visit-shards", {"nargs": "*", "default": []}),
    ("--out", REQ),
    ("--image-dir", REQ),
)
def _tasks(a, cfg):
    """The task table of the real benchmarks (VisIT-Bench with its NLLB translations)."""
    from ifl import paper
    from ifl.io import write_parquet

    by_lang: dict[str, list[str]] = {}
    for path in a.visit_shards:  # .../translate/visit/<lang>/shard-<i>.parquet
        by_lang.setdefault(Path(path).parent.name, []).append(path)
    visit = pd.read_parquet(a.visit) if a.visit else None
    tasks = paper.build_tasks(cfg, a.image_dir, visit_en=visit, visit_shards=by_lang)
    write_parquet(tasks, a.out)


@command("paper-cka-images", ("--out", REQ))
def _cka_images(a, cfg):
    """The images CKA compares (``<out>/images.npy``), drawn from LLaVA-Pretrain's images."""
    from ifl import paper
    from ifl.io import atomic_dir

    data = paper.read_training(cfg, "pretrain")
    paths = [p for p in data["image"] if isinstance(p, str)]
    images = paper.cka_images(paths, cfg["steering"]["cka_images"], cfg["seed"])
    with atomic_dir(a.out) as tmp:
        np.save(tmp / "images.npy", images)
