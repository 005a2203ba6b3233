"""The book (workflow/rules/book.smk): the rule graph and the Jupyter Book."""

from __future__ import annotations

from pathlib import Path

from ifl.cli.registry import REQ, Subcommands

command = Subcommands()


@command("rulegraph", ("--dot", REQ), ("--out", REQ))
def _rulegraph(a, cfg):
    """The rule graph of the run's DAG drawn from Snakemake's dot output."""
    from ifl.dag import draw, parse_rulegraph

    draw(parse_rulegraph(Path(a.dot).read_text(encoding="utf-8")), a.out)


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
