"""The multilingual lexicon: one YAML file per language under ``world/data/``.

Each file is tagged with its ISO 639-1 code and holds the language's surface forms of every
concept (with per-tag forms for agreement: gender, case, definiteness), its function words,
noun-phrase patterns and the sentence, question and answer templates (see ``templates.py``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

import yaml

from ifl import LANGUAGES
from ifl.world.scenes import COLOURS, POSITIONS, SHAPES, SIZES
from ifl.world.templates import literals, placeholders

NUMBERS: tuple[str, ...] = ("one", "two", "three", "four")
# Language-independent concept ids, "<category>.<name>".
CONCEPTS: tuple[str, ...] = (
    *(f"shape.{s}" for s in SHAPES),
    *(f"colour.{c}" for c in COLOURS),
    *(f"size.{s}" for s in SIZES),
    *(f"pos.{p}" for p in POSITIONS),
    *(f"num.{n}" for n in NUMBERS),
    "ans.yes",
    "ans.no",
    "noun.object",
)
# Template slots that hold a concept, mapped to the concept's category.
SLOTS: Mapping[str, str] = MappingProxyType(
    {
        "shape": "shape",
        "colour": "colour",
        "size": "size",
        "pos": "pos",
        "num": "num",
        "num_a": "num",
        "num_b": "num",
        "ans": "ans",
        "object": "noun",
    }
)
# Template fields filled with phrases rendered beforehand.
PHRASES: frozenset[str] = frozenset({"np", "ref", "one", "one_a", "one_b", "generic"})
NP_ROLES: tuple[str, ...] = ("indef", "exist", "def", "obj_def", "obj_pos", "one", "generic")
QUESTION_KINDS: tuple[str, ...] = (
    "colour", "shape", "yesno", "count", "detail", "order", "compare", "sides", "arithmetic",
    "caption",
)  # fmt: skip
ANSWER_KINDS: tuple[str, ...] = (
    "colour", "shape", "yesno", "count", "compare", "sides", "arithmetic", "order",
)  # fmt: skip
# Separators when splitting template text into words for the surface-form index.
_WORD_SPLIT = re.compile(r"[\s.,?!;:،؟۔।。？、！，：；¿¡\"'()«»“”]+")


def concept_id(category: str, name: str) -> str:
    """The concept id of an attribute value, e.g. ``("colour", "red") -> "colour.red"``."""
    cid = f"{category}.{name}"
    if cid not in CONCEPTS:
        raise ValueError(f"unknown concept {cid!r}")
    return cid


def number_concept(n: int) -> str:
    """The concept id of a number 1..4."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(NUMBERS):
        raise ValueError(f"numbers of the lexicon are 1..4, got {n!r}")
    return f"num.{NUMBERS[n - 1]}"


def _pick(forms: Mapping[str, str], tag: str | None) -> str:
    """Form for ``tag``: exact, then with trailing parts dropped, then the last part, then cite."""
    if tag:
        parts = tag.split(".")
        for k in range(len(parts), 0, -1):
            key = ".".join(parts[:k])
            if key in forms:
                return forms[key]
        if parts[-1] in forms:
            return forms[parts[-1]]
    return forms["cite"]


@dataclass(frozen=True)
class Language:
    """One language's lexicon and templates (loaded from ``world/data/<code>.yaml``)."""

    code: str
    name: str
    spaced: bool  # words separated by spaces (False for zh, ja, th)
    cased: bool  # sentences start with a capital letter
    sentence_sep: str
    list_sep: str
    list_last: str
    answer_sep: str
    proclitics: tuple[str, ...]  # one-letter words written onto the next word (he, ar "and")
    fixups: tuple[tuple[re.Pattern[str], str], ...]  # elisions/contractions after rendering
    concepts: Mapping[str, Mapping[str, str]]
    genders: Mapping[str, str]
    words: Mapping[str, Mapping[str, str]]
    np: Mapping[str, str]
    count_sentences: Mapping[str, str]
    object_sentence: str
    questions: Mapping[str, str]
    answers: Mapping[str, str]

    def form(self, concept: str, tag: str | None = None) -> str:
        """Surface form of ``concept`` for ``tag`` (falls back to the citation form)."""
        try:
            forms = self.concepts[concept]
        except KeyError:
            raise ValueError(f"unknown concept {concept!r}") from None
        return _pick(forms, tag)

    def word(self, name: str, tag: str | None = None) -> str:
        """Surface form of the function word ``name`` for ``tag``."""
        try:
            return _pick(self.words[name], tag)
        except KeyError:
            raise ValueError(f"{self.code} has no function word {name!r}") from None

    def gender(self, concept: str) -> str | None:
        """Grammatical gender of a noun concept (None where the language has none)."""
        return self.genders.get(concept)

    def count_sentence(self, n: int) -> str:
        """Template of the sentence that states the number of objects."""
        key = "one" if n == 1 else "two" if n == 2 and "two" in self.count_sentences else "many"
        return self.count_sentences[key]

    def templates(self) -> Iterator[str]:
        """Every template string of the language."""
        yield from self.np.values()
        yield from self.count_sentences.values()
        yield self.object_sentence
        yield from self.questions.values()
        yield from self.answers.values()

    def tidy(self, text: str) -> str:
        """Collapse spaces left by empty slots, then apply the language's fixups."""
        text = re.sub(r" {2,}", " ", text).strip()
        text = re.sub(r" +([.,?!;:،؟۔।。？、])", r"\1", text)
        for pattern, repl in self.fixups:
            text = pattern.sub(repl, text)
        return text


def _strings(value: Any, where: str) -> dict[str, str]:
    """A mapping of tag -> form, or a plain string meaning ``{"cite": string}``."""
    if isinstance(value, str):
        value = {"cite": value}
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a string or a mapping, got {value!r}")
    out = {}
    for key, form in value.items():
        if not isinstance(form, str) or not form.strip():
            # YAML 1.1 turns bare yes/no into booleans: insist on quoted strings.
            raise ValueError(f"{where}.{key}: expected a non-empty string, got {form!r}")
        out[str(key)] = form
    if "cite" not in out:
        raise ValueError(f"{where}: needs a 'cite' form")
    return out


def _section(data: dict[str, Any], key: str, names: tuple[str, ...], code: str) -> dict[str, str]:
    section = data.get(key)
    if not isinstance(section, dict):
        raise ValueError(f"{code}.yaml: missing section {key!r}")
    missing = [n for n in names if n not in section]
    if missing:
        raise ValueError(f"{code}.yaml: section {key!r} lacks {missing}")
    for name, text in section.items():
        if not isinstance(text, str):
            raise ValueError(f"{code}.yaml: {key}.{name} must be a string, got {text!r}")
    return dict(section)


def _parse(code: str, data: dict[str, Any]) -> Language:
    if data.get("language") != code:
        raise ValueError(f"{code}.yaml is tagged {data.get('language')!r}, expected {code!r}")
    raw = data.get("concepts") or {}
    missing = [c for c in CONCEPTS if c not in raw]
    if missing:
        raise ValueError(f"{code}.yaml lacks concepts {missing}")
    extra = [c for c in raw if c not in CONCEPTS]
    if extra:
        raise ValueError(f"{code}.yaml has unknown concepts {extra}")
    concepts, genders = {}, {}
    for cid, value in raw.items():
        value = dict(value) if isinstance(value, dict) else value
        if isinstance(value, dict) and "g" in value:
            genders[cid] = str(value.pop("g"))
        concepts[cid] = MappingProxyType(_strings(value, f"{code}.{cid}"))
    for cid in (*(f"shape.{s}" for s in SHAPES), "noun.object"):
        genders.setdefault(cid, "n")
    words = {
        name: MappingProxyType(_strings(v, f"{code}.words.{name}"))
        for name, v in (data.get("words") or {}).items()
    }
    sentences = data.get("sentences") or {}
    count = sentences.get("count")
    if not isinstance(count, dict) or not {"one", "many"} <= set(count):
        raise ValueError(f"{code}.yaml: sentences.count needs 'one' and 'many'")
    if not isinstance(sentences.get("object"), str):
        raise ValueError(f"{code}.yaml: sentences.object must be a template string")
    fixups = tuple((re.compile(p), r) for p, r in data.get("fixups") or ())
    lang = Language(
        code=code,
        name=str(data.get("name", code)),
        spaced=bool(data.get("spaced", True)),
        cased=bool(data.get("cased", False)),
        sentence_sep=str(data.get("sentence_sep", " ")),
        list_sep=str(data.get("list_sep", ", ")),
        list_last=str(data.get("list_last", ", ")),
        answer_sep=str(data.get("answer_sep", ", ")),
        proclitics=tuple(data.get("proclitics") or ()),
        fixups=fixups,
        concepts=MappingProxyType(concepts),
        genders=MappingProxyType(genders),
        words=MappingProxyType(words),
        np=MappingProxyType(_section(data, "np", NP_ROLES, code)),
        count_sentences=MappingProxyType({str(k): str(v) for k, v in count.items()}),
        object_sentence=sentences["object"],
        questions=MappingProxyType(_section(data, "questions", QUESTION_KINDS, code)),
        answers=MappingProxyType(_section(data, "answers", ANSWER_KINDS, code)),
    )
    for template in lang.templates():
        for ph in placeholders(template):
            if ph.name not in SLOTS and ph.name not in PHRASES and ph.name not in words:
                raise ValueError(f"{code}.yaml: template {template!r} uses unknown {ph.name!r}")
    return lang


@cache
def language(code: str) -> Language:
    """The lexicon of language ``code`` (one of ``ifl.LANGUAGES``)."""
    if code not in LANGUAGES:
        raise ValueError(f"unknown language {code!r}; expected one of {LANGUAGES}")
    text = resources.files("ifl.world").joinpath("data", f"{code}.yaml").read_text("utf-8")
    return _parse(code, yaml.safe_load(text))


def colour_after_shape(code: str) -> bool:
    """Whether language ``code`` names the colour after the shape in its noun phrases ("un carré
    bleu") rather than before ("a blue square"): which side of its key an answer sits on."""
    template = language(code).np["indef"]
    return template.index("{colour") > template.index("{shape")


def _words(text: str) -> list[str]:
    return [w for w in _WORD_SPLIT.split(text.lower()) if w]


def _language_forms(lang: Language) -> dict[str, set[str]]:
    """Every surface form of a language (lower case) -> the concepts it expresses."""
    forms: dict[str, set[str]] = {}

    def add(form: str, concept: str | None) -> None:
        form = unicodedata.normalize("NFC", form).lower().strip()
        if form:
            entry = forms.setdefault(form, set())
            if concept:
                entry.add(concept)

    for cid, tagged in lang.concepts.items():
        for form in tagged.values():
            add(form, cid)
            if lang.spaced and " " in form.strip():
                for w in _words(form):
                    add(w, None)
    for tagged in lang.words.values():
        for form in tagged.values():
            for w in _words(form) if lang.spaced else [form]:
                add(w, None)
    for template in lang.templates():
        for chunk in literals(template):
            for w in _words(chunk):
                add(w, None)
    for p in lang.proclitics:
        for form, concepts in list(forms.items()):
            forms.setdefault(p + form, set()).update(concepts)
    return forms


@cache
def surface_index() -> Mapping[str, tuple[frozenset[str], frozenset[str]]]:
    """All surface forms of all languages -> (languages it belongs to, concepts it expresses).

    Digits 1-4 are included as language-less forms of the numbers.
    """
    langs: dict[str, set[str]] = {}
    concepts: dict[str, set[str]] = {}
    for code in LANGUAGES:
        for form, cids in _language_forms(language(code)).items():
            langs.setdefault(form, set()).add(code)
            concepts.setdefault(form, set()).update(cids)
    for i, _ in enumerate(NUMBERS, start=1):
        langs.setdefault(str(i), set())
        concepts.setdefault(str(i), set()).add(number_concept(i))
    return MappingProxyType(
        {f: (frozenset(langs[f]), frozenset(concepts[f])) for f in sorted(langs)}
    )


def _splits_into(text: str, pieces: frozenset[str]) -> bool:
    """Whether ``text`` is a concatenation of two or more of ``pieces`` (other than itself)."""
    ok = [True] + [False] * len(text)  # ok[i]: text[:i] is a concatenation of pieces
    for end in range(1, len(text) + 1):
        ok[end] = any(
            ok[start] and text[start:end] in pieces and (start, end) != (0, len(text))
            for start in range(end)
        )
    return ok[len(text)]


@cache
def unspaced_pieces() -> tuple[str, ...]:
    """The word pieces of the languages written without spaces (zh, ja, th), longest first.

    Every concept form, function word and literal template chunk, split at punctuation and
    spaces; a piece that is a concatenation of other pieces (zh 红色的 = 红色 + 的) is left out.
    A tokenizer that isolates these pieces before byte-level BPE sees the words of a Chinese or
    Thai sentence as a spaced language's words, instead of merging a whole clause into one token.
    """
    found: set[str] = set()
    for code in LANGUAGES:
        lang = language(code)
        if lang.spaced:
            continue
        texts = [form for tagged in lang.concepts.values() for form in tagged.values()]
        texts += [form for tagged in lang.words.values() for form in tagged.values()]
        texts += [chunk for template in lang.templates() for chunk in literals(template)]
        for text in texts:
            found.update(w for w in _WORD_SPLIT.split(unicodedata.normalize("NFC", text)) if w)
    pieces = frozenset(found)
    kept = [p for p in pieces if not _splits_into(p, pieces)]
    return tuple(sorted(kept, key=lambda p: (-len(p), p)))
