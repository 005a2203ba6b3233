"""The chapter "Beyond LLaVA": one row per audited model, the paper's LLaVA-1.5 as reference.

Per model (:func:`model_table`): fidelity with and without the image and the IFL over every
task asked both ways, with their DSL intervals (or, without a gold sample, the LID proxy's
naive estimates, which are not debiased); the judge's accuracy per condition, debiased alike;
the steering remedy's gain (Table 5's setting: primary variant, oracle selection, LID proxy);
the model's family, processor and depth; and how much its IFL varies across the query
languages (:func:`heterogeneity`, over the non-English languages as the paper's Tables 6-9).

The reference rows are the paper's LLaVA-1.5 7B and 13B (:func:`paper_reference`): its Table 5
(the mean over 24 benchmark x language cells, GlotLID proxy) and the spread of its per-language
IFL in Tables 6-9. The paper gives no figures of fidelity per condition (only Figure 3's plot)
nor of accuracy for these models; those cells stay empty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ifl.stats.prevalence import ifl_by_cell, mean_by_cell

THIS_RUN = "this run"
PAPER = "Hinck et al. 2024"
#: The paper's LLaVA-1.5 rows of Tables 5-9 and their names here.
PAPER_MODELS = {"llava7b": "LLaVA-1.5-7B (paper)", "llava13b": "LLaVA-1.5-13B (paper)"}
_OUTCOMES = {"fidelity": ("fidelity_gold", "fidelity_proxy"),
             "accuracy": ("accuracy_gold", "accuracy_proxy")}  # fmt: skip


def heterogeneity(estimates: Sequence[float], ses: Sequence[float]) -> dict[str, float]:
    """How much per-language estimates differ: their unweighted SD, min and max, and Cochran's
    Q test of equal effects (``Q = sum w (x - x_w)^2``, ``w = 1 / se^2``, chi-squared with k - 1
    degrees of freedom under equality) with Higgins' ``I2 = max(0, (Q - df) / Q)``, the share of
    the spread beyond sampling error. Cells without sampling error (se 0: every reply alike)
    cannot be weighted and are left out of Q; k counts those used."""
    x, se = np.asarray(estimates, dtype=float), np.asarray(ses, dtype=float)
    ok = np.isfinite(x)
    out = {
        "languages_sd": float(np.std(x[ok], ddof=1)) if ok.sum() > 1 else np.nan,
        "languages_min": float(np.min(x[ok])) if ok.any() else np.nan,
        "languages_max": float(np.max(x[ok])) if ok.any() else np.nan,
    }
    use = ok & np.isfinite(se) & (se > 0)
    k = int(use.sum())
    q = p = i2 = np.nan
    if k >= 2:
        w = 1.0 / se[use] ** 2
        q = float((w * (x[use] - np.sum(w * x[use]) / np.sum(w)) ** 2).sum())
        p = float(stats.chi2.sf(q, k - 1))
        i2 = float(max(0.0, (q - (k - 1)) / q)) if q > 0 else 0.0
    return out | {"q": q, "q_k": k, "q_p": p, "i2": i2}


def _by(df: pd.DataFrame, keys: Sequence[str], prefix: str, method: str) -> pd.DataFrame:
    """Rows of one estimation ``method`` as columns ``<prefix>``, ``<prefix>_ci_low/high``."""
    d = df[df["method"] == method]
    cols = {"estimate": prefix, "ci_low": f"{prefix}_ci_low", "ci_high": f"{prefix}_ci_high"}
    return d[[*keys, *cols]].rename(columns=cols)


def _wide_by_condition(df: pd.DataFrame, name: str, method: str) -> pd.DataFrame:
    parts = [
        _by(df[df["condition"] == cond], ["model"], f"{name}_{cond}", method)
        for cond in ("image", "text")
    ]
    return parts[0].merge(parts[1], on="model", how="outer")


def estimates(
    labelled: pd.DataFrame, *, debias: bool, dsl: Mapping[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Per model: fidelity and accuracy per condition and the IFL; per model and language: the
    IFL. DSL with a gold sample (``debias``), else the naive LID-proxy estimates; accuracy is
    debiased only where some annotated row has an accuracy label (``accuracy_method``).
    Returns ``(per model, per model and language, method)``."""
    method = "dsl" if debias else "naive_proxy"
    kw = {"debias": debias, **dsl}
    wide = _by(ifl_by_cell(labelled, by=("model",), **kw), ["model"], "ifl", method)
    for name, (outcome, surrogate) in _OUTCOMES.items():
        if labelled[surrogate].notna().any():
            # a gold label of this outcome is needed to debias it (accuracy may be "na" throughout)
            gold = debias and bool(labelled[outcome].notna().any())
            cells = mean_by_cell(
                labelled, by=("model", "condition"), outcome=outcome, surrogate=surrogate,
                **{**kw, "debias": gold},
            )  # fmt: skip
            used = "dsl" if gold else "naive_proxy"
            wide = wide.merge(_wide_by_condition(cells, name, used), on="model", how="left")
            wide[f"{name}_method"] = used
    langs = ifl_by_cell(labelled, by=("model", "language"), **kw)
    langs = langs[langs["method"] == method].reset_index(drop=True)
    return wide, langs, method


def steering_gains(table5: pd.DataFrame) -> pd.DataFrame:
    """Table 5's figures per model: the paper's setting (primary variant, oracle selection,
    LID proxy): IFL as the mean over (benchmark, language) cells, IFL + remedy, the gain
    (``steer_diff``, with its CI) and the relative increase."""
    cols = {"ifl": "ifl_cells", "ifl_remedy": "ifl_remedy", "diff": "steer_diff",
            "diff_ci_low": "steer_diff_ci_low", "diff_ci_high": "steer_diff_ci_high",
            "relative_increase": "relative_increase", "accuracy_remedy": "accuracy_remedy"}  # fmt: skip
    if table5.empty:
        return pd.DataFrame(columns=["model", *cols.values()])
    rows = table5[table5["primary"] & (table5["source"] == "proxy")]
    return rows[["model", *cols]].rename(columns=cols).reset_index(drop=True)


def paper_reference(paper_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper's LLaVA-1.5 7B and 13B: Table 5's IFL, IFL + remedy, gain and relative
    increase, and per language the mean IFL over its cells of Tables 6-9 (with their spread in
    the model row). No intervals: the paper reports none for these tables."""
    paper_dir = Path(paper_dir)
    t5 = pd.read_csv(paper_dir / "hinck2024_table5_steering.csv")
    t69 = pd.read_csv(paper_dir / "hinck2024_tables6to9_steering_by_language.csv")
    t5 = t5[t5["model"].isin(PAPER_MODELS)]
    cells = t69[t69["model"].isin(PAPER_MODELS) & (t69["dataset"] != "average")]
    langs = (
        cells.groupby(["model", "language"], sort=True)["ifl"]
        .mean()
        .reset_index()
        .rename(columns={"ifl": "estimate"})
    )
    rows = []
    for r in t5.itertuples(index=False):
        cells = langs.loc[langs["model"] == r.model, "estimate"]
        spread = heterogeneity(cells, np.full(len(cells), np.nan))  # no SEs: spread, no Q
        rows.append(
            {"model": r.model, "ifl_cells": r.ifl, "ifl_remedy": r.ifl_remedy,
             "steer_diff": r.diff, "relative_increase": r.relative_increase}
            | {k: spread[k] for k in ("languages_sd", "languages_min", "languages_max")}
        )  # fmt: skip
    names = {"model": lambda d: d["model"].map(PAPER_MODELS)}
    return (
        pd.DataFrame(rows).assign(**names, source=PAPER, method="GlotLID proxy"),
        langs.assign(**names, source=PAPER, method="GlotLID proxy"),
    )


def model_table(
    labelled: pd.DataFrame,
    table5: pd.DataFrame,
    facts: Mapping[str, Mapping[str, Any]],
    paper_dir: str | Path,
    *,
    debias: bool,
    dsl: Mapping[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The chapter's two tables: one row per model (this run's, in ``facts``' order, then the
    paper's references) and one row per model and query language (the IFL)."""
    wide, langs, method = estimates(labelled, debias=debias, dsl=dsl)
    order = list(facts)
    info = pd.DataFrame([{"model": m, **facts[m]} for m in order])
    rows = info.merge(wide, on="model", how="left").merge(
        steering_gains(table5), on="model", how="left"
    )
    spreads = []
    for m in order:
        d = langs[(langs["model"] == m) & (langs["language"] != "en")]
        spreads.append({"model": m, **heterogeneity(d["estimate"], d["se"])})
    rows = rows.merge(pd.DataFrame(spreads), on="model", how="left")
    rows = rows.assign(source=THIS_RUN, method=method)
    ref_rows, ref_langs = paper_reference(paper_dir)
    table = pd.concat([rows, ref_rows], ignore_index=True)
    by_language = pd.concat(
        [langs.assign(source=THIS_RUN)[["model", "language", "estimate", "se", "ci_low",
                                        "ci_high", "method", "source"]], ref_langs],
        ignore_index=True,
    )  # fmt: skip
    return table, by_language


def audit_summary(table: pd.DataFrame) -> dict:
    """summary.json's ``beyond_llava``: per model of this run, the IFL with its interval, the
    fidelity per condition, the steering gain and the estimation method (``dsl``, or
    ``naive_proxy`` without a gold sample)."""

    def num(value: Any) -> float | None:
        return None if value is None or not np.isfinite(value) else round(float(value), 4)

    out: dict[str, dict] = {}
    for r in table[table["source"] == THIS_RUN].to_dict("records"):
        out[r["model"]] = {
            "method": r["method"],
            "ifl": {k: num(r[c]) for k, c in (("estimate", "ifl"), ("ci_low", "ifl_ci_low"),
                                              ("ci_high", "ifl_ci_high"))},
            **{key: num(r.get(key)) for key in ("fidelity_image", "fidelity_text", "steer_diff")},
        }  # fmt: skip
    return out
