"""The subcommands of one workflow stage: each module of :mod:`ifl.cli` makes one
:class:`Subcommands` and registers its handlers with it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

#: A subcommand's handler: ``fn(args, cfg)`` with the parsed arguments and the resolved config.
Handler = Callable[[argparse.Namespace, dict], None]
#: argparse keywords of a flag that must be given
REQ: dict[str, Any] = {"required": True}


class Subcommands:
    """Subcommands by name: a handler and its argparse ``(flag, kwargs)`` pairs."""

    def __init__(self) -> None:
        self.handlers: dict[str, tuple[Handler, list[tuple[str, dict[str, Any]]]]] = {}

    def __call__(
        self, name: str, *args: tuple[str, dict[str, Any]]
    ) -> Callable[[Handler], Handler]:
        """Decorator: register the handler as subcommand ``name`` with ``args``."""

        def register(fn: Handler) -> Handler:
            if name in self.handlers:
                raise ValueError(f"subcommand {name!r} is registered twice")
            self.handlers[name] = (fn, list(args))
            return fn

        return register
