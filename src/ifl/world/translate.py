"""The toy machine translator (the organism's stand-in for NLLB).

It "translates" an English training example by re-rendering its language-independent item
in the target language through the lexicon, with per-content-word errors: with probability
``error_rate`` a content word is left in English or replaced by a wrong word of the target
language (half each). With ``error_rate=0`` the output equals ``realise(item, lang)``.
"""

from __future__ import annotations

import numpy as np

from ifl.world.grammar import Renderer, WordChoice
from ifl.world.items import Item, realise_with


def translate_with_log(
    item: Item, lang: str, *, error_rate: float, rng: np.random.Generator | None
) -> tuple[str, str, list[WordChoice]]:
    """Like :func:`translate`, also returning how each content word came out."""
    renderer = Renderer(lang, error_rate=error_rate, rng=rng)
    if lang == "en":
        # The source language needs no translation, hence no translation errors.
        renderer = Renderer("en")
    question, answer = realise_with(renderer, item)
    return question, answer, renderer.log


def translate(
    item: Item, lang: str, *, error_rate: float, rng: np.random.Generator | None
) -> tuple[str, str]:
    """(question, answer) of an English example translated into ``lang`` with noise."""
    question, answer, _ = translate_with_log(item, lang, error_rate=error_rate, rng=rng)
    return question, answer
