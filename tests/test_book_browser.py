"""The smoke run's book as a reader sees it: every page opened in headless Chromium."""

from __future__ import annotations

import os

import pytest
from _browser import CHROMEDRIVER, CHROMIUM, SCRIPTS, WINDOW, check_book


@pytest.mark.slow
def test_every_page_of_the_book_reads_in_chromium(smoke_run, tmp_path):
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        message = "Debian's chromium and chromium-driver are missing (make test installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    html = smoke_run / "book" / "_build" / "smoke" / "html"
    shots = tmp_path / "screenshots"
    reports = check_book(html, shots)
    print(f"screenshots: {shots}")
    pages = {r.page: r for r in reports}
    assert {"index.html", "headline_tables.html", "notebooks/01_fidelity.html"} <= set(pages)
    assert len(list(shots.glob("*.png"))) == len(reports)
    problems = {r.page: r.problems for r in reports if r.problems}
    assert not problems, problems
    # The front page names the 14 languages in their scripts: each drawn by the book's own font.
    assert all(pages["index.html"].scripts[family] > 0 for family in SCRIPTS), pages["index.html"]
    # Chapters lead with a figure: the first one starts within the first screen.
    chapters = [r for r in reports if r.page.startswith("notebooks/")]
    assert chapters and all(r.first_figure_top is not None for r in chapters), chapters
    late = {r.page: r.first_figure_top for r in chapters if r.first_figure_top > WINDOW[1]}
    assert not late, late
