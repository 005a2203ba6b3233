"""Subcommands of the paper preset (workflow/rules/paper*.smk): staging, NLLB translation, the
task table, composing and training the design grid, generation with real checkpoints, and the
remedies' stage-2 mixes and training (workflow/rules/paper_remedies.smk)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ifl.cli import command
from ifl.runtime import from_config

REQ = {"required": True}


@command("paper-stage", ("--repo-type", REQ), ("--repo-id", REQ))
def _stage(a, cfg):
    """Download one hub repository into resources/ (login node; marker written last)."""
    from ifl import paper
    from ifl.download import HubError, stage

    try:
        print(stage(paper.find_asset(cfg, a.repo_type, a.repo_id), cfg["resources_dir"]))
    except HubError as err:  # already one line naming the repository: no traceback
        raise ValueError(str(err)) from err


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


@command("paper-compose", ("--llm", REQ), ("--vision", REQ), ("--out", REQ))
def _compose(a, cfg):
    """A LLaVA-1.5 from a staged backbone and encoder with a fresh projector (Table 3's start)."""
    import torch

    from ifl import paper
    from ifl.io import atomic_dir
    from ifl.models.prompts import CHAT_TEMPLATE
    from ifl.models.registry import compose_llava

    tr = cfg["training"]
    model, processor = compose_llava(
        paper.staged(cfg, f"model:{a.llm}"),
        paper.staged(cfg, f"model:{a.vision}"),
        seed=cfg["seed"],
        dtype=torch.bfloat16 if tr["bf16"] else torch.float32,
        vision_feature_layer=tr["vision_feature_layer"],
        # the format the trainer writes, so that generation prompts match training
        chat_template=CHAT_TEMPLATE,
    )
    processor.image_processor.do_pad = tr["image_aspect_ratio"] == "pad"
    with atomic_dir(a.out) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)


@command(
    "paper-train",
    ("--stage", {"choices": ["1", "2"], **REQ}),
    ("--model", REQ),
    ("--data", {"default": None}),
    ("--out", REQ),
)
def _train(a, cfg):
    """LLaVA stage 1 (projector, captions) or stage 2 (projector + LLM, instructions)."""
    from ifl import paper

    part = "pretrain" if a.stage == "1" else "instruct"
    data = paper.read_training(cfg, part, a.data, check_images=True)
    _fit(cfg, a.model, data, a.out, stage=int(a.stage), stage_name=f"stage{a.stage}")


def _fit(cfg, model, data, out, *, stage: int, stage_name: str, final_fraction: float = 0.0):
    """The LLaVA-1.5 recipe's stage ``stage`` on ``data``; the seed depends on the stage only,
    so that a remedy variant trains exactly like its base but for the data."""
    from ifl.train.hf_trainer import StageSpec, train

    tr = cfg["training"]
    device = from_config(cfg)
    train(
        model,
        data,
        out,
        StageSpec.from_config(tr[f"stage{stage}"]),
        mode="plain" if stage == 1 else "chat",
        max_length=tr["max_length"],
        bf16=tr["bf16"] and device.type == "cuda",
        gradient_checkpointing=tr["gradient_checkpointing"],
        save_steps=tr["save_steps"],
        seed=cfg["seed"] + 30 + stage,
        cpu=device.type == "cpu",
        workers=max(0, cfg["threads"] - 1),
        stage_name=stage_name,
        final_fraction=final_fraction,
    )


def _trained_variant(cfg, name: str) -> dict:
    from ifl.remedies import variant

    spec = variant(cfg, name)
    if spec["kind"] != "trained":
        raise ValueError(f"remedy variant {name!r} is not trained (it is {spec['kind']})")
    return spec


@command(
    "paper-remedy-mix",
    ("--variant", REQ),
    ("--base-data", {"default": None}),
    ("--translation", {"nargs": 2, "action": "append", "default": [],
                       "metavar": ("LANG", "JSON")}),
    ("--out", REQ),
)  # fmt: skip
def _remedy_mix(a, cfg):
    """A remedy variant's stage-2 data: the base's data (``--base-data``, a translated
    ``instruct-<lang>.json``; default the staged English mix665k), task rows built from mix665k
    and its translations (``--translation LANG JSON``, one per language), text-only
    multilingual rows from the staged ``remedies.text_data``."""
    import json

    from ifl import paper
    from ifl.data.llava_data import read_llava_json
    from ifl.data.mixes import proportions
    from ifl.data.paper_mixes import build_paper_mix, read_text_data, write_mix
    from ifl.remedies import base_entry, remedy_languages

    spec = _trained_variant(cfg, a.variant)
    langs = remedy_languages(cfg)
    path, _, limit = paper.training_json(cfg, "instruct")
    english = read_llava_json(path, None, limit=limit)  # image paths stay relative
    base_lang = base_entry(cfg)["data"]
    if (base_lang == "en") != (a.base_data is None):
        raise ValueError(f"the base trained on {base_lang!r} data: --base-data is the {base_lang} "
                         "instructions exactly when that is not English")  # fmt: skip
    base = english if a.base_data is None else read_llava_json(a.base_data, None)
    text = None
    if spec["text_ratio"] > 0:
        t = paper.remedy_text(cfg)
        text = read_text_data(paper.remedy_text_files(cfg), t["columns"], langs,
                              language_codes=t.get("language_codes"))  # fmt: skip
    mix = build_paper_mix(
        base, english, dict(a.translation), text, base_language=base_lang,
        text_ratio=spec["text_ratio"], text_phase=spec["text_phase"], tasks=spec["tasks"],
        non_english_share=spec["non_english_share"], languages=langs, seed=cfg["seed"] + 40,
    )  # fmt: skip
    print(json.dumps({"variant": a.variant, "rows": len(mix), **proportions(mix)}))
    write_mix(mix, a.out)


@command("paper-remedy-train", ("--model", REQ), ("--mix", REQ), ("--variant", REQ),
         ("--out", REQ))  # fmt: skip
def _remedy_train(a, cfg):
    """Stage 2 of a remedy variant from the base's stage-1 checkpoint, on its mix, with the
    base's recipe and seed (the final phase's rows only in the last steps)."""
    from ifl import paper
    from ifl.data.paper_mixes import read_mix

    spec = _trained_variant(cfg, a.variant)
    _, image_root, _ = paper.training_json(cfg, "instruct")
    data = read_mix(a.mix, image_root, check_images=True)
    _fit(cfg, a.model, data, a.out, stage=2, stage_name=f"stage2-{a.variant}",
         final_fraction=spec["final_fraction"])  # fmt: skip


@command(
    "paper-generate",
    ("--model", REQ),
    ("--tasks", REQ),
    ("--shard", {"type": int, **REQ}),
    ("--shards", {"type": int, **REQ}),
    ("--name", REQ),
    ("--out", REQ),
    ("--remedies-eval", {"action": "store_true"}),
)
def _generate(a, cfg):
    """Replies of a released VLM (registry name) or a trained grid VLM or remedy variant
    (directory), in the checkpoint's own prompt format; ``--remedies-eval`` asks only the
    remedies' evaluation subset (``remedies.eval``)."""
    from ifl import generate, paper
    from ifl.models.registry import get, load_pretrained, make_prompter, resolve
    from ifl.remedies import eval_tasks

    device, resources = from_config(cfg), cfg["resources_dir"]
    target = a.model if Path(a.model).is_dir() else get(a.model)
    entry, _ = resolve(target, resources)
    model, processor = load_pretrained(target, device, resources=resources)
    tasks = pd.read_parquet(a.tasks)
    tasks = eval_tasks(tasks, cfg) if a.remedies_eval else tasks
    q = paper.generation_queries(tasks, make_prompter(entry, processor))
    generate.run(
        model,
        processor,
        generate.shard(q, a.shard, a.shards),
        a.out,
        model_name=a.name,
        **generate.settings(cfg),
    )
