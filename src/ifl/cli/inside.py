"""Inside the model (workflow/rules/inside.smk): steering, CKA and the 2-D projection."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ifl.cli.registry import REQ, Subcommands
from ifl.runtime import from_config

command = Subcommands()


@command("steer-questions", ("--tasks", REQ), ("--out", REQ))
def _steer_questions(a, cfg):
    """The LID model's language of every question (automatic attribute selection)."""
    from ifl import lid
    from ifl.io import write_parquet
    from ifl.steering.run import question_languages

    write_parquet(question_languages(pd.read_parquet(a.tasks), lid.from_config(cfg)), a.out)


@command(
    "steer",
    ("--model", REQ),
    ("--name", REQ),
    ("--tasks", REQ),
    ("--questions", REQ),
    ("--study", {"choices": ["remedy", "sweep"], **REQ}),
    ("--out", REQ),
)
def _steer(a, cfg):
    """Steered replies of one model: the Table 5 runs (remedy) or the layer x strength sweep,
    prompted in the checkpoint's own chat template."""
    from ifl import generate
    from ifl.models.families import checkpoint_dir
    from ifl.models.layers import num_layers
    from ifl.models.registry import entry_from_config, make_prompter
    from ifl.steering.plan import remedy_runs, sweep_runs
    from ifl.steering.run import run_steering, steerable_tasks

    st = cfg["steering"]
    model, processor = generate.load_vlm(a.model, from_config(cfg))
    prompter = make_prompter(entry_from_config(checkpoint_dir(a.model)), processor)
    n = num_layers(model)
    if a.study == "remedy":
        runs, benchmarks = remedy_runs(st, n), st["benchmarks"]
    else:
        runs, benchmarks = sweep_runs(st, n), st["sweep"]["benchmarks"]
    tasks = steerable_tasks(pd.read_parquet(a.tasks), benchmarks)
    run_steering(
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
    ("--generations", {"nargs": "+", **REQ}),
    ("--baseline", REQ),
    ("--tasks", REQ),
    ("--out", REQ),
)
def _steer_measure(a, cfg):
    """LID, reference judge and (organism) oracle truth of the steered and unsteered replies."""
    from ifl import lid
    from ifl.io import read_parquets, write_parquet
    from ifl.steering.measure import measure_steering

    df = measure_steering(
        read_parquets(a.generations),
        pd.read_parquet(a.baseline),
        pd.read_parquet(a.tasks),
        lid.from_config(cfg),
        oracle=cfg["preset"] == "organism",
    )
    write_parquet(df, a.out)


@command("steer-tables", ("--measured", REQ), ("--questions", REQ), ("--out-dir", REQ))
def _steer_tables(a, cfg):
    """Table 5, Tables 6-9, the sweep, the selection comparison and the text-condition check."""
    from ifl.io import write_csv
    from ifl.steering.tables import steering_tables

    tables = steering_tables(
        pd.read_parquet(a.measured), pd.read_parquet(a.questions), cfg["steering"]
    )
    for name, table in tables.items():
        write_csv(table, Path(a.out_dir) / name)


@command(
    "cka",
    ("--model-a", REQ),
    ("--model-b", REQ),
    ("--names", {"nargs": 2, **REQ}),
    ("--images", REQ),
    ("--out", REQ),
)
def _cka(a, cfg):
    """Layer-by-layer CKA between two models over image and over text positions (Figure 2)."""
    from ifl.io import write_csv
    from ifl.represent.cka_tables import compare_models

    n = cfg["steering"]["cka_images"]
    images = list(np.load(a.images, mmap_mode="r")[:n])
    if len(images) < 4:
        raise ValueError(f"CKA needs at least 4 images, {a.images} has {len(images)}")
    df = compare_models(
        (a.model_a, a.model_b),
        images,
        cfg["languages"],
        device=from_config(cfg),
        batch_size=cfg["generate"]["batch_size"],
        seed=cfg["seed"],
    )
    write_csv(df.assign(model_a=a.names[0], model_b=a.names[1], n_images=len(images)), a.out)


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
    from ifl import generate
    from ifl.io import write_csv
    from ifl.models.layers import num_layers
    from ifl.represent.points import project_tokens, projection_tasks
    from ifl.steering.plan import projection_layers

    st = cfg["steering"]
    tasks = projection_tasks(pd.read_parquet(a.tasks), st["benchmarks"])
    model, processor = generate.load_vlm(a.model, from_config(cfg))
    steer_state, layers = projection_layers(st["layer"], num_layers(model))
    coords, gaps = project_tokens(
        model,
        processor,
        tasks,
        layers,
        max_per_group=st["projection_points"],
        method=st["projection"],
        seed=cfg["seed"],
    )
    write_csv(coords.assign(model=a.name), a.out)
    write_csv(gaps.assign(model=a.name, steer_layer=steer_state), a.gap_out)
