"""How precise a run's IFL estimates are, beside the sample sizes of the paper's benchmarks.

A 95% interval's half-width shrinks as ``1 / sqrt(n)`` in the number of paired tasks. The
paper quotes its benchmarks' sizes (Table 1) but not its intervals as numbers, so the table puts
each estimate's half-width beside the half-width the same per-task variance would give at the
paper's size: what the organism's interval would be with the paper's evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

# The paper's Table 1 dataset names -> the benchmark names of this project's tables.
PAPER_BENCHMARKS = {"PALO-LLaVAW": "LLaVA-W", "MaXM": "MaXM", "ViSIT": "VisIT", "MultiQ": "MultiQ"}


def paper_sizes(table1: pd.DataFrame) -> dict[str, int]:
    """Tasks per benchmark in the paper (Table 1's ``size`` over all its languages), keyed by
    this project's benchmark names."""
    unknown = sorted(set(table1["dataset"]) - set(PAPER_BENCHMARKS))
    if unknown:
        raise ValueError(f"unknown dataset {unknown[0]!r} in the paper's Table 1")
    return {
        PAPER_BENCHMARKS[d]: int(n) for d, n in zip(table1["dataset"], table1["size"], strict=True)
    }


def half_widths(
    ifl: pd.DataFrame,
    n_tasks: Mapping[str, int],
    paper_n: Mapping[str, int],
    *,
    method: str = "dsl",
) -> pd.DataFrame:
    """Per model and benchmark of ``ifl`` (``ifl.csv``: ``ci_low``/``ci_high`` per ``method``):
    the estimate, its interval half-width, the run's paired tasks (``n_tasks``, per benchmark),
    the paper's (``paper_n``) and the half-width scaled to the paper's size,
    ``half_width * sqrt(n_tasks / paper_n)`` (NaN where the paper has no size)."""
    rows = ifl[ifl["method"] == method]
    if rows.empty:
        raise ValueError(f"no {method!r} rows in the IFL table")
    missing = sorted(set(rows["benchmark"]) - set(n_tasks))
    if missing:
        raise ValueError(f"no task count for benchmark {missing[0]!r}")
    out = rows[["model", "benchmark", "estimate"]].copy()
    out["half_width"] = (rows["ci_high"] - rows["ci_low"]) / 2
    out["n_tasks"] = out["benchmark"].map(n_tasks).astype(int)
    out["paper_n"] = out["benchmark"].map(paper_n).astype(float)
    out["half_width_at_paper_n"] = out["half_width"] * np.sqrt(out["n_tasks"] / out["paper_n"])
    return out.reset_index(drop=True)
