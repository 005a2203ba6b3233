"""IFL per cell and design effects on simulated data with known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ifl.annotate import inclusion_probabilities, sample_gold
from ifl.stats.prevalence import design_effects, ifl_by_cell, mean_by_cell, paired_rows

GRID = {
    "vicuna-clip-en": {"llm": "vicuna", "vision": "clip", "data": "en"},
    "yi-clip-en": {"llm": "yi", "vision": "clip", "data": "en"},
    "vicuna-dino-en": {"llm": "vicuna", "vision": "dino", "data": "en"},
    "vicuna-clip-zh": {"llm": "vicuna", "vision": "clip", "data": "zh"},
}
# True image effects: reference -0.30; Yi +0.15, DINO -0.10, Chinese data +0.20.
EFFECT = {
    "vicuna-clip-en": -0.30,
    "yi-clip-en": -0.15,
    "vicuna-dino-en": -0.40,
    "vicuna-clip-zh": -0.10,
}


def _simulate(seed: int, n_tasks: int = 600, size: int = 1500) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for model, effect in EFFECT.items():
        for t in range(n_tasks):
            bench = "A" if t % 2 else "B"
            for cond in ("image", "text"):
                p = 0.9 + (effect if cond == "image" else 0.0)
                rows.append(
                    {
                        "model": model,
                        "task_id": f"t{t}",
                        "benchmark": bench,
                        "language": "zh",
                        "condition": cond,
                        "truth": float(rng.random() < p),
                    }
                )
    df = pd.DataFrame(rows)
    # A biased proxy: misses 30% of faithful image replies (short replies), 5% otherwise.
    miss = np.where(df["condition"] == "image", 0.3, 0.05)
    df["fidelity_proxy"] = np.where(rng.random(len(df)) < miss, 1 - df["truth"], df["truth"])
    gold = sample_gold(df, size, seed=seed, multipliers={})
    df["pi"] = inclusion_probabilities(df, size, multipliers={})
    df["fidelity_gold"] = np.nan
    df.loc[gold.index, "fidelity_gold"] = df.loc[gold.index, "truth"]
    return df


def test_ifl_by_cell_recovers_truth_and_oracle_is_exact():
    df = _simulate(0)
    res = ifl_by_cell(df, by=("model",), oracle="truth")
    dsl_rows = res[res["method"] == "dsl"].set_index("model")
    oracle = res[res["method"] == "oracle"].set_index("model")
    naive = res[res["method"] == "naive_proxy"].set_index("model")
    for model, effect in EFFECT.items():
        emp = df[df["model"] == model].groupby("condition")["truth"].mean()
        assert oracle.loc[model, "estimate"] == pytest.approx(emp["image"] - emp["text"], abs=1e-10)
        assert dsl_rows.loc[model, "ci_low"] - 0.02 < effect < dsl_rows.loc[model, "ci_high"] + 0.02
    # The proxy is biased towards zero fidelity loss for strongly affected models.
    assert abs(naive.loc["vicuna-dino-en", "estimate"] - EFFECT["vicuna-dino-en"]) > 0.05


def test_design_effects_terms_and_signs():
    df = _simulate(1, n_tasks=800, size=2500)
    table = design_effects(df, GRID, "zh").set_index("term")
    assert list(table.index) == ["Intercept", "Image", "LLM", "VE", "Data"]
    assert table.loc["Image", "estimate"] == pytest.approx(-0.30, abs=0.08)
    assert table.loc["LLM", "estimate"] == pytest.approx(0.15, abs=0.1)
    assert table.loc["VE", "estimate"] == pytest.approx(-0.10, abs=0.1)
    assert table.loc["Data", "estimate"] == pytest.approx(0.20, abs=0.1)


def test_unknown_model_and_column_are_named():
    df = _simulate(2, n_tasks=20, size=40)
    with pytest.raises(ValueError, match="'vicuna-clip-en' is not in the design grid"):
        design_effects(df, {}, "zh")
    with pytest.raises(ValueError, match="'nope'"):
        ifl_by_cell(df, by=("nope",))


def test_text_only_tasks_have_no_ifl_and_leave_the_others_unchanged():
    """MultiQ under `image: null`: asked in the text condition only, so it has no IFL cell; its
    rows neither shift another cell's estimate nor break the regression (rank deficiency)."""
    df = _simulate(3, n_tasks=200, size=500)
    text_only = df[(df["condition"] == "text") & (df["task_id"].isin(["t0", "t1", "t2", "t3"]))]
    multiq = text_only.assign(benchmark="MultiQ", task_id="mq-" + text_only["task_id"])
    both = pd.concat([df, multiq], ignore_index=True)
    assert len(paired_rows(both)) == len(df)
    plain = ifl_by_cell(df, by=("model", "benchmark"), oracle="truth")
    with_multiq = ifl_by_cell(both, by=("model", "benchmark"), oracle="truth")
    assert "MultiQ" not in set(with_multiq["benchmark"])
    oracle = with_multiq["method"] == "oracle"
    pd.testing.assert_frame_equal(plain[oracle], with_multiq[oracle])  # least squares: exact
    means = mean_by_cell(both, by=("model", "condition"), oracle="truth")
    assert len(means) == 3 * 2 * len(EFFECT)
    with pytest.raises(ValueError, match="no task was asked in both"):
        ifl_by_cell(multiq, by=("model",))
