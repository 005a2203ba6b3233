"""How often DSL's 95% intervals cover the truth in the run's own design.

On the organism the oracle knows every reply's fidelity, so the gold sample can be drawn again
and again from the same replies (appendix B's stratified design, :func:`ifl.annotate.sample_gold`),
annotated by the oracle, and each draw's DSL interval of IFL per cell checked against the
oracle's IFL of that cell. A valid interval covers the truth in about 95% of the draws; the
paper's design (about 1,000 gold labels spread over every model x benchmark cell) leaves some
cells with a handful of gold rows per condition, where DSL's sandwich variance rests on a few
residuals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from ifl.annotate import DEFAULT_LANGUAGE_MULTIPLIERS, inclusion_probabilities, sample_gold
from ifl.stats.prevalence import ifl_by_cell

__all__ = ["coverage_summary", "redrawn_intervals"]

_BY = ("model", "benchmark")


def redrawn_intervals(
    labelled: pd.DataFrame,
    *,
    sizes: Sequence[int],
    draws: int,
    seed: int,
    truth: str = "fidelity_oracle",
    multipliers: Mapping[str, float] = DEFAULT_LANGUAGE_MULTIPLIERS,
    by: Sequence[str] = _BY,
    **dsl_kwargs,
) -> pd.DataFrame:
    """DSL's IFL per cell of ``by`` for ``draws`` fresh gold samples of each size in ``sizes``.

    Each draw samples the gold rows as the pipeline does (strata benchmark x language, seed
    ``seed + draw``), gives them the ``truth`` column as their gold label and fits
    :func:`ifl.stats.prevalence.ifl_by_cell` (``dsl_kwargs``: folds, splits, learner). One row
    per size, draw and cell with the estimate, its interval, the truth (least squares on every
    reply's ``truth``) and ``covered``.

    Raises:
        ValueError: if ``truth`` is not a column, a size is not in 1..rows, or ``draws`` < 1.
    """
    if truth not in labelled.columns:
        raise ValueError(f"labelled table lacks the truth column {truth!r}")
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws!r}")
    base = labelled.drop(columns=["pi", "row_id"], errors="ignore").reset_index(drop=True)
    for size in sizes:
        if not 1 <= size <= len(base):
            raise ValueError(f"gold size {size!r} is not in 1..{len(base)} (the replies)")
    exact = ifl_by_cell(base, by=by, outcome=truth, surrogate=truth, debias=False)
    exact = exact.set_index(list(by))["estimate"].rename("truth")
    rows = []
    total = len(sizes) * draws
    with tqdm(total=total, desc="gold redraws", mininterval=5) as bar:
        for size in sizes:
            pi = inclusion_probabilities(base, size, multipliers=multipliers)
            for draw in range(draws):
                gold = sample_gold(base, size, seed=seed + draw, multipliers=multipliers).index
                data = base.assign(pi=pi, fidelity_gold=np.nan)
                data.loc[gold, "fidelity_gold"] = base.loc[gold, truth]
                est = ifl_by_cell(data, by=by, seed=seed + draw, **dsl_kwargs)
                est = est[est["method"] == "dsl"].set_index(list(by))
                cells = est[["estimate", "se", "ci_low", "ci_high"]].join(exact)
                cells["covered"] = (cells.ci_low <= cells.truth) & (cells.truth <= cells.ci_high)
                rows.append(cells.reset_index().assign(size=size, draw=draw))
                bar.update()
    out = pd.concat(rows, ignore_index=True)
    return out[["size", "draw", *by, "estimate", "se", "ci_low", "ci_high", "truth", "covered"]]


def coverage_summary(
    intervals: pd.DataFrame, by: Sequence[str] = ("size", "benchmark")
) -> pd.DataFrame:
    """Per group of ``by`` (default gold size x benchmark) over the draws and cells of
    :func:`redrawn_intervals`: ``coverage`` of the 95% intervals with its Monte Carlo standard
    error, the mean half-width, ``bias`` (mean estimate - truth), ``rmse`` and the share of
    estimates outside [-1, 1] (impossible values of a difference of two rates)."""
    d = intervals.assign(
        error=intervals.estimate - intervals.truth,
        half_width=(intervals.ci_high - intervals.ci_low) / 2,
        outside=intervals.estimate.abs() > 1,
    )
    g = d.groupby(list(by))
    out = g.agg(
        intervals=("covered", "size"),
        coverage=("covered", "mean"),
        half_width=("half_width", "mean"),
        bias=("error", "mean"),
        rmse=("error", lambda e: float(np.sqrt(np.mean(e**2)))),
        outside_unit=("outside", "mean"),
    )
    out.insert(2, "coverage_mc_se", np.sqrt(out.coverage * (1 - out.coverage) / out.intervals))
    return out.reset_index()
