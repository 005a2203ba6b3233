"""The headline figures of every chapter, collected into results/<run>/summary.json."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

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


def organism_summary(tables: Path, cfg: Mapping[str, Any], bench_dir: str | None) -> dict:
    """The organism's quality figures (summary.json's ``organism``).

    ``llm_text_fidelity`` lists, per backbone, the languages of its pretraining mix;
    ``lid_rate`` is the LID accuracy on rendered descriptions; ``vision_probe`` the held-out
    accuracy of linear probes of object attributes from each encoder's features;
    ``minutes_total`` and ``jobs_timed`` the busy wall time behind the current results and the
    jobs it covers (:func:`ifl.organism_report.run_span`; idle gaps between reruns left out).
    """
    from ifl.organism_report import run_span

    acc = pd.read_csv(tables / "organism_accuracy.csv")
    fid = pd.read_csv(tables / "organism_llm_fidelity.csv")
    lid = pd.read_csv(tables / "organism_lid.csv")
    probe = pd.read_csv(tables / "organism_probe.csv")
    out = {
        "vlm_accuracy_en_short": {r.model: _r(r.accuracy) for r in acc.itertuples()},
        "llm_text_fidelity": {
            b: {
                r.language: _r(r.fidelity)
                for r in fid[fid["backbone"] == b].itertuples()
                if r.language in cfg["backbones"][b]["mix"]
            }
            for b in sorted(set(fid["backbone"]))
        },
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
