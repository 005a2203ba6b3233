"""The organism's data (workflow/rules/data.smk): the evaluation tasks and the training corpus."""

from __future__ import annotations

from pathlib import Path

from ifl.cli.registry import REQ, Subcommands

command = Subcommands()


@command("tasks", ("--out", REQ), ("--image-dir", REQ))
def _tasks(a, cfg):
    """The four toy benchmarks' tasks in every language, with their images."""
    from ifl.io import write_parquet
    from ifl.world.tasks import build_tasks

    org = cfg["organism"]
    tasks = build_tasks(
        org["items_per_benchmark"],
        cfg["languages"],
        seed=cfg["seed"],
        image_dir=Path(a.image_dir),
        image_size=org["image_size"],
    )
    write_parquet(tasks, a.out)


@command("corpus", ("--out", REQ))
def _corpus(a, cfg):
    """The training scenes, their images, captions and stage-2 items (one per stage-2 row)."""
    from ifl.data.corpus import write_corpus

    org = cfg["organism"]
    s2 = org["stage2"]
    write_corpus(
        a.out,
        n_scenes=org["train_scenes"],
        n_items=max(s2["batch_size"], s2["steps"] * s2["batch_size"]),
        image_size=org["image_size"],
        seed=cfg["seed"],
    )
