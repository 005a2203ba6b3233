"""Fidelity and IFL tables with confidence intervals (naive, label-free estimates)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats


def wilson_interval(
    successes: np.ndarray, n: np.ndarray, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion (well behaved at 0 and 1)."""
    z = stats.norm.ppf(0.5 + level / 2)
    n = np.asarray(n, dtype=float)
    p = np.asarray(successes, dtype=float) / np.where(n > 0, n, 1)
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return centre - half, centre + half


def fidelity_table(
    measured: pd.DataFrame,
    *,
    outcome: str = "fidelity_proxy",
    by: tuple[str, ...] = ("model", "benchmark", "language", "condition"),
    level: float = 0.95,
) -> pd.DataFrame:
    """Mean fidelity with Wilson CIs per cell of ``by``."""
    missing = [c for c in (*by, outcome) if c not in measured.columns]
    if missing:
        raise ValueError(f"measured table lacks column {missing[0]!r}")
    g = measured.groupby(list(by), sort=True)[outcome].agg(["sum", "count"]).reset_index()
    lo, hi = wilson_interval(g["sum"].to_numpy(), g["count"].to_numpy(), level)
    return (
        g.assign(fidelity=g["sum"] / g["count"], ci_low=lo, ci_high=hi)
        .drop(columns="sum")
        .rename(columns={"count": "n"})
    )


def ifl_table(
    measured: pd.DataFrame,
    *,
    outcome: str = "fidelity_proxy",
    by: tuple[str, ...] = ("model", "benchmark"),
    level: float = 0.95,
) -> pd.DataFrame:
    """IFL = fidelity(image) - fidelity(text) per cell of ``by``, with a paired-difference CI.

    Tasks are paired across conditions, so the variance is that of the per-task difference.
    """
    wide = measured.pivot_table(
        index=[*by, "task_id"], columns="condition", values=outcome, aggfunc="mean"
    )
    if not {"image", "text"} <= set(wide.columns):
        raise ValueError("IFL needs both an 'image' and a 'text' condition")
    diff = (wide["image"] - wide["text"]).dropna().rename("d").reset_index()
    z = stats.norm.ppf(0.5 + level / 2)
    g = diff.groupby(list(by), sort=True)["d"].agg(["mean", "std", "count"]).reset_index()
    se = g["std"].fillna(0) / np.sqrt(g["count"])
    return (
        g.assign(ifl=g["mean"], ci_low=g["mean"] - z * se, ci_high=g["mean"] + z * se)
        .drop(columns=["mean", "std"])
        .rename(columns={"count": "n"})
    )
