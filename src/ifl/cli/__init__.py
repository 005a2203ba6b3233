"""``ifl``: one entry point, one subcommand per Snakemake rule, one module per rule file.

The rules of ``workflow/rules/<stage>.smk`` call the subcommands of ``ifl/cli/<stage>.py``; a
subcommand that rules of two files call lives with the file the Snakefile includes first. Every
subcommand reads the resolved config (``--config``) and its inputs by path, calls the library,
and writes its outputs atomically. Errors in the inputs end the command with a one-line message.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ifl import config as config_mod
from ifl.cli.registry import Handler

#: The modules of the subcommands, one per rule file, in the Snakefile's include order.
STAGES = (
    "data",
    "translate",
    "train",
    "generate",
    "paper_download",
    "paper_data",
    "paper_generate",
    "paper_train",
    "measure",
    "analyse",
    "inside",
    "audit",
    "remedies",
    "paper_remedies",
    "book",
)


def subcommands() -> dict[str, tuple[str, Handler, list]]:
    """Every subcommand by name: its stage (module of :mod:`ifl.cli`), handler and arguments."""
    out: dict[str, tuple[str, Handler, list]] = {}
    for stage in STAGES:
        module = importlib.import_module(f"ifl.cli.{stage}")
        for name, (fn, args) in module.command.handlers.items():
            if name in out:
                raise ValueError(f"subcommand {name!r} is in ifl.cli.{out[name][0]} and {stage}")
            out[name] = (stage, fn, args)
    return out


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run one subcommand; returns the exit code."""
    commands = subcommands()
    parser = argparse.ArgumentParser(prog="ifl", description=__doc__)
    parser.add_argument(
        "--config", required=True, help="resolved config YAML (results/<run>/config.yaml)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, fn, args) in commands.items():
        p = sub.add_parser(name, description=fn.__doc__)
        for flag, kwargs in args:
            p.add_argument(flag, **kwargs)
    a = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        cfg = config_mod.load(a.config)
        commands[a.command][1](a, cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"ifl {a.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0
