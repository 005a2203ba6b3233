"""Benchmark of the DSL estimator at the paper's scale (~730k judged completions).

Simulates Table 4's design (``fidelity ~ image + image:llm_yi + image:llm_leo +
image:vision_dino + image:data_zh + image:data_de``, numeric dummies), 1,000 labelled rows
drawn with unequal probabilities and a proxy whose errors depend on reply length, then runs
``dsl`` with 5-fold cross-fitting. Prints wall time, peak memory and the estimates.

Usage: python benchmarks/bench_dsl.py [--rows 730000] [--labelled 1000] [--learner logistic]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time

import numpy as np
import pandas as pd

from ifl.stats.dsl import dsl

FORMULA = (
    "fidelity ~ image + image:llm_yi + image:llm_leo + image:vision_dino"
    " + image:data_zh + image:data_de"
)
TRUTH = {
    "(Intercept)": 0.8,
    "image": -0.3,
    "image:llm_yi": 0.17,
    "image:llm_leo": 0.07,
    "image:vision_dino": -0.2,
    "image:data_zh": 0.1,
    "image:data_de": 0.05,
}


def simulate(n: int, n_labelled: int, seed: int = 0) -> pd.DataFrame:
    """Rows of (configuration, image) with a gold fidelity, a biased proxy and pi."""
    rng = np.random.default_rng(seed)
    llm = rng.integers(0, 3, n)  # vicuna (reference), yi, leo
    dino = rng.integers(0, 2, n)
    data_lang = rng.integers(0, 3, n)  # english (reference), zh, de
    df = pd.DataFrame(
        {
            "image": rng.integers(0, 2, n).astype(float),
            "llm_yi": (llm == 1).astype(float),
            "llm_leo": (llm == 2).astype(float),
            "vision_dino": dino.astype(float),
            "data_zh": (data_lang == 1).astype(float),
            "data_de": (data_lang == 2).astype(float),
        }
    )
    p = TRUTH["(Intercept)"] + df["image"] * (
        TRUTH["image"] + sum(TRUTH[f"image:{c}"] * df[c] for c in df.columns if c != "image")
    )
    gold = rng.random(n) < p
    short = rng.random(n) < np.where(df["image"] == 1, 0.5, 0.2)  # image replies are terser
    miss = rng.random(n) < 0.03 + 0.3 * short
    df["proxy"] = np.where(miss, ~gold, gold).astype(float)
    df["short"] = short.astype(float)
    # stratified simple random sampling: short replies oversampled 4x, exactly n_labelled labels
    weight = np.where(short, 4.0, 1.0)
    n_short = int(short.sum())
    k_short = round(n_labelled * 4.0 * n_short / weight.sum())
    labelled = np.zeros(n, dtype=bool)
    for stratum, k in ((short, k_short), (~short, n_labelled - k_short)):
        labelled[rng.choice(np.flatnonzero(stratum), size=k, replace=False)] = True
    df["pi"] = np.where(short, k_short / n_short, (n_labelled - k_short) / (n - n_short))
    df["fidelity"] = np.where(labelled, gold, np.nan)
    return df


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=730_000)
    parser.add_argument("--labelled", type=int, default=1000)
    parser.add_argument("--learner", default="logistic")
    parser.add_argument("--splits", type=int, default=1)
    args = parser.parse_args(argv)

    df = simulate(args.rows, args.labelled)
    before_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    start = time.perf_counter()
    res = dsl(
        df,
        FORMULA,
        surrogate="proxy",
        covariates=["short"],
        learner=args.learner,
        n_folds=5,
        n_splits=args.splits,
    )
    wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    table = res.table.assign(truth=res.table["term"].map(TRUTH))
    print(f"rows={res.n} labelled={res.n_labelled} learner={args.learner} splits={args.splits}")
    print(f"dsl wall time: {wall:.2f} s (target < 60 s)")
    print(f"peak memory (ru_maxrss): {peak_mb:.0f} MiB ({before_mb:.0f} MiB before dsl)")
    print(table.round(4).to_string(index=False))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
