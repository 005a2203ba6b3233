"""Steered replies measured as the main run's (LID proxy, reference judge, the organism's
oracle truth), stacked on the main run's unsteered replies of the same tasks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def measure_steering(
    generations: pd.DataFrame,
    baseline: pd.DataFrame,
    tasks: pd.DataFrame,
    identifier: Any,
    *,
    oracle: bool,
) -> pd.DataFrame:
    """Steered replies measured like the main run's, stacked on the main run's unsteered replies
    of the same models and benchmarks (``study == "none"``).

    Adds ``accuracy_proxy`` (:class:`ifl.judge.ReferenceJudge`) to every row and, when
    ``oracle``, the organism's ``fidelity_oracle`` / ``accuracy_oracle``.
    """
    from ifl import lid
    from ifl.judge import ReferenceJudge
    from ifl.labels import oracle_truth

    steered = lid.measure(generations, identifier)
    base = baseline[
        baseline["model"].isin(set(steered["model"]))
        & baseline["benchmark"].isin(set(steered["benchmark"]))
    ]
    if base.empty:
        raise ValueError(
            "the main run's measured table has no unsteered replies of the steered models"
        )
    base = base.assign(
        study="none", variant="none", selection="none", layer=-1, strength=0.0, steer_language=None
    )
    cols = list(dict.fromkeys([*base.columns, *steered.columns]))
    df = pd.concat([base.reindex(columns=cols), steered.reindex(columns=cols)], ignore_index=True)
    t = tasks.set_index("task_id")
    missing = sorted(set(df["task_id"]) - set(t.index))
    if missing:
        raise ValueError(f"task {missing[0]!r} of the replies is not in the tasks table")
    verdicts = ReferenceJudge()(
        t.loc[df["task_id"], "question"].tolist(),
        t.loc[df["task_id"], "reference"].tolist(),
        df["reply"].fillna("").astype(str).tolist(),
    )
    df["accuracy_proxy"] = np.asarray(verdicts, dtype=float)
    if oracle:
        df = oracle_truth(df, tasks)
    df["layer"] = df["layer"].astype(int)
    df["strength"] = df["strength"].astype(float)
    return df
