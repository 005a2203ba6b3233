"""How the chapters show their results: numbered captions like a paper's, and languages named
in their own scripts.

A notebook calls :func:`setup` once (fonts for every script in its figures) and numbers its
figures and tables through one :class:`Captions`::

    cap = Captions("2")
    ...draw...
    cap.figure("Fidelity per query language.")      # shows the figure, then "Figure 2.1. ..."
    cap.table(df, "Fidelity per model.")            # "Table 2.1. ..." above the table
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# The paper's 14 languages, each named in its own script.
ENDONYMS = {
    "zh": "中文",
    "hi": "हिन्दी",
    "en": "English",
    "he": "עברית",
    "th": "ไทย",
    "ar": "العربية",
    "bn": "বাংলা",
    "ja": "日本語",
    "es": "Español",
    "de": "Deutsch",
    "fr": "Français",
    "ro": "Română",
    "ru": "Русский",
    "ur": "اردو",
}


def language_label(code: str) -> str:
    """``"zh 中文"``: the ISO code and the language's own name (the code alone if unknown)."""
    name = ENDONYMS.get(code)
    return f"{code} {name}" if name else code


def language_labels(codes: Iterable[str]) -> list[str]:
    """:func:`language_label` of each code."""
    return [language_label(c) for c in codes]


def setup() -> None:
    """Fonts for every script in the chapter's figures (:func:`ifl.fonts.use_in_matplotlib`)."""
    from ifl.fonts import use_in_matplotlib

    use_in_matplotlib()


class Captions:
    """Numbers one chapter's figures and tables: ``Figure <chapter>.<n>``, ``Table <chapter>.<n>``.

    Figure captions go below the figure and table captions above the table, as in the paper.
    """

    def __init__(self, chapter: str) -> None:
        self.chapter = chapter
        self.figures = 0
        self.tables = 0

    def _show(self, kind: str, n: int, text: str) -> None:
        from IPython.display import Markdown, display

        display(Markdown(f"**{kind} {self.chapter}.{n}.** {text}"))

    def figure(self, text: str) -> None:
        """Show the current matplotlib figure, then its numbered caption."""
        import matplotlib.pyplot as plt

        plt.show()
        self.figures += 1
        self._show("Figure", self.figures, text)

    def table(self, table: Any, text: str) -> None:
        """Show the numbered caption, then ``table`` (a DataFrame or anything displayable)."""
        from IPython.display import display

        self.tables += 1
        self._show("Table", self.tables, text)
        display(table)
