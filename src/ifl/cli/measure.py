"""Measurement (workflow/rules/measure.smk): LID, the accuracy judge, the gold sample and the
labelled table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ifl.cli.registry import REQ, Subcommands

command = Subcommands()


@command("measure", ("--generations", {"nargs": "+", **REQ}), ("--tasks", REQ), ("--out", REQ))
def _measure(a, cfg):
    """The LID model's language of every reply and the fidelity proxy."""
    from ifl import lid
    from ifl.io import read_parquets, write_parquet

    write_parquet(lid.measure(read_parquets(a.generations), lid.from_config(cfg)), a.out)


@command("judge", ("--measured", REQ), ("--tasks", REQ), ("--out", REQ))
def _judge(a, cfg):
    """The accuracy proxy of every reply (the config's judge; NaN where it cannot tell)."""
    from ifl.io import write_parquet
    from ifl.judge import make_judge
    from ifl.labels import TASK_COLUMNS, with_row_ids

    df = with_row_ids(pd.read_parquet(a.measured)).merge(
        pd.read_parquet(a.tasks)[TASK_COLUMNS], on="task_id"
    )
    verdicts = make_judge(cfg["judge"])(
        df["question"].tolist(), df["reference"].tolist(), df["reply"].fillna("").tolist()
    )
    proxy = [np.nan if v is None else float(v) for v in verdicts]
    write_parquet(pd.DataFrame({"row_id": df["row_id"], "accuracy_proxy": proxy}), a.out)


@command("gold-sample", ("--measured", REQ), ("--tasks", REQ), ("--out", REQ), ("--sheet", REQ))
def _gold_sample(a, cfg):
    """The stratified gold sample of appendix B and its blank sheet."""
    from ifl.annotate import export_sheet
    from ifl.io import write_parquet
    from ifl.labels import gold_sample

    g = cfg["gold"]
    sample = gold_sample(
        pd.read_parquet(a.measured),
        pd.read_parquet(a.tasks),
        size=g["size"],
        seed=cfg["seed"] + 50,
        multipliers=g["multipliers"],
    )
    write_parquet(sample, a.out)
    export_sheet(sample, a.sheet)


@command("gold-annotate", ("--sample", REQ), ("--sheet", REQ), ("--tasks", REQ), ("--out", REQ))
def _gold_annotate(a, cfg):
    """The annotated gold sheet: the oracle's answers, or the completed sheet at ``gold.sheet``
    (the job stops, naming the sheet to fill, until then)."""
    from ifl.annotate import write_sheet
    from ifl.labels import annotated_sheet

    sheet = annotated_sheet(
        pd.read_parquet(a.sample),
        pd.read_parquet(a.tasks),
        oracle=cfg["gold"]["annotator"] == "oracle",
        completed=cfg["gold"]["sheet"],
        blank=a.sheet,
        key="gold.sheet",
    )
    write_sheet(sheet, a.out)


@command(
    "labelled",
    ("--measured", REQ),
    ("--judged", REQ),
    ("--annotated", {"default": None}),
    ("--tasks", REQ),
    ("--out", REQ),
)
def _labelled(a, cfg):
    """Every reply with its proxies, inclusion probability and gold labels (DSL's input; without
    ``--annotated``, gold.enabled false, no row is annotated)."""
    from ifl.annotate import read_annotated
    from ifl.io import write_parquet
    from ifl.labels import assemble, oracle_truth, unannotated

    measured, tasks = pd.read_parquet(a.measured), pd.read_parquet(a.tasks)
    g = cfg["gold"]
    if a.annotated is None:
        df = unannotated(measured, tasks)
    else:
        sheet = read_annotated(a.annotated)
        df = assemble(measured, tasks, sheet, size=g["size"], multipliers=g["multipliers"])
    df = df.merge(pd.read_parquet(a.judged), on="row_id", how="left", validate="one_to_one")
    if g["annotator"] == "oracle":
        df = oracle_truth(df, tasks)
    write_parquet(df, a.out)
