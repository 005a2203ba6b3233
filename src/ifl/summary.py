"""The headline figures of every chapter, collected into results/<run>/summary.json."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def _r(x: float) -> float:
    return round(float(x), 4)


def pooled_rate(df: pd.DataFrame, keys: list[str], value: str) -> pd.Series:
    """The mean of ``value`` per ``keys``, each row weighted by its count ``n`` (the rate over
    the pooled items of the rows), indexed by ``keys``."""
    g = df.assign(hits=df[value] * df["n"]).groupby(keys)[["hits", "n"]].sum()
    return g["hits"] / g["n"]


def _nested(rates: pd.Series) -> dict:
    """``outer -> inner -> rounded value`` of a rate indexed by two keys."""
    out: dict[str, dict[str, float]] = {}
    for (outer, inner), value in rates.items():
        out.setdefault(outer, {})[inner] = _r(value)
    return out


def fidelity_summary(fidelity: pd.DataFrame) -> dict:
    """Mean fidelity per model and condition (model -> condition -> value)."""
    return _nested(pooled_rate(fidelity, ["model", "condition"], "fidelity"))


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

    text = vlm[vlm["condition"] == "text"]
    mine = own[own["own"]]
    out = {
        "vlm_accuracy_en_short": {r.model: _r(r.accuracy) for r in acc.itertuples()},
        "vlm_accuracy_own": _nested(pooled_rate(mine, ["model", "condition"], "accuracy")),
        "vlm_text_fidelity": _nested(pooled_rate(text, ["model", "language"], "fidelity")),
        "llm_text_fidelity": _nested(pooled_rate(llm, ["backbone", "language"], "fidelity")),
        "llm_text_accuracy": _nested(pooled_rate(llm, ["backbone", "language"], "accuracy")),
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
