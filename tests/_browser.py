"""Open every page of a built book in headless Chromium (Debian's chromium + chromium-driver)
and report what a reader would see broken: missing images, broken internal links, JavaScript
errors, MathJax left as raw TeX, a chapter whose first figure is below the first screen, and
text of the 14 languages' scripts drawn without a real font (empty boxes). One screenshot per
page is saved.

    python tests/_browser.py book/_build/organism/html shots/   # prints the problems found

Fonts are checked through Chrome DevTools: ``CSS.getPlatformFontsForNode`` names the fonts
that drew a node's text; an element holding a script's characters must be drawn by that
script's Noto font from the book's own files (a custom font), never by whatever the machine
has, and never by no font at all.
"""

from __future__ import annotations

import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1280, 2400)
# Flags Chromium needs as root on a machine without network: no sandbox, no GPU, and none of
# the background connections (they fail, many at a time, on a closed network).
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)
# The Unicode ranges of the scripts whose fonts the book ships (ifl.fonts), as JS regexes.
SCRIPTS = {
    "Noto Sans SC": "[\\u3040-\\u30ff\\u4e00-\\u9fff]",
    "Noto Sans Devanagari": "[\\u0900-\\u097f]",
    "Noto Sans Bengali": "[\\u0980-\\u09ff]",
    "Noto Sans Thai": "[\\u0e00-\\u0e7f]",
    "Noto Sans Hebrew": "[\\u0590-\\u05ff]",
    "Noto Sans Arabic": "[\\u0600-\\u06ff]",
}

# Marks the innermost elements holding text of each script (class ifl-probe-<k>) and reports
# images, math and the first output figure of the page.
_PROBE = """
const scripts = arguments[0];
for (const [k, [family, pattern]] of scripts.entries()) {  // [family, pattern] pairs, in order
  const re = new RegExp(pattern);
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let n = 0;
  while (walker.nextNode() && n < 40) {
    const el = walker.currentNode.parentElement;
    if (!el || !re.test(walker.currentNode.nodeValue) || el.closest('script,style,title')) continue;
    if (el.offsetParent === null && getComputedStyle(el).position !== 'fixed') continue;  // hidden
    el.classList.add('ifl-probe-' + k);  // an element may hold several scripts
    n += 1;
  }
}
const broken = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))
  .map(i => i.getAttribute('src'));
const raw = [...document.querySelectorAll('.math')]
  .filter(m => !m.querySelector('mjx-container') && /\\\\[(\\[]|\\$/.test(m.textContent))
  .map(m => m.textContent.slice(0, 60));
const fig = document.querySelector('.cell_output img, .output img, img.ifl-figure');
const top = fig ? fig.getBoundingClientRect().top + window.scrollY : null;
return {broken: broken, raw: raw, first_figure_top: top};
"""


@dataclass
class PageReport:
    """What one page showed."""

    page: str
    problems: list[str] = field(default_factory=list)
    scripts: dict[str, int] = field(default_factory=dict)  # elements checked per script font
    first_figure_top: float | None = None


def internal_links(html: Path, root: Path) -> list[str]:
    """Links of ``html`` to files of the book (``root``) or anchors that do not exist."""
    text = html.read_text(encoding="utf-8")
    bad = []
    for href in re.findall(r'<a [^>]*href="([^"]+)"', text):
        url = urlparse(href)
        if url.scheme or href.startswith(("//", "mailto:")):
            continue
        target = (html.parent / unquote(url.path)).resolve() if url.path else html.resolve()
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file() or root.resolve() not in target.parents:
            bad.append(href)
        elif url.fragment and target.suffix == ".html":
            ids = set(re.findall(r'id="([^"]+)"', target.read_text(encoding="utf-8")))
            if unquote(url.fragment) not in ids:
                bad.append(href)
    return sorted(set(bad))


def driver():
    """A headless Chromium through chromedriver, logging the browser console."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='ifl-chromium-')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    # The viewport itself, not the window around it, is WINDOW: what a screenshot shows.
    drv.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False},
    )
    return drv


def check_page(drv, html: Path, root: Path, shots: Path) -> PageReport:
    """Load one page, wait for MathJax, run every check and save its screenshot."""
    rel = html.relative_to(root).as_posix()
    report = PageReport(rel)
    drv.get(html.resolve().as_uri())
    drv.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const ready = () => document.readyState === 'complete';"
        "const wait = () => ready() ? ((window.MathJax && MathJax.startup && MathJax.startup.promise)"
        " ? MathJax.startup.promise.then(() => document.fonts.ready).then(() => done(true))"
        " : document.fonts.ready.then(() => done(true))) : setTimeout(wait, 50); wait();"
    )
    probe = drv.execute_script(_PROBE, list(SCRIPTS.items()))  # a list keeps the order
    report.first_figure_top = probe["first_figure_top"]
    report.problems += [f"missing image {src}" for src in probe["broken"]]
    report.problems += [f"raw TeX {t!r}" for t in probe["raw"]]
    report.problems += [f"broken link {h}" for h in internal_links(html, root)]
    for entry in drv.get_log("browser"):
        if entry["level"] == "SEVERE":
            report.problems.append(f"JavaScript error: {entry['message'][:200]}")
    drv.execute_cdp_cmd("DOM.enable", {})
    drv.execute_cdp_cmd("CSS.enable", {})
    doc = drv.execute_cdp_cmd("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
    for k, family in enumerate(SCRIPTS):
        nodes = drv.execute_cdp_cmd(
            "DOM.querySelectorAll", {"nodeId": doc, "selector": f".ifl-probe-{k}"}
        )["nodeIds"]
        report.scripts[family] = len(nodes)
        for node in nodes:
            fonts = drv.execute_cdp_cmd("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
            if not any(f["isCustomFont"] and family in f["familyName"] for f in fonts):
                used = ", ".join(f"{f['familyName']} ({f['glyphCount']})" for f in fonts)
                report.problems.append(f"{family} text drawn by: {used or 'no font'}")
                break
    shots.mkdir(parents=True, exist_ok=True)
    drv.save_screenshot(str(shots / (rel.replace("/", "__").removesuffix(".html") + ".png")))
    return report


def check_book(root: Path, shots: Path) -> list[PageReport]:
    """Every page of the built book at ``root`` (its html folder), screenshots in ``shots``."""
    pages = sorted(p for p in Path(root).rglob("*.html") if "_static" not in p.parts)
    pages = [p for p in pages if p.name not in {"genindex.html", "search.html"}]
    drv = driver()
    try:
        return [check_page(drv, p, Path(root), Path(shots)) for p in pages]
    finally:
        drv.quit()


if __name__ == "__main__":
    reports = check_book(Path(sys.argv[1]), Path(sys.argv[2]))
    for r in reports:
        print(f"{r.page}: first figure at {r.first_figure_top}; script elements {r.scripts}")
        for p in r.problems:
            print(f"  PROBLEM {p}")
    sys.exit(1 if any(r.problems for r in reports) else 0)
