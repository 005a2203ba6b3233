"""Subcommands of "Inside the model" (workflow/rules/inside.smk): steering and representations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ifl.cli import command
from ifl.runtime import from_config

REQ = {"required": True}


def _identifier(cfg: dict):
    from ifl import lid

    return lid.LanguageIdentifier(
        cfg["lid"]["model"] or lid.default_lid176_path(), kind=cfg["lid"]["kind"]
    )


@command("steer-questions", ("--tasks", REQ), ("--out", REQ))
def _steer_questions(a, cfg):
    """The LID model's language of every question (automatic attribute selection)."""
    from ifl.inside import question_languages
    from ifl.io import write_parquet

    write_parquet(question_languages(pd.read_parquet(a.tasks), _identifier(cfg)), a.out)


@command(
    "steer",
    ("--model", REQ),
    ("--name", REQ),
    ("--tasks", REQ),
    ("--questions", REQ),
    ("--study", {"choices": ["remedy", "sweep"], "required": True}),
    ("--out", REQ),
)
def _steer(a, cfg):
    """Steered replies of one model: the Table 5 runs (remedy) or the layer x strength sweep,
    prompted in the checkpoint's own chat template."""
    from ifl import generate, inside
    from ifl.models.families import checkpoint_dir
    from ifl.models.layers import num_layers
    from ifl.models.registry import entry_from_config, make_prompter

    st = cfg["steering"]
    model, processor = generate.load_vlm(a.model, from_config(cfg))
    prompter = make_prompter(entry_from_config(checkpoint_dir(a.model)), processor)
    n = num_layers(model)
    if a.study == "remedy":
        runs, benchmarks = inside.remedy_runs(st, n), st["benchmarks"]
    else:
        runs, benchmarks = inside.sweep_runs(st, n), st["sweep"]["benchmarks"]
    tasks = inside.steerable_tasks(pd.read_parquet(a.tasks), benchmarks)
    inside.run_steering(
        model,
        processor,
        tasks,
        pd.read_parquet(a.questions),
        runs,
        a.out,
        model_name=a.name,
        prompter=prompter,
        **generate.settings(cfg),
    )


@command(
    "steer-measure",
    ("--generations", {"nargs": "+", "required": True}),
    ("--baseline", REQ),
    ("--tasks", REQ),
    ("--out", REQ),
)
def _steer_measure(a, cfg):
    """LID, reference judge and (organism) oracle truth of the steered and unsteered replies."""
    from ifl.inside import measure_steering
    from ifl.io import write_parquet

    gens = pd.concat([pd.read_parquet(p) for p in a.generations], ignore_index=True)
    df = measure_steering(
        gens,
        pd.read_parquet(a.baseline),
        pd.read_parquet(a.tasks),
        _identifier(cfg),
        oracle=cfg["preset"] == "organism",
    )
    write_parquet(df, a.out)


@command("steer-tables", ("--measured", REQ), ("--questions", REQ), ("--out-dir", REQ))
def _steer_tables(a, cfg):
    """Table 5, Tables 6-9, the sweep, the selection comparison and the text-condition check."""
    from ifl import inside
    from ifl.io import write_csv

    df, questions = pd.read_parquet(a.measured), pd.read_parquet(a.questions)
    out = Path(a.out_dir)
    table5 = inside.remedy_table(df, primary=inside.primary_variant(cfg["steering"]))
    write_csv(table5, out / "steering_table5.csv")
    write_csv(inside.by_language_table(df), out / "steering_by_language.csv")
    write_csv(inside.sweep_table(df), out / "steering_sweep.csv")
    write_csv(inside.text_check_table(df), out / "steering_text.csv")
    bench = set(cfg["steering"]["benchmarks"])
    write_csv(
        inside.selection_table(table5, questions[questions["benchmark"].isin(bench)]),
        out / "steering_selection.csv",
    )
    write_csv(inside.question_lid_table(questions), out / "steering_question_lid.csv")


@command(
    "cka",
    ("--model-a", REQ),
    ("--model-b", REQ),
    ("--names", {"nargs": 2, "required": True}),
    ("--images", REQ),
    ("--out", REQ),
)
def _cka(a, cfg):
    """Layer-by-layer CKA between two models over image and over text positions (Figure 2)."""
    from ifl import generate, inside
    from ifl.io import write_csv

    n = cfg["steering"]["cka_images"]
    images = list(np.load(a.images, mmap_mode="r")[:n])
    if len(images) < 4:
        raise ValueError(f"CKA needs at least 4 images, {a.images} has {len(images)}")
    prompts = inside.cka_prompts(len(images), cfg["languages"])
    device = from_config(cfg)
    pooled = []
    for path in (a.model_a, a.model_b):
        model, processor = generate.load_vlm(path, device)
        pooled.append(
            inside.pooled_layers(model, processor, prompts, images, cfg["generate"]["batch_size"])
        )
        del model
    tables = [
        inside.cka_table(pooled[0][pos], pooled[1][pos], seed=cfg["seed"]).assign(positions=pos)
        for pos in ("image", "text")
    ]
    df = pd.concat(tables, ignore_index=True).assign(
        model_a=a.names[0], model_b=a.names[1], n_images=len(images)
    )
    write_csv(df, a.out)


@command(
    "project",
    ("--model", REQ),
    ("--name", REQ),
    ("--tasks", REQ),
    ("--out", REQ),
    ("--gap-out", REQ),
)
def _project(a, cfg):
    """Image and question tokens of one model in 2-D (UMAP or t-SNE) and the modality gap."""
    from ifl import generate, inside
    from ifl.io import write_csv
    from ifl.models.layers import num_layers

    st = cfg["steering"]
    tasks = inside.projection_tasks(pd.read_parquet(a.tasks), st["benchmarks"])
    model, processor = generate.load_vlm(a.model, from_config(cfg))
    n = num_layers(model)
    steer_state, layers = inside.projection_layers(st["layer"], n)
    meta, arrays = inside.token_points(model, processor, tasks, layers)
    keep = inside.sample_points(meta, st["projection_points"], seed=cfg["seed"])
    coords, gaps = inside.project_points(
        meta.iloc[keep].reset_index(drop=True),
        {k: v[keep] for k, v in arrays.items()},
        method=st["projection"],
        seed=cfg["seed"],
    )
    write_csv(coords.assign(model=a.name), a.out)
    write_csv(gaps.assign(model=a.name, steer_layer=steer_state), a.gap_out)
