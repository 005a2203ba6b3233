"""The paper preset's remedies (workflow/rules/paper_remedies.smk): stage-2 mixes built from
mix665k and their training."""

from __future__ import annotations

import json

from ifl.cli.registry import REQ, Subcommands
from ifl.runtime import from_config

command = Subcommands()


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
    from ifl import paper
    from ifl.data.llava_data import read_llava_json
    from ifl.data.mixes import proportions
    from ifl.data.paper_mixes import build_paper_mix, read_text_data, write_mix
    from ifl.remedies import base_entry, remedy_languages, trained_variant

    spec = trained_variant(cfg, a.variant)
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
    from ifl.remedies import trained_variant
    from ifl.train.paper import fit_stage

    spec = trained_variant(cfg, a.variant)
    _, image_root, _ = paper.training_json(cfg, "instruct")
    fit_stage(
        a.model,
        read_mix(a.mix, image_root, check_images=True),
        a.out,
        cfg["training"],
        stage=2,
        stage_name=f"stage2-{a.variant}",
        seed=cfg["seed"],
        device=from_config(cfg),
        threads=cfg["threads"],
        final_fraction=spec["final_fraction"],
    )
