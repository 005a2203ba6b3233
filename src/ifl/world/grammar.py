"""Fill lexicon templates in one language, optionally with per-content-word errors.

The errors model a noisy machine translator: each content word (shape, colour, size,
position, number, yes/no) is, with probability ``error_rate``, either left in English or
replaced by a wrong word of the same category in the target language (half each).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ifl.world.lexicon import CONCEPTS, SLOTS, Language, language
from ifl.world.templates import Placeholder, parse

CONTENT_CATEGORIES: frozenset[str] = frozenset({"shape", "colour", "size", "pos", "num", "ans"})
# Noun-phrase roles whose head noun is the shape; the others are headed by "object".
_SHAPE_HEADED = frozenset({"indef", "exist", "def", "generic"})


@dataclass(frozen=True)
class WordChoice:
    """How one content word was rendered: ``right``, ``english`` or ``wrong``."""

    concept: str
    outcome: str
    form: str


class Renderer:
    """Renders templates of one language; records every content word in ``log``."""

    def __init__(
        self,
        lang: str,
        *,
        error_rate: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> None:
        if not 0.0 <= float(error_rate) <= 1.0:
            raise ValueError(f"error_rate must be in [0, 1], got {error_rate!r}")
        if error_rate > 0 and rng is None:
            raise ValueError("error_rate > 0 needs an rng (numpy Generator)")
        self.lang: Language = language(lang)
        self.english: Language = language("en")
        self.error_rate = float(error_rate)
        self.rng = rng
        self.log: list[WordChoice] = []

    def content(self, concept: str, tag: str | None) -> str:
        """Surface form of a concept, subject to translation errors for content words."""
        category = concept.split(".", 1)[0]
        if category not in CONTENT_CATEGORIES:
            return self.lang.form(concept, tag)
        outcome, shown = "right", concept
        if self.error_rate > 0 and self.rng is not None and self.rng.random() < self.error_rate:
            if self.rng.random() < 0.5:
                outcome = "english"
            else:
                others = [c for c in CONCEPTS if c.startswith(category + ".") and c != concept]
                outcome, shown = "wrong", others[int(self.rng.integers(len(others)))]
        if outcome == "english":
            form = self.english.form(concept, tag)
        else:
            form = self.lang.form(shown, tag)
        self.log.append(WordChoice(concept, outcome, form))
        return form

    def fill(
        self,
        template: str,
        *,
        slots: Mapping[str, str | None] | None = None,
        phrases: Mapping[str, str] | None = None,
        g: str | None = None,
    ) -> str:
        """Fill ``template``: slots hold concept ids (None = leave empty), phrases hold text."""
        slots = {"object": "noun.object", **(slots or {})}
        phrases = phrases or {}
        out: list[str] = []
        for piece in parse(template):
            if isinstance(piece, str):
                out.append(piece)
            else:
                out.append(self._field(piece, slots, phrases, g, template))
        return "".join(out)

    def _field(
        self,
        ph: Placeholder,
        slots: Mapping[str, str | None],
        phrases: Mapping[str, str],
        g: str | None,
        template: str,
    ) -> str:
        tag = ph.tag
        if tag and "$g" in tag:
            # Without a head gender the gender part of the tag is dropped.
            parts = [g if p == "$g" else p for p in tag.split(".")]
            tag = ".".join(p for p in parts if p) or None
        if ph.name in phrases:
            return phrases[ph.name]
        if ph.name in SLOTS:
            concept = slots.get(ph.name)
            return "" if concept is None else self.content(concept, tag)
        if ph.name in self.lang.words:
            return self.lang.word(ph.name, tag)
        raise ValueError(f"{self.lang.code}: no value for {{{ph.name}}} in template {template!r}")

    def phrase(
        self,
        template: str,
        *,
        slots: Mapping[str, str | None] | None = None,
        phrases: Mapping[str, str] | None = None,
        g: str | None = None,
    ) -> str:
        """A filled and tidied template (answers, list items)."""
        return self.lang.tidy(self.fill(template, slots=slots, phrases=phrases, g=g))

    def sentence(
        self,
        template: str,
        *,
        slots: Mapping[str, str | None] | None = None,
        phrases: Mapping[str, str] | None = None,
        g: str | None = None,
    ) -> str:
        """A filled, tidied template with a capitalised start in cased scripts."""
        text = self.phrase(template, slots=slots, phrases=phrases, g=g)
        if self.lang.cased:
            for i, ch in enumerate(text):
                if ch.isalpha():
                    return text[:i] + ch.upper() + text[i + 1 :]
        return text

    def np(
        self,
        role: str,
        *,
        shape: str | None = None,
        colour: str | None = None,
        size: str | None = None,
        pos: str | None = None,
    ) -> str:
        """A noun phrase of ``role`` (see ``lexicon.NP_ROLES``) from concept ids."""
        head = shape if role in _SHAPE_HEADED else "noun.object"
        g = self.lang.gender(head) if head else None
        slots = {"shape": shape, "colour": colour, "size": size, "pos": pos}
        return self.phrase(self.lang.np[role], slots=slots, g=g)

    def join_list(self, items: list[str]) -> str:
        """``a, b and c`` in the language."""
        if len(items) <= 1:
            return "".join(items)
        return self.lang.list_sep.join(items[:-1]) + self.lang.list_last + items[-1]
