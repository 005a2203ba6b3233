"""Fonts for the 14 languages' scripts, in figures and in the book.

The Noto font files come from PyPI packages (``justmytype-intl-*``, dependencies of the project),
so neither matplotlib nor the reader's browser depends on the fonts of the machine:

* :func:`use_in_matplotlib` registers them and sets a fallback list, so a label mixing Latin,
  Chinese and Arabic draws each character from a font that has it (matplotlib >= 3.11 shapes
  complex scripts and lays out right-to-left text itself);
* :func:`write_web_fonts` subsets each font to the characters of its script that the book's
  sources use and writes them with a stylesheet of ``@font-face`` rules into the book's
  ``_static`` folder.
"""

from __future__ import annotations

import importlib.resources
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ScriptFont:
    """One script, the Unicode ranges it occupies, and the Noto font that draws it."""

    script: str  # ISO 15924 code
    family: str  # the font's own family name (what matplotlib knows it by)
    package: str  # the Python package that ships the file
    file: str  # path inside the package
    ranges: tuple[tuple[int, int], ...]  # inclusive code point ranges of the script

    def path(self) -> Path:
        """The font file inside its installed package."""
        return Path(str(importlib.resources.files(self.package) / self.file))

    def covers(self, char: str) -> bool:
        """Whether ``char`` belongs to this script's ranges."""
        c = ord(char)
        return any(lo <= c <= hi for lo, hi in self.ranges)


_JOINERS = ((0x200C, 0x200D),)  # ZWNJ / ZWJ steer Indic and Arabic shaping
SCRIPT_FONTS: tuple[ScriptFont, ...] = (
    ScriptFont(
        "Hani",  # Chinese and Japanese (Han, kana, CJK punctuation, full-width forms)
        "Noto Sans SC",
        "justmytype_intl_cjk",
        "fonts/ofl/notosanssc/NotoSansSC[wght].ttf",
        ((0x3000, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0xFF00, 0xFFEF)),
    ),
    ScriptFont(
        "Deva",
        "Noto Sans Devanagari",
        "justmytype_intl_south_asia",
        "fonts/ofl/notosansdevanagari/NotoSansDevanagari[wdth,wght].ttf",
        ((0x0900, 0x097F), (0xA8E0, 0xA8FF), *_JOINERS),
    ),
    ScriptFont(
        "Beng",
        "Noto Sans Bengali",
        "justmytype_intl_south_asia",
        "fonts/ofl/notosansbengali/NotoSansBengali[wdth,wght].ttf",
        ((0x0980, 0x09FF), *_JOINERS),
    ),
    ScriptFont(
        "Thai",
        "Noto Sans Thai",
        "justmytype_intl_sea",
        "fonts/ofl/notosansthai/NotoSansThai[wdth,wght].ttf",
        ((0x0E00, 0x0E7F),),
    ),
    ScriptFont(
        "Hebr",
        "Noto Sans Hebrew",
        "justmytype_intl_rtl",
        "fonts/ofl/notosanshebrew/NotoSansHebrew[wdth,wght].ttf",
        ((0x0590, 0x05FF), (0xFB1D, 0xFB4F)),
    ),
    ScriptFont(
        "Arab",  # Arabic and Urdu
        "Noto Sans Arabic",
        "justmytype_intl_rtl",
        "fonts/ofl/notosansarabic/NotoSansArabic[wdth,wght].ttf",
        ((0x0600, 0x06FF), (0x0750, 0x077F), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF), *_JOINERS),
    ),
)
# Latin and Cyrillic (en, es, de, fr, ro, ru) are drawn by matplotlib's own DejaVu Sans.
BASE_FAMILY = "DejaVu Sans"
WEB_FONT_DIR = "fonts"  # under the book's _static
WEB_CSS = "ifl-fonts.css"  # Jupyter Book links every stylesheet in _static


def regular_instance(font: ScriptFont, cache: Path) -> Path:
    """The font's regular weight as a static file, made once under ``cache``.

    matplotlib draws a variable font at its default instance, which for some Noto fonts is the
    thinnest weight; the regular instance reads better beside DejaVu Sans.
    """
    from fontTools.ttLib import TTFont
    from fontTools.varLib import instancer

    from ifl.io import atomic_file

    path = Path(cache) / f"{font.family.replace(' ', '')}-Regular.ttf"
    if not path.is_file():
        face = TTFont(str(font.path()))
        axes = {a.axisTag for a in face["fvar"].axes} if "fvar" in face else set()
        if axes:
            face = instancer.instantiateVariableFont(
                face, {a: v for a, v in (("wght", 400), ("wdth", 100)) if a in axes}
            )
        with atomic_file(path) as tmp:
            face.save(str(tmp))
    return path


def use_in_matplotlib() -> list[str]:
    """Register the script fonts with matplotlib and make them the fallback list of every text.

    The regular instances are cached in matplotlib's cache folder (the first call on a machine
    takes about half a minute for the Chinese font). Returns the family list now in
    ``rcParams["font.family"]``.
    """
    import logging

    import matplotlib as mpl
    from matplotlib import font_manager

    # A family of the list without a bold face is expected: do not warn on every bold label.
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    cache = Path(mpl.get_cachedir()) / "ifl-fonts"
    for font in SCRIPT_FONTS:
        font_manager.fontManager.addfont(str(regular_instance(font, cache)))
    families = [BASE_FAMILY, *dict.fromkeys(f.family for f in SCRIPT_FONTS)]
    mpl.rcParams["font.family"] = families
    return families


def _strings(node: object) -> Iterable[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def characters(paths: Iterable[Path]) -> set[str]:
    """Every character of the given Markdown files and notebooks (sources and outputs)."""
    chars: set[str] = set()
    for path in paths:
        text = Path(path).read_text(encoding="utf-8")
        if Path(path).suffix == ".ipynb":
            for s in _strings(json.loads(text)):
                chars.update(s)
        else:
            chars.update(text)
    return chars


def _ranges_css(ranges: Iterable[tuple[int, int]]) -> str:
    return ", ".join(f"U+{lo:04X}-{hi:04X}" for lo, hi in ranges)


def write_web_fonts(static: Path, chars: set[str]) -> list[str]:
    """Subset each script's font to the characters of ``chars`` in that script and write it,
    with an ``@font-face`` stylesheet putting the fonts first in the book's font stack, under
    ``static`` (the book's ``_static``). Scripts absent from ``chars`` get no font.

    Returns the families written. The subsets keep every OpenType layout feature, so the
    browser shapes Indic and Arabic text as the full font would.
    """
    from fontTools import subset

    out = Path(static) / WEB_FONT_DIR
    out.mkdir(parents=True, exist_ok=True)
    faces, families = [], []
    for font in SCRIPT_FONTS:
        used = sorted(c for c in chars if font.covers(c))
        if not used:
            continue
        options = subset.Options()
        options.layout_features = ["*"]  # shaping (conjuncts, joining forms, marks) needs them
        options.hinting = False
        options.flavor = "woff"
        face = subset.load_font(str(font.path()), options)
        sub = subset.Subsetter(options)
        sub.populate(text="".join(used))
        sub.subset(face)
        name = f"ifl-{font.script.lower()}.woff"
        subset.save_font(face, str(out / name), options)
        family = f"ifl {font.family}"
        families.append(family)
        faces.append(
            "@font-face {\n"
            f'  font-family: "{family}";\n'
            f'  src: url("{WEB_FONT_DIR}/{name}") format("woff");\n'
            "  font-weight: 100 900;\n"
            f"  unicode-range: {_ranges_css(font.ranges)};\n"
            "}\n"
        )
    stack = ", ".join(f'"{f}"' for f in families)
    css = "/* The 14 languages' scripts, from the book's own font files. */\n" + "".join(faces)
    if families:
        # unicode-range confines each font to its script: Latin text keeps the theme's font.
        css += (
            ":root {\n"
            f"  --pst-font-family-base: {stack}, var(--pst-font-family-base-system);\n"
            f"  --pst-font-family-heading: {stack}, var(--pst-font-family-base-system);\n"
            f"  --pst-font-family-monospace: {stack}, var(--pst-font-family-monospace-system);\n"
            "}\n"
        )
    (Path(static) / WEB_CSS).write_text(css, encoding="utf-8")
    return families
