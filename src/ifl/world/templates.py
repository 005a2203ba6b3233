"""The template mini-language of the lexicon files.

A template is literal text with placeholders ``{name}`` or ``{name:tag}``. ``name`` is a slot
(a concept such as ``colour``), a phrase built earlier (such as ``np``) or a function word of
the language; ``tag`` picks one of its forms (e.g. ``acc.m``), and ``$g`` inside a tag stands
for the grammatical gender of the phrase's head noun.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

_PLACEHOLDER = re.compile(r"\{([a-z_]+)(?::([^{}]+))?\}")


@dataclass(frozen=True)
class Placeholder:
    """A ``{name:tag}`` field of a template."""

    name: str
    tag: str | None


Piece = str | Placeholder


@cache
def parse(template: str) -> tuple[Piece, ...]:
    """Split a template into literal strings and :class:`Placeholder` fields."""
    if not isinstance(template, str):
        raise ValueError(f"a template must be a string, got {template!r}")
    pieces: list[Piece] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(template):
        if m.start() > pos:
            pieces.append(template[pos : m.start()])
        pieces.append(Placeholder(m.group(1), m.group(2)))
        pos = m.end()
    if pos < len(template):
        pieces.append(template[pos:])
    leftover = "".join(p for p in pieces if isinstance(p, str))
    if "{" in leftover or "}" in leftover:
        raise ValueError(f"malformed placeholder in template {template!r}")
    return tuple(pieces)


def placeholders(template: str) -> tuple[Placeholder, ...]:
    """The placeholders of a template, in order."""
    return tuple(p for p in parse(template) if isinstance(p, Placeholder))


def literals(template: str) -> tuple[str, ...]:
    """The literal text chunks of a template (between placeholders)."""
    return tuple(p for p in parse(template) if isinstance(p, str))
