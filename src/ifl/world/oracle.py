"""The oracle annotator: gold language and correctness labels from the lexicon.

It plays the paper's expert annotators. It knows every surface form of every language in
the world, finds them in a text by longest match (scripts without spaces need no word
boundaries) and reads off the language and the concepts a reply mentions.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Mapping
from functools import cache

from ifl import LANGUAGES
from ifl.world.items import Item, answer_concepts, question_concepts
from ifl.world.lexicon import CONCEPTS, language, surface_index

_Entry = tuple[frozenset[str], frozenset[str]]


def _unspaced(ch: str) -> bool:
    """Characters of scripts written without spaces (Han, kana, Thai)."""
    o = ord(ch)
    return (
        0x0E00 <= o <= 0x0E7F  # Thai
        or 0x3040 <= o <= 0x30FF  # Hiragana, Katakana
        or 0x3400 <= o <= 0x4DBF  # CJK extension A
        or 0x4E00 <= o <= 0x9FFF  # CJK unified ideographs
        or 0xF900 <= o <= 0xFAFF  # CJK compatibility ideographs
        or o == 0x3005  # 々
    )


def _spaced_word_char(ch: str) -> bool:
    """A letter, mark or digit of a script that separates words with spaces."""
    return unicodedata.category(ch)[0] in "LMN" and not _unspaced(ch)


@cache
def _by_first_char() -> Mapping[str, tuple[int, ...]]:
    """First character -> lengths of the forms starting with it, longest first."""
    lengths: dict[str, set[int]] = {}
    for form in surface_index():
        lengths.setdefault(form[0], set()).add(len(form))
    return {c: tuple(sorted(ls, reverse=True)) for c, ls in lengths.items()}


def _scan(text: str) -> list[tuple[str, _Entry]]:
    """Longest-match segmentation of ``text`` into lexicon forms (left to right)."""
    index, firsts = surface_index(), _by_first_char()
    t = unicodedata.normalize("NFC", text).lower()
    n = len(t)
    out: list[tuple[str, _Entry]] = []
    i = 0
    while i < n:
        # A form may not start or end inside a word of a spaced script.
        if i > 0 and _spaced_word_char(t[i - 1]) and _spaced_word_char(t[i]):
            i += 1
            continue
        match = None
        for length in firsts.get(t[i], ()):
            j = i + length
            if j > n or t[i:j] not in index:
                continue
            if j < n and _spaced_word_char(t[j - 1]) and _spaced_word_char(t[j]):
                continue
            match = t[i:j]
            break
        if match is None:
            i += 1
        else:
            out.append((match, index[match]))
            i += len(match)
    return out


def word_languages(text: str) -> list[tuple[str, frozenset[str]]]:
    """Lexicon words found in ``text`` (longest match) with the languages each belongs to."""
    return [(form, langs) for form, (langs, _) in _scan(text) if langs]


def concept_mentions(text: str) -> list[frozenset[str]]:
    """Concept ids mentioned in ``text``, in order, in any language (digits 1-4 count too)."""
    return [concepts for _, (_, concepts) in _scan(text) if concepts]


def oracle_language(text: str, hint: str | None = None) -> str | None:
    """ISO code of the dominant language of ``text`` by lexicon word tags.

    Each word found counts with its number of characters. A word of one language counts for
    it; a word shared by several languages counts for ``hint`` if ``hint`` is among them and
    is otherwise set aside (used only if no language has a word of its own). Ties go to the
    hint, then to the earlier language in ``ifl.LANGUAGES``. No lexicon word -> None.
    """
    if hint is not None and hint not in LANGUAGES:
        raise ValueError(f"unknown hint language {hint!r}; expected one of {LANGUAGES}")
    own: Counter[str] = Counter()
    shared: Counter[str] = Counter()
    for form, langs in word_languages(text):
        if len(langs) == 1:
            own[next(iter(langs))] += len(form)
        elif hint in langs:
            own[hint] += len(form)
        else:
            for lang in langs:
                shared[lang] += len(form)
    scores = own or shared
    if not scores:
        return None
    order = {lang: k for k, lang in enumerate(LANGUAGES)}
    return max(scores, key=lambda lang: (scores[lang], lang == hint, -order[lang]))


def _category(concept: str) -> str:
    return concept.split(".", 1)[0]


@cache
def _colour_first(lang: str) -> bool:
    """Whether ``lang`` puts the colour before the shape ("red circle" vs "cercle rouge")."""
    template = language(lang).np["indef"]
    return template.index("{colour") < template.index("{shape")


def _named_objects(text: str, mentions: list[frozenset[str]]) -> set[tuple[str, str]]:
    """(colour, shape) pairs named together, in the word order of the reply's language.

    Colour and shape mentions (sizes etc. dropped) are paired left to right, each mention in
    at most one pair, so "a red square and a blue circle" names no blue square.
    """
    lang = oracle_language(text)
    colour_first = lang is None or _colour_first(lang)
    seq = [m for m in mentions if any(_category(c) in ("colour", "shape") for c in m)]
    named: set[tuple[str, str]] = set()
    i = 0
    while i + 1 < len(seq):
        first, second = (seq[i], seq[i + 1]) if colour_first else (seq[i + 1], seq[i])
        colours = [c for c in first if _category(c) == "colour"]
        shapes = [c for c in second if _category(c) == "shape"]
        if colours and shapes:
            named.update((c, s) for c in colours for s in shapes)
            i += 2
        else:
            i += 1
    return named


def oracle_correct(reply: str, item: Item) -> bool:
    """Whether ``reply`` answers ``item`` correctly, in any language.

    Concepts are read off the reply in order (any language, digits for numbers). Mentions
    of concepts named in the question are skipped (a reply may echo "two plus one"). Then:

    - one-concept answers (colour, count, shape, yes/no, sides, arithmetic): the first
      remaining mention of the answer's category (colour, number, ...) is the answer;
    - compare: the first mention of either compared colour is the larger object's colour;
    - order: the first mentions of colours are the colours in reading order;
    - detail and caption (partial credit): at least half of the objects (rounded up) are
      named by their colour next to their shape, in the word order of the reply's language
      (size words in between are ignored), as in "a small red circle" or "دائرة صغيرة حمراء".
    """
    if not isinstance(reply, str):
        raise ValueError(f"reply must be a string, got {type(reply).__name__}")
    mentions = concept_mentions(reply)
    answer = answer_concepts(item)
    if item.kind in ("detail", "caption"):
        named = _named_objects(reply, mentions)
        objects = list(zip(answer[::2], answer[1::2], strict=True))
        return 2 * sum(obj in named for obj in objects) >= len(objects)
    if item.kind == "compare":
        allowed = frozenset(question_concepts(item))
    else:
        asked = set(question_concepts(item))
        category = _category(answer[0])
        allowed = frozenset(c for c in CONCEPTS if _category(c) == category and c not in asked)
    relevant = [m & allowed for m in mentions if m & allowed]
    if len(relevant) < len(answer):
        return False
    return all(a in m for a, m in zip(answer, relevant, strict=False))
