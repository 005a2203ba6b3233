"""The audit preset (workflow/rules/audit.smk): the images CKA compares, each model's hidden
states, CKA between every pair and the projections, and the chapter's tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ifl.cli.registry import REQ, Subcommands
from ifl.runtime import from_config

command = Subcommands()


@command("audit-corpus", ("--tasks", REQ), ("--out", REQ))
def _corpus(a, cfg):
    """The images every audited model's states are compared on, drawn from the benchmarks."""
    from ifl.audit.inside import cka_images
    from ifl.io import atomic_file

    images = cka_images(pd.read_parquet(a.tasks), cfg["steering"]["cka_images"], cfg["seed"])
    with atomic_file(a.out) as tmp:
        np.save(tmp, images)


@command(
    "audit-states",
    ("--model", REQ),
    ("--tasks", REQ),
    ("--images", REQ),
    ("--out", REQ),
)
def _states(a, cfg):
    """One model's pooled layer states of the CKA images and its projected token states,
    prompted in its own chat template."""
    from ifl import generate
    from ifl.audit.inside import model_states, save_states
    from ifl.models.families import checkpoint_dir
    from ifl.models.registry import entry_from_config, make_prompter

    model, processor = generate.load_vlm(a.model, from_config(cfg))
    prompter = make_prompter(entry_from_config(checkpoint_dir(a.model)), processor)
    states = model_states(
        model,
        processor,
        prompter,
        np.load(a.images),
        pd.read_parquet(a.tasks),
        languages=cfg["languages"],
        steering=cfg["steering"],
        seed=cfg["seed"],
    )
    save_states(states, a.out)


@command(
    "audit-inside",
    ("--states", {"nargs": "+", **REQ}),
    ("--names", {"nargs": "+", **REQ}),
    ("--cka", REQ),
    ("--points", REQ),
    ("--gaps", REQ),
)
def _inside(a, cfg):
    """CKA between every pair of audited models and every model's 2-D projection."""
    from ifl.audit.inside import cka_pairs, load, projections
    from ifl.io import write_csv

    if len(a.states) != len(a.names):
        raise ValueError(f"{len(a.states)} state folders but {len(a.names)} names")
    states = {name: load(folder) for name, folder in zip(a.names, a.states, strict=True)}
    write_csv(cka_pairs(states, seed=cfg["seed"]), a.cka)
    points, gaps = projections(states, cfg["steering"]["projection"], cfg["seed"])
    write_csv(points, a.points)
    write_csv(gaps, a.gaps)


@command(
    "audit-table",
    ("--labelled", REQ),
    ("--steering", REQ),
    ("--states", {"nargs": "+", **REQ}),
    ("--names", {"nargs": "+", **REQ}),
    ("--paper-dir", REQ),
    ("--out", REQ),
    ("--languages-out", REQ),
)
def _table(a, cfg):
    """The chapter "Beyond LLaVA": one row per model and the paper's LLaVA-1.5, and the IFL
    per model and query language."""
    import json

    from ifl.audit.report import model_table
    from ifl.io import write_csv

    facts = {
        name: json.loads((Path(folder) / "facts.json").read_text(encoding="utf-8"))
        for name, folder in zip(a.names, a.states, strict=True)
    }
    try:
        table5 = pd.read_csv(a.steering)
    except pd.errors.EmptyDataError:  # steering left out
        table5 = pd.DataFrame()
    d = cfg["dsl"]
    table, languages = model_table(
        pd.read_parquet(a.labelled),
        table5,
        facts,
        a.paper_dir,
        debias=cfg["gold"].get("enabled", True),
        dsl={
            "folds": d["folds"],
            "splits": d["splits"],
            "learner": d["learner"],
            "seed": cfg["seed"],
        },
    )
    write_csv(table, a.out)
    write_csv(languages, a.languages_out)
