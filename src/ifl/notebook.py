"""Execute a parameterised notebook with papermill, atomically.

``python -m ifl.notebook IN OUT -p name value ...`` is papermill's command line, except that the
executed notebook is written to a temporary file first: a failing notebook never replaces a
good one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import papermill
import yaml

from ifl.io import atomic_file


def execute(
    src: str | Path, dst: str | Path, parameters: dict, cwd: str | Path | None = None
) -> None:
    """Run ``src`` with ``parameters`` injected and write the executed notebook to ``dst``."""
    with atomic_file(dst) as tmp:
        papermill.execute_notebook(
            str(src),
            str(tmp),
            parameters=parameters,
            cwd=str(cwd) if cwd else None,
            kernel_name="python3",
            progress_bar=False,
        )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    p = argparse.ArgumentParser(prog="python -m ifl.notebook", description=__doc__)
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE")
    )
    p.add_argument("--cwd", default=None)
    a = p.parse_args(argv)
    # Values are YAML scalars, as papermill's -p infers them (numbers, booleans, strings).
    params = {name: yaml.safe_load(value) for name, value in a.parameter}
    execute(a.input, a.output, params, a.cwd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
