"""Redrawn gold samples: DSL's interval coverage against a known truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ifl.stats.coverage import coverage_summary, redrawn_intervals

# True fidelity per condition: text 0.9, image 0.9 + effect.
EFFECT = {"m-a": -0.4, "m-b": -0.1}


def _replies(seed: int = 0, n_tasks: int = 120) -> pd.DataFrame:
    """Every reply of two models on two benchmarks in three languages, with the truth known
    and a proxy that misses 30% of faithful image replies (5% otherwise)."""
    rng = np.random.default_rng(seed)
    rows = [
        {
            "model": model,
            "task_id": f"{bench}-{lang}-{t}",
            "benchmark": bench,
            "language": lang,
            "condition": cond,
            "truth": float(rng.random() < 0.9 + (effect if cond == "image" else 0.0)),
        }
        for model, effect in EFFECT.items()
        for bench in ("A", "B")
        for lang in ("de", "zh", "fr")
        for t in range(n_tasks // 3)
        for cond in ("image", "text")
    ]
    df = pd.DataFrame(rows)
    miss = np.where(df["condition"] == "image", 0.3, 0.05)
    return df.assign(
        fidelity_proxy=np.where(rng.random(len(df)) < miss, 1 - df["truth"], df["truth"])
    )


def test_truth_is_the_difference_of_the_cells_means() -> None:
    df = _replies()
    got = redrawn_intervals(df, sizes=[200], draws=1, seed=0, truth="truth")
    means = df.groupby(["model", "benchmark", "condition"])["truth"].mean().unstack()
    expected = (means["image"] - means["text"]).rename("expected")
    merged = got.set_index(["model", "benchmark"]).join(expected)
    np.testing.assert_allclose(merged["truth"], merged["expected"], atol=1e-12)
    assert len(got) == 4 and set(got["size"]) == {200}


def test_intervals_cover_the_truth_at_their_nominal_rate() -> None:
    df = _replies()
    got = redrawn_intervals(df, sizes=[400], draws=60, seed=1, truth="truth")
    summary = coverage_summary(got, by=["size"])
    # 240 intervals: a binomial 95% band around 0.95 is about +-0.03.
    assert 0.90 <= summary["coverage"].iloc[0] <= 0.99
    # DSL is unbiased: the mean error is within 3 Monte Carlo standard errors of zero.
    err = got.estimate - got.truth
    assert abs(err.mean()) < 3 * err.std(ddof=1) / np.sqrt(len(err))
    assert summary["intervals"].iloc[0] == 240


def test_coverage_summary_counts_and_impossible_estimates() -> None:
    intervals = pd.DataFrame(
        {
            "size": [10, 10, 10, 10],
            "benchmark": ["A", "A", "B", "B"],
            "estimate": [-1.2, 0.0, 0.1, 0.3],
            "ci_low": [-1.5, -0.2, 0.0, 0.25],
            "ci_high": [-0.9, 0.2, 0.2, 0.35],
            "truth": [-0.8, 0.1, 0.1, 0.1],
        }
    ).assign(covered=lambda d: (d.ci_low <= d.truth) & (d.truth <= d.ci_high))
    s = coverage_summary(intervals).set_index("benchmark")
    assert s.loc["A", "coverage"] == 0.5 and s.loc["B", "coverage"] == 0.5
    assert s.loc["A", "outside_unit"] == 0.5 and s.loc["B", "outside_unit"] == 0.0
    assert s.loc["A", "bias"] == pytest.approx((-0.4 - 0.1) / 2)
    assert s.loc["B", "rmse"] == pytest.approx(np.sqrt((0 + 0.2**2) / 2))
    assert s.loc["A", "half_width"] == pytest.approx((0.3 + 0.2) / 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"truth": "nope"}, "'nope'"),
        ({"sizes": [10**6]}, "gold size 1000000"),
        ({"draws": 0}, "draws must be at least 1, got 0"),
    ],
)
def test_bad_input_is_named(kwargs: dict, message: str) -> None:
    args = {"sizes": [100], "draws": 1, "seed": 0, "truth": "truth", **kwargs}
    with pytest.raises(ValueError, match=message):
        redrawn_intervals(_replies(n_tasks=30), **args)
