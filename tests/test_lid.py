"""Tests for ifl.lid: label parsing (appendix C, lid.176) and fasttext language ID."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ifl import LANGUAGES
from ifl.lid import (
    ISO_TO_NAME,
    LANGUAGE_NAMES,
    LID176_SCRIPTS,
    LanguageIdentifier,
    default_lid176_path,
    fidelity_proxy,
    measure,
    parse_glotlid,
    parse_lid176,
)

fasttext = pytest.importorskip("fasttext")

# One sentence per language, all describing the same toy scene.
SENTENCES = {
    "zh": "图片里有一个红色的圆形和两个蓝色的方块。",
    "hi": "इस चित्र में एक लाल गोला और दो नीले वर्ग हैं।",
    "en": "The picture shows a red circle and two blue squares.",
    "he": "בתמונה יש עיגול אדום ושני ריבועים כחולים.",
    "th": "ในภาพมีวงกลมสีแดงหนึ่งวงและสี่เหลี่ยมสีน้ำเงินสองอัน",
    "ar": "تظهر الصورة دائرة حمراء ومربعين أزرقين.",
    "bn": "ছবিতে একটি লাল বৃত্ত এবং দুটি নীল বর্গ আছে।",
    "ja": "この画像には赤い丸と青い四角が二つあります。",
    "es": "La imagen muestra un círculo rojo y dos cuadrados azules.",
    "de": "Das Bild zeigt einen roten Kreis und zwei blaue Quadrate.",
    "fr": "L'image montre un cercle rouge et deux carrés bleus.",
    "ro": "Imaginea arată un cerc roșu și două pătrate albastre.",
    "ru": "На картинке изображены красный круг и два синих квадрата.",
    "ur": "اس تصویر میں ایک سرخ دائرہ اور دو نیلے مربع ہیں۔",
}

GLOTLID_CASES = {
    "cmn_Hani": "chinese",
    "jpn_Jpan": "japanese",
    "hin_Deva": "hindi",
    "ben_Beng": "bengali",
    "heb_Hebr": "hebrew",
    "tha_Thai": "thai",
    "rus_Cyrl": "russian",
    "ukr_Cyrl": "russian",
    "urd_Arab": "urdu",
    "arb_Arab": "arabic",
    "pes_Arab": "arabic",
    "deu_Latn": "german",
    "eng_Latn": "english",
    "spa_Latn": "spanish",
    "ron_Latn": "romanian",
    "fra_Latn": "french",
    "ita_Latn": "other_latin",
    "und_Zzzz": "none",
    "kor_Hang": "other",
}


@pytest.fixture(scope="module")
def lid176() -> LanguageIdentifier:
    return LanguageIdentifier(default_lid176_path())


@pytest.mark.parametrize("prefix", ["", "__label__"])
@pytest.mark.parametrize(("label", "expected"), GLOTLID_CASES.items())
def test_parse_glotlid_appendix_c(prefix: str, label: str, expected: str) -> None:
    assert parse_glotlid(prefix + label) == expected


@pytest.mark.parametrize(
    "bad", ["", "cmn", "cmn-Hani", "cmn_hani", "__label__", "CMN_Hani", "x_Latn"]
)
def test_parse_glotlid_malformed(bad: str) -> None:
    with pytest.raises(ValueError, match="malformed GlotLID label"):
        parse_glotlid(bad)


def test_iso_to_name_covers_the_14_languages() -> None:
    assert tuple(ISO_TO_NAME) == LANGUAGES
    assert len(set(ISO_TO_NAME.values())) == 14


def test_parse_lid176_every_model_label(lid176: LanguageIdentifier) -> None:
    labels = lid176._model.get_labels()
    assert len(labels) == 176
    codes = {lab.removeprefix("__label__") for lab in labels}
    assert codes == set(LID176_SCRIPTS)
    for label in labels:
        assert parse_lid176(label) in LANGUAGE_NAMES
        assert parse_lid176(label) == parse_lid176(label.removeprefix("__label__"))
    for iso, name in ISO_TO_NAME.items():
        assert parse_lid176(f"__label__{iso}") == name


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("wuu", "chinese"),
        ("yue", "chinese"),
        ("mr", "hindi"),
        ("as", "bengali"),
        ("yi", "hebrew"),
        ("uk", "russian"),
        ("fa", "arabic"),
        ("it", "other_latin"),
        ("ko", "other"),
        ("el", "other"),
    ],
)
def test_parse_lid176_script_rule(code: str, expected: str) -> None:
    assert parse_lid176(code) == expected


@pytest.mark.parametrize("bad", ["", "xx", "__label__deu_Latn", "DE"])
def test_parse_lid176_unknown(bad: str) -> None:
    with pytest.raises(ValueError, match="unknown lid.176 label"):
        parse_lid176(bad)


def test_lid176_identifies_the_14_languages(lid176: LanguageIdentifier) -> None:
    texts = list(SENTENCES.values())
    labels, probs = lid176.predict(texts)
    assert labels == list(SENTENCES)  # lid.176 uses the ISO 639-1 codes
    assert probs.shape == (14,)
    assert np.all((probs > 0.5) & (probs <= 1.0))
    assert lid176.languages(texts) == [ISO_TO_NAME[iso] for iso in SENTENCES]


def test_list_prediction_matches_single_prediction(lid176: LanguageIdentifier) -> None:
    # The numpy-2 pitfall: fasttext-predict fails on lists; fasttext-numpy2 must not.
    texts = list(SENTENCES.values())
    raw_labels, raw_probs = lid176._model.predict(texts, k=1)
    assert len(raw_labels) == len(texts)
    for text, label, prob in zip(texts, raw_labels, raw_probs, strict=True):
        single_label, single_prob = lid176._model.predict(text, k=1)
        assert single_label[0] == label[0]
        assert single_prob[0] == pytest.approx(prob[0], rel=1e-5)


def test_predict_handles_empty_and_newlines(lid176: LanguageIdentifier) -> None:
    labels, probs = lid176.predict(["", "   \n", "Das Bild zeigt\neinen roten Kreis.\r\n"])
    assert labels[:2] == ["none", "none"]
    assert probs[0] == 0.0 and probs[1] == 0.0
    assert labels[2] == "de" and probs[2] > 0.5
    assert lid176.languages(["", "\t"]) == ["none", "none"]
    assert lid176.predict([]) == ([], pytest.approx(np.zeros(0)))


def test_predict_rejects_non_strings(lid176: LanguageIdentifier) -> None:
    with pytest.raises(ValueError, match="must be str"):
        lid176.predict(["ok", None])  # type: ignore[list-item]


def test_identifier_bad_arguments(tmp_path) -> None:
    with pytest.raises(ValueError, match="'cld3'"):
        LanguageIdentifier(default_lid176_path(), kind="cld3")
    missing = tmp_path / "nope.bin"
    with pytest.raises(ValueError, match="nope.bin"):
        LanguageIdentifier(missing)


def test_default_path_is_the_shipped_model() -> None:
    path = default_lid176_path()
    assert path.name == "lid.176.ftz" and path.is_file()


def test_fidelity_proxy() -> None:
    out = fidelity_proxy(["german", "english", "none", "chinese"], ["de", "de", "en", "zh"])
    assert out.tolist() == [1, 0, 0, 1]
    assert out.dtype.kind == "i"
    with pytest.raises(ValueError, match="'xx'"):
        fidelity_proxy(["german"], ["xx"])
    with pytest.raises(ValueError, match="length mismatch"):
        fidelity_proxy(["german"], ["de", "en"])


def test_measure_adds_columns(lid176: LanguageIdentifier) -> None:
    gens = pd.DataFrame(
        {
            "reply": [SENTENCES["de"], SENTENCES["en"], None, SENTENCES["zh"]],
            "language": ["de", "de", "fr", "zh"],
            "model": ["m"] * 4,
        },
        index=[10, 11, 12, 13],
    )
    out = measure(gens, lid176)
    assert list(out.index) == [10, 11, 12, 13]
    assert out["lid_label"].tolist() == ["de", "en", "none", "zh"]
    assert out["language_pred"].tolist() == ["german", "english", "none", "chinese"]
    assert out["fidelity_proxy"].tolist() == [1, 0, 0, 1]
    assert out.loc[12, "lid_prob"] == 0.0
    assert "lid_label" not in gens.columns  # input untouched
    with pytest.raises(ValueError, match="'text'"):
        measure(gens, lid176, text_col="text")


def _synthetic_glotlid_corpus(path, n_lines: int, seed: int) -> None:
    """Lines of random words per language, labelled the GlotLID way."""
    vocab = {
        "deu_Latn": "der die das und ist nicht rot blau kreis quadrat bild zeigt zwei",
        "eng_Latn": "the and is not red blue circle square picture shows two of a",
        "cmn_Hani": " ".join("的是不了红蓝色圆形方块图片里有两个一"),
        "rus_Cyrl": "и в не на красный синий круг квадрат картинка два это",
    }
    rng = np.random.default_rng(seed)
    labels = list(vocab)
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(n_lines):
            label = labels[rng.integers(len(labels))]
            words = rng.choice(vocab[label].split(), size=rng.integers(3, 9))
            fh.write(f"__label__{label} {' '.join(words)}\n")


def test_tiny_glotlid_model(tmp_path) -> None:
    train = tmp_path / "train.txt"
    _synthetic_glotlid_corpus(train, n_lines=3000, seed=0)
    model = fasttext.train_supervised(
        str(train), lr=0.1, epoch=5, dim=16, minn=1, maxn=2, thread=1, seed=0, verbose=0
    )
    model_path = tmp_path / "glotlid_tiny.bin"
    model.save_model(str(model_path))

    lid = LanguageIdentifier(model_path, kind="glotlid")
    texts = ["das bild zeigt zwei rot kreis", "the picture shows a red circle", "红色圆形", ""]
    labels, probs = lid.predict(texts)
    assert labels == ["deu_Latn", "eng_Latn", "cmn_Hani", "none"]
    assert np.all(probs[:3] > 0.5)
    assert lid.languages(texts) == ["german", "english", "chinese", "none"]
