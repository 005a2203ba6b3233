"""Wall time and peak memory per Snakemake rule of one run, from its ``benchmark:`` files.

    .venv/bin/python benchmarks/bench_rules.py results/organism

Prints the per-rule table (jobs, summed and longest wall time, peak RSS) and the busy wall time
spanned by the benchmarked jobs (first start to last end of each stretch of back-to-back jobs,
idle gaps between reruns left out), the figure the organism's summary calls ``minutes_total``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from ifl.dag import benchmark_table
from ifl.organism_report import run_span


def main(argv: list[str] | None = None) -> int:
    """Print the figures of the run in ``argv[0]`` (default results/organism)."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("run_dir", nargs="?", default="results/organism")
    bench = Path(p.parse_args(argv).run_dir) / "benchmarks"
    try:
        table = benchmark_table(bench)
    except ValueError as exc:
        print(f"bench_rules: {exc}", file=sys.stderr)
        return 2
    with pd.option_context("display.width", 120, "display.max_rows", 200):
        print(
            table.assign(minutes=(table["seconds"] / 60).round(2)).round(1).to_string(index=False)
        )
    minutes, jobs = run_span(bench)
    print(
        f"\njobs: {int(table['jobs'].sum())}; summed job time: {table['seconds'].sum() / 60:.1f} min; "
        f"busy wall time: {minutes:.1f} min ({jobs} timed jobs); "
        f"peak RSS: {table['max_rss_mb'].max():.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
