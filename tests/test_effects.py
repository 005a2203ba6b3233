"""Fidelity tables: Wilson intervals against statsmodels, paired IFL against a direct computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from ifl.stats.effects import fidelity_table, ifl_table, wilson_interval


def test_wilson_matches_statsmodels():
    k, n = np.array([0, 3, 10, 50]), np.array([10, 10, 10, 80])
    lo, hi = wilson_interval(k, n)
    ref_lo, ref_hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    np.testing.assert_allclose(lo, ref_lo, atol=1e-12)
    np.testing.assert_allclose(hi, ref_hi, atol=1e-12)


def _measured(rng, n=400):
    rows = []
    for t in range(n):
        for cond, p in (("image", 0.6), ("text", 0.9)):
            rows.append(
                {
                    "model": "m",
                    "benchmark": "b",
                    "language": "de",
                    "task_id": f"t{t}",
                    "condition": cond,
                    "fidelity_proxy": int(rng.random() < p),
                }
            )
    return pd.DataFrame(rows)


def test_fidelity_and_ifl_tables():
    df = _measured(np.random.default_rng(0))
    fid = fidelity_table(df)
    assert set(fid["condition"]) == {"image", "text"}
    assert (fid["ci_low"] <= fid["fidelity"]).all() and (fid["fidelity"] <= fid["ci_high"]).all()
    ifl = ifl_table(df)
    wide = df.pivot(index="task_id", columns="condition", values="fidelity_proxy")
    d = wide["image"] - wide["text"]
    assert ifl["ifl"].iloc[0] == pytest.approx(d.mean())
    half = 1.959963984540054 * d.std() / np.sqrt(len(d))
    assert ifl["ci_high"].iloc[0] - ifl["ifl"].iloc[0] == pytest.approx(half)
    assert ifl["ci_low"].iloc[0] < -0.3 + 0.1 and ifl["ci_high"].iloc[0] > -0.3 - 0.1


def test_missing_column_is_named():
    with pytest.raises(ValueError, match="'fidelity_proxy'"):
        fidelity_table(
            pd.DataFrame({c: [1] for c in ("model", "benchmark", "language", "condition")})
        )
