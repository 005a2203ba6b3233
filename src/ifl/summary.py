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
