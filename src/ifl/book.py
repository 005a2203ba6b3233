"""Assemble and build the Jupyter Book from the sources in book/ and a run's results.

Sources are staged under ``results/<run>/book-src`` (executed notebooks, the rule graph and a
front page filled with summary.json's figures), built with Jupyter Book 1 into a temporary
folder, and moved onto ``book/_build/html`` only when the build succeeded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ifl.io import atomic_dir

SUMMARY_MARKER = "<!-- summary -->"


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """Markdown for the front page: one table per chapter of summary.json.

    Nested mappings become rows (outer keys) by columns (inner keys); deeper levels are
    flattened into ``a / b`` column names, so any chapter's figures render without special code.
    """
    parts = []
    for chapter, figures in summary.items():
        if not isinstance(figures, Mapping):
            parts.append(f"- **{chapter}**: {_fmt(figures)}")
            continue
        rows: dict[str, dict[str, Any]] = {}
        for row, value in figures.items():
            rows[row] = dict(_flatten(value)) if isinstance(value, Mapping) else {"value": value}
        cols = sorted({c for r in rows.values() for c in r})
        lines = [
            f"### {chapter}",
            "",
            "| | " + " | ".join(cols) + " |",
            "|---" * (len(cols) + 1) + "|",
        ]
        for row, vals in rows.items():
            lines.append(f"| {row} | " + " | ".join(_fmt(vals.get(c, "")) for c in cols) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _flatten(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        out += _flatten(v, key + " / ") if isinstance(v, Mapping) else [(key, v)]
    return out


def stage(src: Path, run_dir: Path, notebooks: Sequence[Path], out: Path) -> None:
    """Copy book sources, executed notebooks, figures and the filled front page into ``out``."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("_build"))
    (out / "notebooks").mkdir(exist_ok=True)
    for nb in notebooks:
        shutil.copy2(nb, out / "notebooks" / Path(nb).name)
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    index = (src / "index.md").read_text(encoding="utf-8")
    if SUMMARY_MARKER not in index:
        raise ValueError(f"{src / 'index.md'} lacks the marker {SUMMARY_MARKER!r}")
    (out / "index.md").write_text(
        index.replace(SUMMARY_MARKER, summary_markdown(summary)), encoding="utf-8"
    )


def build(src: Path, run_dir: Path, notebooks: Sequence[Path], out: Path) -> Path:
    """Stage and build the book; on success ``out/html`` holds it (out is e.g. book/_build)."""
    staged = run_dir / "book-src"
    stage(src, run_dir, notebooks, staged)
    work = run_dir / "book-build"
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from jupyter_book.cli.main import main; main()",
            "build",
            str(staged),
            "--path-output",
            str(work),
        ],
        check=True,
    )
    with atomic_dir(out / "html") as tmp:
        shutil.rmtree(tmp)
        shutil.copytree(work / "_build" / "html", tmp)
    return out / "html" / "index.html"
