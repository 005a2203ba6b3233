"""ifl.stats.precision: interval half-widths and their 1/sqrt(n) scaling to the paper's sizes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ifl.stats.precision import half_widths, paper_sizes

IFL = pd.DataFrame(
    {
        "model": ["m", "m", "m"],
        "benchmark": ["MaXM", "VisIT", "MaXM"],
        "estimate": [-0.1, -0.3, -0.2],
        "ci_low": [-0.2, -0.5, -0.9],
        "ci_high": [0.0, -0.1, 0.5],
        "method": ["dsl", "dsl", "naive_proxy"],
    }
)


def test_half_widths_scale_with_the_square_root_of_the_sample_size():
    out = half_widths(IFL, {"MaXM": 100, "VisIT": 50}, {"MaXM": 400}).set_index("benchmark")
    assert len(out) == 2  # the dsl rows only
    assert out.loc["MaXM", "half_width"] == pytest.approx(0.1)
    # four times the tasks: half the half-width
    assert out.loc["MaXM", "half_width_at_paper_n"] == pytest.approx(0.05)
    assert out.loc["VisIT", "half_width"] == pytest.approx(0.2)
    assert np.isnan(out.loc["VisIT", "half_width_at_paper_n"])


def test_the_scaling_matches_a_simulated_mean():
    # The half-width of a mean of n paired differences, simulated at two sizes, scales as sqrt.
    rng = np.random.default_rng(0)
    p_image, p_text = 0.6, 0.9

    def hw(n: int) -> float:
        diffs = rng.binomial(1, p_image, (2000, n)) - rng.binomial(1, p_text, (2000, n))
        return 1.96 * diffs.mean(1).std()

    small, large = hw(100), hw(1600)
    row = pd.DataFrame({"model": ["m"], "benchmark": ["b"], "estimate": [-0.3], "ci_low": [-0.3 - small],
                        "ci_high": [-0.3 + small], "method": ["dsl"]})  # fmt: skip
    scaled = half_widths(row, {"b": 100}, {"b": 1600})["half_width_at_paper_n"].iloc[0]
    assert scaled == pytest.approx(large, rel=0.06)


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="no task count for benchmark 'VisIT'"):
        half_widths(IFL, {"MaXM": 1}, {})
    with pytest.raises(ValueError, match="no 'oracle' rows"):
        half_widths(IFL, {"MaXM": 1, "VisIT": 1}, {}, method="oracle")


def test_paper_sizes_from_the_copied_table1():
    from pathlib import Path

    table1 = pd.read_csv(
        Path(__file__).parents[1] / "book/data/paper/hinck2024_table1_datasets.csv"
    )
    assert paper_sizes(table1) == {"LLaVA-W": 600, "MaXM": 2142, "VisIT": 5740, "MultiQ": 27400}
    with pytest.raises(ValueError, match="unknown dataset 'X'"):
        paper_sizes(pd.DataFrame({"dataset": ["X"], "size": [1]}))
