"""Fonts of the 14 languages' scripts: matplotlib draws every script with a real glyph, and the
book's web fonts hold exactly the characters its pages use."""

from __future__ import annotations

import json

import pytest

from ifl.fonts import SCRIPT_FONTS, characters, write_web_fonts

# One word per language, in its own script (the lexicon's words for "red").
SAMPLES = {
    "zh": "红色", "hi": "लाल", "he": "אדום", "th": "สีแดง", "ar": "أحمر", "bn": "লাল",
    "ja": "あか赤", "ur": "سرخ", "ru": "красный", "de": "rot",
}  # fmt: skip


def test_every_script_font_covers_its_sample_words():
    from fontTools.ttLib import TTFont

    for font in SCRIPT_FONTS:
        words = [w for w in SAMPLES.values() if any(font.covers(c) for c in w)]
        assert words, font.script
        cmap = TTFont(str(font.path()), lazy=True).getBestCmap()
        missing = {c for w in words for c in w if font.covers(c) and ord(c) not in cmap}
        assert not missing, (font.family, missing)


def test_matplotlib_finds_a_real_font_for_every_character(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import font_manager

    from ifl.fonts import use_in_matplotlib

    families = use_in_matplotlib()
    fonts = [font_manager.get_font(font_manager.findfont(f, fallback_to_default=False))
             for f in families]  # fmt: skip
    for lang, word in SAMPLES.items():
        for c in word:
            assert any(ord(c) in f.get_charmap() for f in fonts), (lang, c)


def test_web_fonts_are_subsets_of_the_pages_characters(tmp_path):
    from fontTools.ttLib import TTFont

    page = tmp_path / "p.ipynb"
    page.write_text(json.dumps({"cells": [{"source": "红色 and лал", "outputs": [
        {"data": {"text/html": "<td>สีแดง</td>"}}]}]}, ensure_ascii=False), encoding="utf-8")  # fmt: skip
    chars = characters([page])
    assert {"红", "ส", "x"} - {"x"} <= chars
    families = write_web_fonts(tmp_path / "_static", chars)
    assert families == ["ifl Noto Sans SC", "ifl Noto Sans Thai"]
    thai = TTFont(str(tmp_path / "_static" / "fonts" / "ifl-thai.woff")).getBestCmap()
    assert {chr(c) for c in thai} >= set("สีแดง") and len(thai) < 20
    css = (tmp_path / "_static" / "ifl-fonts.css").read_text(encoding="utf-8")
    assert 'url("fonts/ifl-hani.woff")' in css and "unicode-range: U+0E00-0E7F" in css


def test_characters_rejects_nothing_but_reads_markdown(tmp_path):
    md = tmp_path / "a.md"
    md.write_text("# עברית", encoding="utf-8")
    assert "ע" in characters([md])
    with pytest.raises(FileNotFoundError):
        characters([tmp_path / "missing.md"])
