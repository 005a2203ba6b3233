"""Assemble and build the Jupyter Book from the sources in book/ and a run's results.

Sources are staged under ``results/<run>/book-src`` (executed notebooks, a front page stating
the run's findings beside the papers' (:mod:`ifl.front_page`), an appendix page of
summary.json's figures, and web fonts for the 14 languages' scripts (:mod:`ifl.fonts`)), built
with Jupyter Book 1 into a temporary folder, and moved onto ``book/_build/<run>/html`` only when
the build succeeded: each run keeps its own book.

Staged notebooks read like a paper's chapters: the executed code is collapsed under each figure
or table (cells the notebook tags ``remove-input`` / ``remove-cell`` as plumbing are left out),
and one collapsed cell shows the parameters the run injected.

``book/_toc.yml`` lists every chapter of the organism preset; a preset that runs fewer notebooks
(the paper preset has no organism chapter; `remedies.enabled: false` drops the remedies) gets a staged table of contents
without the missing chapters, so that Sphinx warns about nothing and no part is left empty.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ifl.fonts import characters, write_web_fonts
from ifl.front_page import findings_markdown
from ifl.io import atomic_dir

SUMMARY_MARKER = "<!-- summary -->"  # in the appendix page: summary.json as tables
FINDINGS_MARKER = "<!-- findings -->"  # in index.md: the findings in sentences
APPENDIX = "headline_tables.md"
PAPER_DIR = "data/paper"  # the papers' CSVs, inside the book's sources
# Jupyter Book's cell tags that decide how a code cell is shown; a cell with none is collapsed.
SHOW_TAGS = {"hide-input", "remove-input", "remove-cell", "hide-cell", "hide-output"}
NOTEBOOK_DIR = "notebooks"  # where the staged book keeps the executed notebooks


def _fmt(value: Any) -> str:
    if isinstance(value, Mapping) and {"estimate", "ci_low", "ci_high"} <= set(value):
        return f"{value['estimate']:+.3f} [{value['ci_low']:+.3f}, {value['ci_high']:+.3f}]"
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _is_leaf(value: Any) -> bool:
    return not isinstance(value, Mapping) or {"estimate", "ci_low", "ci_high"} <= set(value)


def _table(title: str, figures: Mapping[str, Any], level: int) -> str:
    """One markdown table (rows x columns) per mapping of mappings; recurse deeper."""
    head = f"{'#' * level} {title}\n\n"
    if all(_is_leaf(v) for v in figures.values()):  # a single row: keys are columns
        cols = list(figures)
        return (
            head
            + "| "
            + " | ".join(cols)
            + " |\n"
            + "|---" * len(cols)
            + "|\n| "
            + " | ".join(_fmt(figures[c]) for c in cols)
            + " |\n"
        )
    if all(
        isinstance(v, Mapping) and all(_is_leaf(x) for x in v.values()) for v in figures.values()
    ):
        cols = sorted({c for v in figures.values() for c in v})
        lines = ["| | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        lines += [
            f"| {r} | " + " | ".join(_fmt(v.get(c, "")) for c in cols) + " |"
            for r, v in figures.items()
        ]
        return head + "\n".join(lines) + "\n"
    parts = [head.rstrip()]
    for key, value in figures.items():
        parts.append(
            _table(key, value, level + 1)
            if isinstance(value, Mapping)
            else f"- **{key}**: {_fmt(value)}"
        )
    return "\n\n".join(parts) + "\n"


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """Markdown for the appendix page: the figures of every chapter of summary.json.

    Each chapter becomes a section (level 2, under the page's title); nested mappings become tables (outer keys as rows, inner
    keys as columns), estimates with intervals print as ``estimate [low, high]``.
    """
    parts = []
    for chapter, figures in summary.items():
        if isinstance(figures, Mapping):
            parts.append(_table(chapter, figures, 2))
        else:
            parts.append(f"- **{chapter}**: {_fmt(figures)}")
    return "\n\n".join(parts) + "\n"


def prune_toc(toc: Mapping[str, Any], present: set[str]) -> dict[str, Any]:
    """The table of contents without the notebook chapters that were not run.

    ``present`` holds the stems of the executed notebooks; an entry ``notebooks/<stem>`` whose
    stem is absent is dropped, and so is a part left without chapters. Other entries (pages of
    the book's own sources) are kept as they are.

    Raises:
        ValueError: if every notebook chapter is dropped (a book needs at least one).
    """

    def keep(entry: Any) -> bool:
        file = str(entry.get("file", "")) if isinstance(entry, Mapping) else ""
        folder, _, stem = file.rpartition("/")
        return folder != NOTEBOOK_DIR or Path(stem).stem in present

    out = dict(toc)
    if "chapters" in toc:
        out["chapters"] = [c for c in toc["chapters"] if keep(c)]
    if "parts" in toc:
        parts = [
            {**p, "chapters": [c for c in p.get("chapters", []) if keep(c)]} for p in toc["parts"]
        ]
        out["parts"] = [p for p in parts if p["chapters"]]
    kept = [*out.get("chapters", []), *(c for p in out.get("parts", []) for c in p["chapters"])]
    if not any(str(c.get("file", "")).startswith(f"{NOTEBOOK_DIR}/") for c in kept):
        raise ValueError(
            f"no chapter of the table of contents was run (notebooks: {sorted(present)})"
        )
    return out


_INJECTED_CHAPTER = re.compile(r"""^chapter = ['"]?(\w+)['"]?\s*$""", re.MULTILINE)
_TITLE_NUMBER = re.compile(r"^# \w+\. ")


def _renumber_title(cells: list[dict[str, Any]], injected_source: str) -> None:
    """Give the chapter's title (``# 3. ...``) the number the run injected (``chapter = 2``):
    a preset without some chapters numbers the others without gaps."""
    found = _INJECTED_CHAPTER.search(injected_source)
    title = next((c for c in cells if c.get("cell_type") == "markdown"), None)
    if found is None or title is None:
        return
    text = "".join(title.get("source", ""))
    title["source"] = _TITLE_NUMBER.sub(f"# {found.group(1)}. ", text, count=1)


def present_notebook(nb: dict[str, Any], name: str) -> dict[str, Any]:
    """Tag an executed notebook's code cells for reading: untagged code collapsed under its
    output, the notebook's default parameters removed, and the cell papermill injected (the
    values of this run) collapsed, with the command that reruns the notebook. The title takes
    the chapter number the run injected."""
    cells = nb.get("cells", [])
    injected = any("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in cells)
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "parameters" in tags:
            tags.append("remove-cell" if injected else "hide-input")
        elif "injected-parameters" in tags:
            tags.append("hide-input")
            _renumber_title(cells, "".join(cell.get("source", "")))
            lines = "".join(cell.get("source", "")).splitlines()
            body = lines[1:] if lines and lines[0].startswith("# Parameters") else lines
            cell["source"] = "\n".join(
                [
                    "# The parameters of this run (injected by papermill). Rerun with other values:",
                    f"#   papermill notebooks/{name}.ipynb out.ipynb -p NAME VALUE ...",
                    *body,
                ]
            )
        elif not SHOW_TAGS & set(tags):
            tags.append("hide-input")
    return nb


def stage(src: Path, run_dir: Path, notebooks: Sequence[Path], out: Path) -> None:
    """Copy book sources and executed notebooks (tagged for reading) into ``out``, fill the
    front page and the appendix from the run's results, and write the web fonts; chapters of
    notebooks that this run did not execute leave the table of contents."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("_build"))
    (out / NOTEBOOK_DIR).mkdir(exist_ok=True)
    for nb in notebooks:
        content = present_notebook(json.loads(Path(nb).read_text(encoding="utf-8")), Path(nb).stem)
        (out / NOTEBOOK_DIR / Path(nb).name).write_text(
            json.dumps(content, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
        )
    toc_path = out / "_toc.yml"
    if toc_path.is_file():
        toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))
        pruned = prune_toc(toc, {Path(nb).stem for nb in notebooks})
        if pruned != toc:  # rewritten only when a chapter is missing: the organism's stays as is
            toc_path.write_text(yaml.safe_dump(pruned, sort_keys=False), encoding="utf-8")
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    fill = {
        "index.md": (
            FINDINGS_MARKER,
            findings_markdown(summary, run_dir / "tables", src / PAPER_DIR),
        ),
        APPENDIX: (SUMMARY_MARKER, summary_markdown(summary)),
    }
    for page, (marker, text) in fill.items():
        source = (src / page).read_text(encoding="utf-8")
        if marker not in source:
            raise ValueError(f"{src / page} lacks the marker {marker!r}")
        (out / page).write_text(source.replace(marker, text), encoding="utf-8")
    pages = [*out.glob("*.md"), *(out / NOTEBOOK_DIR).glob("*.ipynb")]
    write_web_fonts(out / "_static", characters(pages))


_INLINE_SCRIPT = re.compile(r"^\s*<script>.*</script>\s*$")


def drop_repeated_inline_scripts(html_dir: Path) -> None:
    """Remove the second copy of an inline ``<script>`` line from every page.

    Jupyter Book 1 emits sphinx-thebe's configuration twice, and its second
    ``const THEBE_JS_URL`` is a JavaScript error ("has already been declared") on every page.
    """
    for page in Path(html_dir).rglob("*.html"):
        lines, seen, kept = page.read_text(encoding="utf-8").splitlines(keepends=True), set(), []
        for line in lines:
            if _INLINE_SCRIPT.match(line):
                if line.strip() in seen:
                    continue
                seen.add(line.strip())
            kept.append(line)
        if len(kept) != len(lines):
            page.write_text("".join(kept), encoding="utf-8")


def build(src: Path, run_dir: Path, notebooks: Sequence[Path], out: Path) -> Path:
    """Stage and build the book; on success ``out/html`` holds it (out is book/_build/<run>)."""
    staged = run_dir / "book-src"
    stage(src, run_dir, notebooks, staged)
    work = run_dir / "book-build"
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from jupyter_book.cli.main import main; main()",
            "build",
            str(staged),
            "--path-output",
            str(work),
        ],
        check=True,
    )
    drop_repeated_inline_scripts(work / "_build" / "html")
    with atomic_dir(out / "html") as tmp:
        shutil.rmtree(tmp)
        shutil.copytree(work / "_build" / "html", tmp)
    return out / "html" / "index.html"
