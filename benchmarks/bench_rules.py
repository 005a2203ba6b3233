"""Wall time and peak memory per Snakemake rule of one run, from its ``benchmark:`` files.

Every heavy rule writes ``results/<run>/benchmarks/<rule>[-<wildcards>].tsv`` (columns ``s``,
``h:m:s``, ``max_rss`` in MB, ``max_vms``, ..., ``cpu_time``; one row per repeat). Jobs are grouped
by rule name, the file stem before the first ``-``. Prints a table per rule, the totals and the
slowest jobs.

    .venv/bin/python benchmarks/bench_rules.py results/organism --top 10
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

NUMERIC = (
    "s",
    "max_rss",
    "max_vms",
    "max_uss",
    "max_pss",
    "io_in",
    "io_out",
    "mean_load",
    "cpu_time",
)


def read_benchmarks(run_dir: str | Path) -> pd.DataFrame:
    """One row per job: ``job`` (file stem), ``rule``, ``repeats`` and the mean of each column.

    Missing values (``NA``/``-``, as Snakemake writes when it could not measure) become NaN;
    ``max_rss`` is the maximum over repeats. Files that are empty or not a benchmark table are
    skipped with a note on stderr.
    """
    bench = Path(run_dir) / "benchmarks"
    rows = []
    for path in sorted(bench.glob("*.tsv")):
        try:
            df = pd.read_csv(path, sep="\t", na_values=["NA", "-", ""])
        except (pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
            print(f"skipping {path.name}: {exc}", file=sys.stderr)
            continue
        if "s" not in df.columns or df.empty:
            print(f"skipping {path.name}: no 's' column or no rows", file=sys.stderr)
            continue
        values = {c: pd.to_numeric(df[c], errors="coerce") for c in NUMERIC if c in df.columns}
        row = {"job": path.stem, "rule": path.stem.split("-", 1)[0], "repeats": len(df)}
        row |= {c: v.mean() for c, v in values.items()}
        if "max_rss" in values:
            row["max_rss"] = values["max_rss"].max()
        rows.append(row)
    columns = ["job", "rule", "repeats", *NUMERIC]
    return pd.DataFrame(rows).reindex(columns=columns)


def per_rule(jobs: pd.DataFrame) -> pd.DataFrame:
    """Jobs, total/mean/max wall seconds, CPU seconds and peak RSS (MB) per rule, slowest first."""
    grouped = jobs.groupby("rule", sort=False)
    table = pd.DataFrame(
        {
            "jobs": grouped.size(),
            "wall_s": grouped["s"].sum(),
            "mean_s": grouped["s"].mean(),
            "max_s": grouped["s"].max(),
            "cpu_s": grouped["cpu_time"].sum(min_count=1),
            "peak_rss_mb": grouped["max_rss"].max(),
        }
    )
    return table.sort_values("wall_s", ascending=False)


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def report(run_dir: str | Path, top: int = 10) -> str:
    """The printed report for ``run_dir`` (a clear message when it has no benchmark files)."""
    bench = Path(run_dir) / "benchmarks"
    jobs = read_benchmarks(run_dir)
    if jobs.empty:
        return (
            f"no benchmark files in {bench} (Snakemake writes <rule>[-<wildcards>].tsv there "
            "when a job with a benchmark: directive finishes)"
        )
    rules = per_rule(jobs)
    total_wall, total_cpu = jobs["s"].sum(), jobs["cpu_time"].sum(min_count=1)
    lines = [f"{len(jobs)} benchmarked jobs of {len(rules)} rules in {bench}", ""]
    with pd.option_context("display.width", 120, "display.max_rows", 200):
        lines.append(rules.round(1).to_string())
        lines += [
            "",
            f"total: {len(jobs)} jobs, {total_wall:.1f} s wall ({_hms(total_wall)}) summed over "
            f"jobs, {total_cpu:.1f} s CPU, peak RSS {jobs['max_rss'].max():.0f} MB "
            f"({jobs.loc[jobs['max_rss'].idxmax(), 'job'] if jobs['max_rss'].notna().any() else '-'})",
            "",
            f"slowest {min(top, len(jobs))} jobs:",
        ]
        slow = jobs.nlargest(top, "s")[["job", "s", "cpu_time", "max_rss"]]
        lines.append(slow.assign(**{"h:m:s": slow["s"].map(_hms)}).round(1).to_string(index=False))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the report; exit code 2 when the run directory does not exist."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", default="results/organism")
    parser.add_argument("--top", type=int, default=10, help="how many of the slowest jobs to list")
    args = parser.parse_args(argv)
    if not Path(args.run_dir).is_dir():
        print(f"run directory {args.run_dir!r} does not exist", file=sys.stderr)
        return 2
    print(report(args.run_dir, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
