"""The steering tables: Table 5, Tables 6-9, the sweep, the text-condition check, the
selection comparison and the LID model's reading of the questions.

- IFL           = fidelity(image)          - fidelity(text)
- IFL + remedy  = fidelity(image, steered) - fidelity(text)
- diff          = IFL + remedy - IFL,  relative increase = diff / |IFL|   (the paper's Table 5)

A model's figure is the unweighted mean over its (benchmark, language) cells, as the paper's
Table 5 is the mean of the cells of its Tables 6-9; its 95% CI is that of a stratified mean of
per-task paired differences (:func:`stratified_mean`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ifl.steering.plan import primary_variant

#: outcome columns of each measurement source: (fidelity, accuracy)
SOURCES: dict[str, tuple[str, str]] = {
    "proxy": ("fidelity_proxy", "accuracy_proxy"),
    "oracle": ("fidelity_oracle", "accuracy_oracle"),
}
CONFIG = ["study", "variant", "selection", "layer", "strength"]
_CELL = ["benchmark", "language"]


def stratified_mean(
    values: Sequence[float], strata: Sequence[Any], level: float = 0.95
) -> dict[str, float]:
    """The unweighted mean of the stratum means, with a normal CI.

    ``Var = sum_k s_k^2 / n_k / K^2`` (K strata, ``s_k`` the within-stratum SD); a stratum of a
    single value borrows the pooled within-stratum variance. Returns ``estimate, se, ci_low,
    ci_high, n`` (n = number of values); NaN values are dropped.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    df = pd.DataFrame({"v": np.asarray(values, dtype=float), "k": list(strata)}).dropna(
        subset=["v"]
    )
    if df.empty:
        return {"estimate": np.nan, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": 0}
    g = df.groupby("k", sort=True)["v"].agg(["mean", "var", "count"])
    dof = (g["count"] - 1).sum()
    pooled = float(((g["count"] - 1) * g["var"].fillna(0)).sum() / dof) if dof > 0 else np.nan
    var = g["var"].where(g["count"] > 1, pooled)
    k = len(g)
    se = float(np.sqrt((var / g["count"]).sum()) / k)
    est = float(g["mean"].mean())
    z = stats.norm.ppf(0.5 + level / 2)
    return {
        "estimate": est,
        "se": se,
        "ci_low": est - z * se,
        "ci_high": est + z * se,
        "n": int(len(df)),
    }


def paired_tasks(
    measured: pd.DataFrame, value: str, *, condition: str = "image", study: str | None = None
) -> pd.DataFrame:
    """Per steered task: the unsteered ``image`` and ``text`` values and the ``steered`` value
    of ``condition``, one row per (model, task, steering configuration), non-English tasks only."""
    missing = [
        c for c in ("model", "task_id", "condition", value, *CONFIG) if c not in measured.columns
    ]
    if missing:
        raise ValueError(f"measured steering table lacks column {missing[0]!r}")
    base = measured[measured["study"] == "none"]
    wide = base.pivot_table(
        index=["model", "task_id", "benchmark", "language"],
        columns="condition",
        values=value,
        aggfunc="mean",
    )
    wide = wide.reindex(columns=["image", "text"]).reset_index()
    wide.columns.name = None
    sel = (measured["study"] != "none") & (measured["condition"] == condition)
    if study is not None:
        sel &= measured["study"] == study
    steered = measured.loc[sel, ["model", "task_id", *CONFIG, value]].rename(
        columns={value: "steered"}
    )
    out = steered.merge(wide, on=["model", "task_id"], how="inner", validate="many_to_one")
    return out[out["language"] != "en"].reset_index(drop=True)


def _estimate(
    df: pd.DataFrame, values: pd.Series, name: str, level: float, ci: bool = True
) -> dict[str, float]:
    r = stratified_mean(
        values, (df["benchmark"].astype(str) + "|" + df["language"].astype(str)).tolist(), level
    )
    out = {name: r["estimate"]}
    if ci:
        out |= {f"{name}_ci_low": r["ci_low"], f"{name}_ci_high": r["ci_high"]}
    return out


def _sources(measured: pd.DataFrame) -> list[str]:
    return [s for s, cols in SOURCES.items() if all(c in measured.columns for c in cols)]


def _relative(diff: float, ifl: float) -> float:
    return diff / abs(ifl) if ifl != 0 and np.isfinite(ifl) else np.nan


def remedy_table(measured: pd.DataFrame, *, primary: str, level: float = 0.95) -> pd.DataFrame:
    """Table 5 on this run: per model, steering configuration and source (``proxy``: LID and the
    reference judge; ``oracle``: the organism's truth) the IFL, IFL + remedy, diff, relative
    increase = diff / |IFL|, and the accuracy before and after, with 95% CIs.

    ``primary`` (a variant name) flags the paper's setting: that variant with oracle selection.
    """
    rows = []
    for source in _sources(measured):
        fid, acc = SOURCES[source]
        pf = paired_tasks(measured, fid, study="remedy")
        pa = paired_tasks(measured, acc, study="remedy")
        acc_groups = dict(list(pa.groupby(["model", *CONFIG], sort=True)))
        for key, g in pf.groupby(["model", *CONFIG], sort=True):
            a = acc_groups.get(key, pa.iloc[:0])
            row = dict(zip(["model", *CONFIG], key, strict=True)) | {"source": source}
            row |= {"n_tasks": int(g["task_id"].nunique())}
            row |= _estimate(g, g["image"] - g["text"], "ifl", level)
            row |= _estimate(g, g["steered"] - g["text"], "ifl_remedy", level)
            row |= _estimate(g, g["steered"] - g["image"], "diff", level)
            row["relative_increase"] = _relative(row["diff"], row["ifl"])
            row |= _estimate(a, a["image"], "accuracy", level, ci=False)
            row |= _estimate(a, a["steered"], "accuracy_remedy", level, ci=False)
            row |= _estimate(a, a["steered"] - a["image"], "accuracy_diff", level)
            row["primary"] = bool(key[2] == primary and key[3] == "oracle")
            rows.append(row)
    return pd.DataFrame(rows)


def by_language_table(measured: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Tables 6-9 on this run: IFL, IFL + remedy and diff per model, configuration, source,
    benchmark and language, and each group's ``average`` row (the unweighted mean of its cells,
    equal to :func:`remedy_table`'s figures)."""
    z = stats.norm.ppf(0.5 + level / 2)
    out = []
    for source in _sources(measured):
        p = paired_tasks(measured, SOURCES[source][0], study="remedy")
        p = p.assign(
            ifl=p["image"] - p["text"],
            ifl_remedy=p["steered"] - p["text"],
            diff=p["steered"] - p["image"],
            source=source,
        )
        keys = ["model", *CONFIG, "source"]
        cells = (
            p.groupby([*keys, *_CELL], sort=True)
            .agg(
                n=("task_id", "nunique"),
                ifl=("ifl", "mean"),
                ifl_remedy=("ifl_remedy", "mean"),
                diff=("diff", "mean"),
                diff_sd=("diff", "std"),
            )
            .reset_index()
        )
        half = z * cells["diff_sd"] / np.sqrt(cells["n"])
        cells = cells.assign(diff_ci_low=cells["diff"] - half, diff_ci_high=cells["diff"] + half)
        avg = (
            cells.groupby(keys, sort=True)
            .agg(
                n=("n", "sum"),
                ifl=("ifl", "mean"),
                ifl_remedy=("ifl_remedy", "mean"),
                diff=("diff", "mean"),
            )
            .reset_index()
            .assign(benchmark="average", language="-")
        )
        out += [cells.drop(columns="diff_sd"), avg]
    if not out:
        return pd.DataFrame()
    return pd.concat(out, ignore_index=True)


def sweep_table(measured: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """The fidelity / accuracy trade-off of the sweep: per model, layer, strength and source the
    steered image-condition fidelity, IFL + remedy and accuracy (strength 0 = the main run's
    unsteered replies of the same tasks, shown at every layer)."""
    cols = [
        "model",
        "layer",
        "strength",
        "source",
        "n_tasks",
        "fidelity",
        "fidelity_ci_low",
        "fidelity_ci_high",
        "ifl_remedy",
        "accuracy",
        "accuracy_ci_low",
        "accuracy_ci_high",
    ]
    rows = []
    for source in _sources(measured):
        fid, acc = SOURCES[source]
        pf = paired_tasks(measured, fid, study="sweep")
        pa = paired_tasks(measured, acc, study="sweep")
        if pf.empty:
            continue
        acc_groups = dict(list(pa.groupby(["model", "layer", "strength"], sort=True)))
        for (model, layer, strength), g in pf.groupby(["model", "layer", "strength"], sort=True):
            a = acc_groups.get((model, layer, strength), pa.iloc[:0])
            for s, fcol, acol in ((0.0, "image", "image"), (strength, "steered", "steered")):
                row = {
                    "model": model,
                    "layer": layer,
                    "strength": s,
                    "source": source,
                    "n_tasks": int(g["task_id"].nunique()),
                }
                row |= _estimate(g, g[fcol], "fidelity", level)
                row |= _estimate(g, g[fcol] - g["text"], "ifl_remedy", level, ci=False)
                row |= _estimate(a, a[acol], "accuracy", level)
                rows.append(row)
    df = pd.DataFrame(rows, columns=cols)
    return (
        df.drop_duplicates(["model", "layer", "strength", "source"])
        .sort_values(["model", "source", "layer", "strength"])
        .reset_index(drop=True)
    )


def text_check_table(measured: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Steering the text condition: fidelity and accuracy of the text condition unsteered and
    steered, and their differences with CIs (per model, configuration and source)."""
    rows = []
    for source in _sources(measured):
        fid, acc = SOURCES[source]
        pf = paired_tasks(measured, fid, condition="text", study="remedy")
        pa = paired_tasks(measured, acc, condition="text", study="remedy")
        acc_groups = dict(list(pa.groupby(["model", *CONFIG], sort=True)))
        for key, g in pf.groupby(["model", *CONFIG], sort=True):
            a = acc_groups.get(key, pa.iloc[:0])
            row = dict(zip(["model", *CONFIG], key, strict=True)) | {"source": source}
            row |= {"n_tasks": int(g["task_id"].nunique())}
            row |= _estimate(g, g["text"], "fidelity_text", level, ci=False)
            row |= _estimate(g, g["steered"], "fidelity_text_steered", level, ci=False)
            row |= _estimate(g, g["steered"] - g["text"], "fidelity_diff", level)
            row |= _estimate(a, a["text"], "accuracy_text", level, ci=False)
            row |= _estimate(a, a["steered"], "accuracy_text_steered", level, ci=False)
            row |= _estimate(a, a["steered"] - a["text"], "accuracy_diff", level)
            rows.append(row)
    return pd.DataFrame(rows)


def question_lid_table(questions: pd.DataFrame) -> pd.DataFrame:
    """Per query language: how often the LID model finds it in the question (auto selection)."""
    q = questions.assign(agree=questions["detected"].fillna("") == questions["language"])
    return (
        q.groupby("language", sort=True)
        .agg(
            n=("task_id", "size"),
            agreement=("agree", "mean"),
            most_detected=("language_pred", lambda s: s.value_counts().index[0]),
        )
        .reset_index()
    )


def selection_table(table5: pd.DataFrame, questions: pd.DataFrame) -> pd.DataFrame:
    """Oracle against automatic attribute selection (primary variant): IFL + remedy and diff of
    both, per model and source, with the LID model's agreement on the steered questions."""
    if table5.empty:
        return pd.DataFrame()
    prim = table5[table5["primary"]]
    if prim.empty:
        return pd.DataFrame()
    variant = prim["variant"].iloc[0]
    t = table5[(table5["variant"] == variant) & (table5["study"] == "remedy")]
    wide = t.pivot_table(
        index=["model", "source"], columns="selection", values=["ifl", "ifl_remedy", "diff"]
    )
    wide.columns = [f"{v}_{s}" for v, s in wide.columns]
    wide = wide.reset_index()
    steered = questions[questions["language"] != "en"]
    agreement = (
        float((steered["detected"].fillna("") == steered["language"]).mean())
        if len(steered)
        else np.nan
    )
    return wide.assign(variant=variant, question_lid_agreement=agreement)


def steering_summary(table5: pd.DataFrame) -> dict:
    """Table 5's figures for summary.json: ``ifl``, ``ifl_remedy``, ``diff`` and
    ``relative_increase`` (model -> value) of the paper's setting (primary variant, oracle
    selection, LID proxy)."""
    rows = table5[table5["primary"] & (table5["source"] == "proxy")] if len(table5) else table5
    out: dict[str, dict[str, float | None]] = {}
    for key in ("ifl", "ifl_remedy", "diff", "relative_increase"):
        out[key] = {
            r.model: (
                None if not np.isfinite(getattr(r, key)) else round(float(getattr(r, key)), 4)
            )
            for r in rows.itertuples(index=False)
        }
    return out


def steering_tables(
    measured: pd.DataFrame, questions: pd.DataFrame, steering: Mapping[str, Any]
) -> dict[str, pd.DataFrame]:
    """Every steering table of a run by file name, from the measured replies and the question
    LID table (the selection comparison over the questions of ``steering.benchmarks``)."""
    table5 = remedy_table(measured, primary=primary_variant(steering))
    asked = questions[questions["benchmark"].isin(set(steering["benchmarks"]))]
    return {
        "steering_table5.csv": table5,
        "steering_by_language.csv": by_language_table(measured),
        "steering_sweep.csv": sweep_table(measured),
        "steering_text.csv": text_check_table(measured),
        "steering_selection.csv": selection_table(table5, asked),
        "steering_question_lid.csv": question_lid_table(questions),
    }
