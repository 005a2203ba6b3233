"""The labelled table: every reply with its proxies, inclusion probability and gold labels.

Rows are identified by ``row_id = model|task_id|condition|intervention``. The gold sample is
drawn from the measured replies (appendix B), annotated (by people through a CSV sheet, or by
the organism's oracle), and merged back so that DSL sees every row with ``pi`` and the gold
columns present only where a row was annotated.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ifl.annotate import (
    Annotator,
    fill_sheet,
    import_sheet,
    inclusion_probabilities,
    sample_gold,
    to_sheet,
)
from ifl.lid import ISO_TO_NAME

TASK_COLUMNS = ["task_id", "question", "reference"]


def with_row_ids(df: pd.DataFrame) -> pd.DataFrame:
    """Add the stable ``row_id`` of every reply."""
    intervention = df["intervention"] if "intervention" in df.columns else "none"
    ids = (
        df["model"].astype(str)
        + "|"
        + df["task_id"].astype(str)
        + "|"
        + df["condition"].astype(str)
    )
    out = df.assign(row_id=ids + "|" + pd.Series(intervention, index=df.index).astype(str))
    dup = out["row_id"][out["row_id"].duplicated()]
    if len(dup):
        raise ValueError(f"duplicate reply {dup.iloc[0]!r}")
    return out


def gold_sample(
    measured: pd.DataFrame,
    tasks: pd.DataFrame,
    *,
    size: int,
    seed: int,
    multipliers: Mapping[str, float],
) -> pd.DataFrame:
    """The rows to annotate, with the task's question and reference, ``id`` = ``row_id``."""
    df = with_row_ids(measured).merge(
        tasks[TASK_COLUMNS], on="task_id", how="left", validate="many_to_one"
    )
    if size > len(df):
        raise ValueError(f"gold.size {size} exceeds the {len(df)} replies")
    # sample_gold keeps the index as `row_id`: index by our stable ids.
    sample = sample_gold(
        df.set_index("row_id").drop(columns=["pi"], errors="ignore"),
        size,
        seed=seed,
        multipliers=multipliers,
    )
    return sample.assign(id=sample["row_id"].to_numpy()).reset_index(drop=True)


def oracle_annotator(tasks: pd.DataFrame) -> Annotator:
    """The organism's stand-in for the paper's expert annotators (lexicon word tags + scene)."""
    from ifl.world.items import item_from_json
    from ifl.world.oracle import oracle_correct, oracle_language

    items = {t: item_from_json(i) for t, i in zip(tasks["task_id"], tasks["item"], strict=True)}

    def annotate(row: pd.Series) -> tuple[str, bool | None, bool | None]:
        iso = oracle_language(str(row["reply"]), hint=row["language"])
        name = ISO_TO_NAME.get(iso, "other") if iso else "none"
        return (
            name,
            iso == row["language"],
            oracle_correct(str(row["reply"]), items[row["task_id"]]),
        )

    return annotate


def annotated_sheet(
    sample: pd.DataFrame,
    tasks: pd.DataFrame,
    *,
    oracle: bool,
    completed: str | None,
    blank: str,
    key: str,
    replies: str = "",
) -> pd.DataFrame:
    """The annotated sheet of a gold ``sample``: the lexicon oracle's answers (``oracle``), or
    the completed sheet at ``completed`` (config key ``key``) validated against the sample.
    Until that sheet exists, the error names the ``blank`` sheet to fill (``replies`` says whose
    replies it holds) and where to save it."""
    if oracle:
        return fill_sheet(to_sheet(sample), oracle_annotator(tasks))
    if not completed or not Path(completed).is_file():
        raise ValueError(
            f"annotate {blank} (appendix B's three questions{replies}) and save the completed "
            f"sheet at {completed or f'<{key} in the config>'}, then run the DAG again"
        )
    return import_sheet(completed, expected_ids=sample["id"])


def oracle_truth(measured: pd.DataFrame, tasks: pd.DataFrame) -> pd.DataFrame:
    """``fidelity_oracle`` and ``accuracy_oracle`` for every reply (only the organism knows them)."""
    annotate = oracle_annotator(tasks)
    verdicts = [annotate(r) for _, r in measured.iterrows()]
    return measured.assign(
        fidelity_oracle=[float(v[1]) for v in verdicts],
        accuracy_oracle=[float(bool(v[2])) for v in verdicts],
    )


def unannotated(measured: pd.DataFrame, tasks: pd.DataFrame) -> pd.DataFrame:
    """Every reply as :func:`assemble` gives it when no gold sample was annotated
    (``gold.enabled: false``): the gold columns are present and missing on every row."""
    df = with_row_ids(measured).merge(
        tasks[TASK_COLUMNS], on="task_id", how="left", validate="many_to_one"
    )
    return df.assign(language_gold=None, fidelity_gold=np.nan, accuracy_gold=np.nan)


def assemble(
    measured: pd.DataFrame,
    tasks: pd.DataFrame,
    sheet: pd.DataFrame,
    *,
    size: int,
    multipliers: Mapping[str, float],
) -> pd.DataFrame:
    """Every reply with ``pi`` and, where annotated, ``language_gold``, ``fidelity_gold``,
    ``accuracy_gold`` (NA answers stay missing)."""
    df = with_row_ids(measured).merge(
        tasks[TASK_COLUMNS], on="task_id", how="left", validate="many_to_one"
    )
    df["pi"] = inclusion_probabilities(df, size, multipliers=multipliers)
    gold = sheet.set_index("id")
    unknown = sorted(set(gold.index) - set(df["row_id"]))
    if unknown:
        raise ValueError(f"annotated row {unknown[0]!r} is not a reply of this run")
    lab = df["row_id"].map(gold["answer_language"])
    df["language_gold"] = lab
    for src, dst in (("matches_gold", "fidelity_gold"), ("correct", "accuracy_gold")):
        values = df["row_id"].map(gold[src].astype("Float64"))
        df[dst] = values.astype(float)
    df.loc[lab.isna(), ["fidelity_gold", "accuracy_gold"]] = np.nan
    return df
