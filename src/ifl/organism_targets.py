"""What the organism must do to stand in for the paper's models, measured against its tables.

LLaVA-1.5 keeps replying in the query language when the image is replaced by its description,
reads its context and answers questions about images; the image's cost to fidelity (IFL) is
only measured where the paper measures it if the organism's VLMs do the same. Each target names
a threshold and the cells it applies to; :func:`organism_targets` reports the worst cell and how
many cells miss it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ifl.config import vlm_name
from ifl.summary import pooled_rate

COLUMNS = ("target", "threshold", "cells", "below", "worst", "worst_cell", "met")


def _row(target: str, threshold: float, values: pd.Series) -> dict[str, Any]:
    """One target over ``values`` (indexed by cell label): the worst cell and the misses."""
    if values.empty:
        raise ValueError(f"target {target!r} has no cells in the tables")
    worst = values.idxmin()
    below = int((values < threshold).sum())
    return {
        "target": target,
        "threshold": threshold,
        "cells": len(values),
        "below": below,
        "worst": round(float(values.min()), 4),
        "worst_cell": " / ".join(map(str, worst)) if isinstance(worst, tuple) else str(worst),
        "met": below == 0,
    }


def organism_targets(tables: str | Path, cfg: Mapping[str, Any]) -> pd.DataFrame:
    """The organism's targets from its tables in ``tables`` (``organism_*.csv``) and the config
    (the grid's backbones and training-data languages, the backbones' mixes).

    * VLMs: text-condition fidelity >= 0.80 per benchmark and language of the backbone's mix;
      accuracy >= 0.70 on short questions in the training-data language, per condition; the
      English-data VLMs >= 0.70 on English short questions, per condition.
    * Backbones (and the base LM): text-only accuracy >= 0.80 per short-question kind and
      language of the mix, text fidelity >= 0.90 per language; every pretrained LM (the
      induction checkpoint too) >= 0.90 on the zero-shot lookup.
    """
    tables = Path(tables)
    mixes = {name: set(b["mix"]) for name, b in cfg["backbones"].items()}
    mixes["base_llm"] = set(cfg["organism"]["base_llm"]["mix"])
    grid = {vlm_name(e): e for e in cfg["grid"]}

    vlm = pd.read_csv(tables / "organism_vlm_fidelity.csv")
    text = vlm[(vlm["condition"] == "text") & vlm["model"].isin(grid)]
    backbone_mix = text["model"].map(lambda m: mixes[grid[m]["llm"]])
    in_mix = pd.Series(
        [lang in mix for lang, mix in zip(text["language"], backbone_mix, strict=True)],
        index=text.index,
        dtype=bool,
    )
    text = text[in_mix].set_index(["model", "benchmark", "language"])["fidelity"]

    by_lang = pd.read_csv(tables / "organism_accuracy_language.csv")
    own = by_lang[by_lang["own"]].set_index(["model", "condition"])["accuracy"]
    english_models = [m for m, e in grid.items() if e["data"] == "en"]
    english = by_lang[(by_lang["language"] == "en") & by_lang["model"].isin(english_models)]
    english = english.set_index(["model", "condition"])["accuracy"]

    llm = pd.read_csv(tables / "organism_llm_text.csv")
    llm_acc = llm.set_index(["backbone", "language", "kind"])["accuracy"]
    llm_fid = pooled_rate(llm, ["backbone", "language"], "fidelity")
    lookup = pd.read_csv(tables / "organism_llm_lookup.csv").set_index("checkpoint")["accuracy"]

    rows = [
        _row("VLM text-condition fidelity, every benchmark x language of the backbone's mix", 0.80, text),
        _row("VLM accuracy, short questions in the training-data language (per condition)", 0.70, own),
        _row("English-data VLM accuracy, English short questions (per condition)", 0.70, english),
        _row("Backbone text accuracy per short-question kind x language of the mix", 0.80, llm_acc),
        _row("Backbone text fidelity per language of the mix", 0.90, llm_fid),
        _row("Zero-shot sequential lookup of every pretrained LM", 0.90, lookup),
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS))
