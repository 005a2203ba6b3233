"""The headline figures of every chapter, collected into results/<run>/summary.json."""

from __future__ import annotations

import pandas as pd


def _r(x: float) -> float:
    return round(float(x), 4)


def fidelity_summary(fidelity: pd.DataFrame) -> dict:
    """Mean fidelity per model and condition (model -> condition -> value)."""
    g = fidelity.assign(hits=fidelity["fidelity"] * fidelity["n"]).groupby(["model", "condition"])[["hits", "n"]].sum()
    out: dict[str, dict[str, float]] = {}
    for (model, cond), row in g.iterrows():
        out.setdefault(model, {})[cond] = _r(row["hits"] / row["n"])
    return out


def prevalence_summary(ifl: pd.DataFrame) -> dict:
    """``ifl`` (DSL) and ``ifl_naive``: model -> benchmark -> {estimate, ci_low, ci_high}."""
    out: dict[str, dict] = {}
    for method, key in (("dsl", "ifl"), ("naive_proxy", "ifl_naive"), ("oracle", "ifl_oracle")):
        rows = ifl[ifl["method"] == method]
        if rows.empty:
            continue
        block = out.setdefault(key, {})
        for r in rows.itertuples(index=False):
            block.setdefault(r.model, {})[r.benchmark] = {
                "estimate": _r(r.estimate), "ci_low": _r(r.ci_low), "ci_high": _r(r.ci_high)}
    return out
