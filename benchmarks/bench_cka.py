"""Benchmark linear CKA on two float32 100,000 x 4,096 matrices, and RBF CKA on a subsample.

Targets: linear CKA under 30 s and the process under 8 GB peak RSS (inputs ~3.3 GB included).

Y = X[:, perm] + noise, so with r = p / n the expected linear CKA is close to
(1 + 2r) / (2 (1 + r)) (finite-sample closed form for i.i.d. Gaussian columns); this is printed
as a sanity check. Column offsets mimic the large means of LLM hidden states.

Run: .venv/bin/python benchmarks/bench_cka.py [--rows N] [--cols P]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from ifl.represent.cka import linear_cka, rbf_cka


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux


def _make_inputs(n: int, p: int, seed: int, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Fill X and Y in row chunks so generation never holds a full float64 temporary."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(p)
    offset = rng.uniform(-50, 50, size=p).astype(np.float32)
    X = np.empty((n, p), dtype=np.float32)
    Y = np.empty((n, p), dtype=np.float32)
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        block = rng.standard_normal((e - s, p), dtype=np.float32)
        X[s:e] = block + offset
        rng.standard_normal((e - s, p), dtype=np.float32, out=Y[s:e])
        Y[s:e] += block[:, perm]
        Y[s:e] -= offset
    return X, Y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--cols", type=int, default=4_096)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n, p = args.rows, args.cols

    t0 = time.perf_counter()
    X, Y = _make_inputs(n, p, args.seed)
    print(
        f"inputs: 2 x float32 {n:,} x {p:,} = {2 * X.nbytes / 1e9:.2f} GB, "
        f"generated in {time.perf_counter() - t0:.1f} s, peak RSS {_peak_rss_gb():.2f} GiB"
    )

    t0 = time.perf_counter()
    value = linear_cka(X, Y)
    elapsed = time.perf_counter() - t0
    r = p / n
    print(
        f"linear_cka: {value:.6f} (expected ~{(1 + 2 * r) / (2 * (1 + r)):.6f}) "
        f"in {elapsed:.1f} s (target < 30 s)"
    )
    print(f"peak RSS after linear_cka: {_peak_rss_gb():.2f} GiB (target < 8 GB)")

    t0 = time.perf_counter()
    value = rbf_cka(X, Y, max_rows=5000, seed=args.seed)
    print(f"rbf_cka (max_rows=5000): {value:.6f} in {time.perf_counter() - t0:.1f} s")
    print(f"peak RSS after rbf_cka: {_peak_rss_gb():.2f} GiB")


if __name__ == "__main__":
    main()
