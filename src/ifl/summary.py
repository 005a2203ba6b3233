"""The headline figures of every chapter, collected into results/<run>/summary.json."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def _r(x: float) -> float:
    return round(float(x), 4)


def fidelity_summary(fidelity: pd.DataFrame) -> dict:
    """Mean fidelity per model and condition (model -> condition -> value)."""
    g = (
        fidelity.assign(hits=fidelity["fidelity"] * fidelity["n"])
        .groupby(["model", "condition"])[["hits", "n"]]
        .sum()
    )
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
                "estimate": _r(r.estimate),
                "ci_low": _r(r.ci_low),
                "ci_high": _r(r.ci_high),
            }
    return out


def organism_summary(tables: Path, bench_dir: str | None) -> dict:
    """The organism's quality figures (summary.json's ``organism``).

    Backbones: ``llm_text_fidelity`` and ``llm_text_accuracy`` (short text questions, per
    language of the backbone's mix), ``llm_lookup`` (zero-shot sequential lookup). VLMs:
    ``vlm_text_fidelity`` (the text condition, per query language, over every benchmark),
    ``vlm_accuracy_own`` (short questions in the model's training-data language, per condition)
    and ``vlm_accuracy_en_short`` (English short questions with the image). ``lid_rate`` is the
    LID accuracy on rendered descriptions; ``vision_probe`` the held-out accuracy of linear
    probes of object attributes from each encoder's features; ``minutes_total`` and
    ``jobs_timed`` the busy wall time behind the current results and the jobs it covers
    (:func:`ifl.organism_report.run_span`; idle gaps between reruns left out).
    """
    from ifl.organism_report import run_span

    acc = pd.read_csv(tables / "organism_accuracy.csv")
    own = pd.read_csv(tables / "organism_accuracy_language.csv")
    llm = pd.read_csv(tables / "organism_llm_text.csv")
    lookup = pd.read_csv(tables / "organism_llm_lookup.csv")
    vlm = pd.read_csv(tables / "organism_vlm_fidelity.csv")
    lid = pd.read_csv(tables / "organism_lid.csv")
    probe = pd.read_csv(tables / "organism_probe.csv")

    def pooled(df: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
        return (
            df.assign(hits=df[value] * df["n"])
            .groupby(keys, as_index=False)[["hits", "n"]]
            .sum()
            .assign(value=lambda d: d["hits"] / d["n"])
        )

    def nested(df: pd.DataFrame, outer: str, inner: str) -> dict:
        return {
            k: {r[inner]: _r(r["value"]) for _, r in g.iterrows()}
            for k, g in df.groupby(outer, sort=True)
        }

    text = vlm[vlm["condition"] == "text"]
    mine = own[own["own"]]
    out = {
        "vlm_accuracy_en_short": {r.model: _r(r.accuracy) for r in acc.itertuples()},
        "vlm_accuracy_own": nested(
            pooled(mine, ["model", "condition"], "accuracy"), "model", "condition"
        ),
        "vlm_text_fidelity": nested(
            pooled(text, ["model", "language"], "fidelity"), "model", "language"
        ),
        "llm_text_fidelity": nested(
            pooled(llm, ["backbone", "language"], "fidelity"), "backbone", "language"
        ),
        "llm_text_accuracy": nested(
            pooled(llm, ["backbone", "language"], "accuracy"), "backbone", "language"
        ),
        "llm_lookup": {r.checkpoint: _r(r.accuracy) for r in lookup.itertuples()},
        "lid_rate": {
            r.language: _r(r.rate) for r in lid[lid["kind"] == "description"].itertuples()
        },
    }
    out["vision_probe"] = {
        e: {r.attribute: _r(r.accuracy) for r in probe[probe["encoder"] == e].itertuples()}
        for e in sorted(set(probe["encoder"]))
    }
    if bench_dir:
        minutes, jobs = run_span(bench_dir)
        out["minutes_total"], out["jobs_timed"] = round(minutes, 1), jobs
    return out
