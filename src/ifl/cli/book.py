"""The book (workflow/rules/book.smk): the Jupyter Book."""

from __future__ import annotations

from pathlib import Path

from ifl.cli.registry import REQ, Subcommands

command = Subcommands()


@command(
    "book",
    ("--src", REQ),
    ("--run-dir", REQ),
    ("--notebooks", {"nargs": "+", **REQ}),
    ("--out", REQ),
)
def _book(a, cfg):
    """The Jupyter Book of the run: sources, executed notebooks and summary, built to HTML."""
    from ifl.book import build

    print(build(Path(a.src), Path(a.run_dir), [Path(n) for n in a.notebooks], Path(a.out)))
