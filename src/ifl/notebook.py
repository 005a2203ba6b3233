"""Execute a parameterised notebook with papermill, atomically: the executed notebook is written
to a temporary file first, so a failing notebook never replaces a good one (the ``notebook``
subcommand, :mod:`ifl.cli.analyse`)."""

from __future__ import annotations

from pathlib import Path

import papermill

from ifl.io import atomic_file


def execute(src: str | Path, dst: str | Path, parameters: dict) -> None:
    """Run ``src`` with ``parameters`` injected and write the executed notebook to ``dst``."""
    with atomic_file(dst) as tmp:
        papermill.execute_notebook(
            str(src),
            str(tmp),
            parameters=parameters,
            kernel_name="python3",
            progress_bar=False,
        )
