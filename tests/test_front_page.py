"""The front page's findings: sentences computed from a run's summary and tables, beside the
papers' figures, whose comparisons follow the numbers."""

from __future__ import annotations

import copy
import json

import pandas as pd
import pytest

from ifl.book import present_notebook, stage
from ifl.config import REPO_ROOT
from ifl.front_page import findings_markdown, sign_verdict

PAPER = REPO_ROOT / "book" / "data" / "paper"


def _ci(estimate: float, half: float = 0.05) -> dict:
    return {"estimate": estimate, "ci_low": estimate - half, "ci_high": estimate + half}


SUMMARY = {
    "run_name": "fixture",
    "fidelity": {"m-en": {"image": 0.4, "text": 0.9}, "m-de": {"image": 0.6, "text": 0.8}},
    "prevalence": {
        "ifl": {
            "m-en": {"MaXM": _ci(-0.30), "VisIT": _ci(-0.20)},
            "m-de": {"MaXM": _ci(-0.10), "VisIT": _ci(0.01)},
        }
    },
    "steering": {"diff": {"m-en": 0.12}, "relative_increase": {"m-en": 0.4}},
    "organism": {
        "vlm_accuracy_en_short": {"m-en": 0.8, "m-de": 0.5},
        "vlm_accuracy_own": {
            "m-en": {"image": 0.7, "text": 0.9},
            "m-de": {"image": 0.6, "text": 0.8},
        },
    },
}


@pytest.fixture
def tables(tmp_path):
    rows = [
        {"model": m, "benchmark": b, "language": lang, "condition": c, "fidelity": 0.5, "n": 3}
        for m in ("m-en", "m-de")
        for b in ("MaXM", "VisIT")
        for lang in ("en", "de", "zh")
        for c in ("image", "text")
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "fidelity.csv", index=False)
    design = [  # zh LLM agrees (+), VE disagrees (paper -), Data unresolved
        ("zh", "LLM", 0.2, 0.1, 0.3),
        ("zh", "VE", 0.2, 0.1, 0.3),
        ("zh", "Data", 0.0, -0.1, 0.1),
        ("zh", "Image", -0.3, -0.4, -0.2),
    ]
    pd.DataFrame(
        [
            {
                "language": lang,
                "term": t,
                "outcome": "ifl",
                "estimate": e,
                "ci_low": lo,
                "ci_high": hi,
            }
            for lang, t, e, lo, hi in design
        ]
    ).to_csv(tmp_path / "design_effects.csv", index=False)
    pd.DataFrame(
        [
            {
                "model": "m-en",
                "primary": True,
                "source": "proxy",
                "diff": 0.12,
                "diff_ci_low": 0.05,
                "diff_ci_high": 0.2,
            }
        ]  # fmt: skip
    ).to_csv(tmp_path / "steering_table5.csv", index=False)
    remedies = [  # variant, axis, IFL [CI], accuracy [CI]
        ("base", "base", (-0.40, -0.45, -0.35), (0.50, 0.45, 0.55)),
        ("text-25", "text", (-0.10, -0.15, -0.05), (0.52, 0.47, 0.57)),
        ("tasks-all-100", "tasks", (-0.41, -0.46, -0.36), (0.70, 0.65, 0.75)),
    ]
    pd.DataFrame(
        [
            {
                "variant": v,
                "axis": axis,
                "setting": 0.0,
                "set": "",
                "base_model": "m-en",
                "metric": metric,
                "method": "dsl",
                "estimate": e,
                "ci_low": lo,
                "ci_high": hi,
            }
            for v, axis, ifl, acc in remedies
            for metric, (e, lo, hi) in (("ifl", ifl), ("accuracy", acc))
        ]  # fmt: skip
    ).to_csv(tmp_path / "remedies.csv", index=False)
    return tmp_path


def test_sign_verdict():
    assert sign_verdict(1, 1) == "agrees in sign"
    assert sign_verdict(-1, 1) == "disagrees in sign"
    assert sign_verdict(0, -1) == "not resolved"


def test_findings_state_the_numbers_and_the_comparisons(tables):
    md = findings_markdown(SUMMARY, tables, PAPER)
    # scope: what the figures average over
    assert "2 models, 3 query languages and 2 benchmarks: 18 queries with an image" in md
    # IFL range, counts of resolved cells, the paper's quoted range (pp -> fraction)
    assert "from -0.30 (m-en, MaXM) to +0.01 (m-de, VisIT)" in md
    assert "3 have a 95% CI below zero, 0 above zero and 1 cover zero" in md
    assert "-0.53 to -0.06 for its released LLaVAs" in md
    assert "This run **agrees in sign** with the paper" in md
    assert "| m-de | MaXM -0.10, VisIT +0.01 | 1 / 0 of 2 |" in md
    # size: the median cell (-0.15) against the median quoted value ((-13.7 - 19.2) / 2 pp)
    assert (
        "In size, this run's loss is smaller: its median cell is -0.15, 0.9 times the median of "
        "the paper's quoted values (-0.16)." in md
    )
    # Table 4: one effect of each verdict, the paper's value beside ours
    assert "1 agrees in sign with the paper's, 1 disagrees" in md and "1 is not resolved" in md
    assert (
        "| Chinese | VE | +0.20 [+0.10, +0.30] | -0.20 [-0.22, -0.18] | disagrees in sign |" in md
    )
    # steering gain beside the paper's Table 5
    assert "by +0.12 on 1 model of this run, relative increase 0.40" in md
    assert "gain +0.055 to +0.170" in md and "**agrees in sign** with the paper.\n" in md
    assert "the accuracy of the 2 VLMs is 0.50 to 0.80 (mean 0.65" in md
    assert "they score 0.60 to 0.70 with the image and 0.80 to 0.90 with its description" in md
    # remedies: each variant against the base; LRM-LLaVA's direction from its Table 3
    assert "Of 2 variants, 1 reduce IFL and 0 increase it" in md
    assert "the least fidelity loss is text-25's (-0.10)" in md
    assert "raise the non-English MMBench average from 61.6 to 66.1" in md
    assert (
        "tasks-all-100 changes image-reply accuracy from 0.50 to 0.70: this run **agrees in sign**"
        in md
    )
    assert "| text-25 | -0.40 -> -0.10 | less IFL (+0.30 [" in md
    assert "the share of replies in the query language is 0.80 to 0.90 (mean 0.85" in md


def test_a_changed_number_changes_the_sentence(tables):
    before = findings_markdown(SUMMARY, tables, PAPER)
    changed = copy.deepcopy(SUMMARY)
    for bench in ("MaXM", "VisIT"):  # the image now raises fidelity everywhere
        changed["prevalence"]["ifl"]["m-en"][bench] = _ci(0.25)
        changed["prevalence"]["ifl"]["m-de"][bench] = _ci(0.35)
    changed["steering"]["diff"]["m-en"] = -0.07
    after = findings_markdown(changed, tables, PAPER)
    assert after != before
    assert "from +0.25 (m-en, MaXM) to +0.35 (m-de, MaXM)" in after
    assert "0 have a 95% CI below zero, 4 above zero" in after
    assert (
        "This run **disagrees in sign** with the paper (cells below zero are outnumbered by "
        "those above)" in after
    )
    assert "by -0.07 on 1 model" in after
    assert "In size" not in after  # opposite signs: no ratio
    unresolved = copy.deepcopy(SUMMARY)
    for model in ("m-en", "m-de"):
        for bench in ("MaXM", "VisIT"):
            unresolved["prevalence"]["ifl"][model][bench] = _ci(-0.01)
    md = findings_markdown(unresolved, tables, PAPER)
    assert "0 have a 95% CI below zero, 0 above zero and 4 cover zero" in md
    assert "This run **does not resolve the sign** (no 95% CI excludes zero)" in md


def test_coverage_of_redrawn_gold_samples_is_stated_with_its_verdict(tables):
    def intervals(covered_a: int) -> pd.DataFrame:  # 10 draws x 2 benchmarks at one size
        return pd.DataFrame(
            {
                "size": 100,
                "draw": [d for d in range(10) for _ in (0, 1)],
                "model": "m-en",
                "benchmark": ["A", "B"] * 10,
                "estimate": 0.02,
                "ci_low": -0.1,
                "ci_high": 0.1,
                "truth": 0.0,
                "covered": [d < covered_a for d in range(10) for _ in (0, 1)],
            }
        ).assign(covered=lambda d: d.covered | (d.benchmark == "B"))

    intervals(7).to_csv(tables / "dsl_coverage.csv", index=False)
    md = findings_markdown(SUMMARY, tables, PAPER)
    assert "(10 draws per size" in md
    assert (
        "in 85% of cells x draws with 100 gold rows (lowest A 70%; mean error +0.020): too narrow"
        in md
    )
    intervals(10).to_csv(tables / "dsl_coverage.csv", index=False)
    md = findings_markdown(SUMMARY, tables, PAPER)
    assert "in 100% of cells x draws with 100 gold rows" in md and "conservative" in md


def test_findings_leave_out_what_a_run_lacks(tmp_path):
    bare = {
        "run_name": "bare",
        "fidelity": SUMMARY["fidelity"],
        "prevalence": SUMMARY["prevalence"],
    }
    md = findings_markdown(bare, tmp_path, PAPER)
    assert "Image-induced fidelity loss" in md
    assert "Steering" not in md and "Table 4" not in md and "Remedies" not in md
    assert "How far the intervals hold" not in md


def _notebook(injected: bool) -> dict:
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": "# T"},
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "x = 1"},
        {"cell_type": "code", "metadata": {"tags": ["remove-input"]}, "source": "import os"},
        {"cell_type": "code", "metadata": {}, "source": "plot()"},
    ]
    if injected:
        cells.insert(2, {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]},
                         "source": "# Parameters\nx = 2\n"})  # fmt: skip
    return {"cells": cells}


def test_notebooks_show_one_collapsed_cell_of_injected_parameters():
    nb = present_notebook(_notebook(injected=True), "01_fidelity")
    tags = [c["metadata"].get("tags", []) for c in nb["cells"]]
    assert tags[1] == ["parameters", "remove-cell"]
    assert tags[2] == ["injected-parameters", "hide-input"]
    assert nb["cells"][2]["source"].splitlines() == [
        "# The parameters of this run (injected by papermill). Rerun with other values:",
        "#   papermill notebooks/01_fidelity.ipynb out.ipynb -p NAME VALUE ...",
        "x = 2",
    ]
    assert tags[3] == ["remove-input"] and tags[4] == ["hide-input"]
    # Run without papermill's values: the defaults are the parameters shown.
    plain = present_notebook(_notebook(injected=False), "01_fidelity")
    assert plain["cells"][1]["metadata"]["tags"] == ["parameters", "hide-input"]


@pytest.mark.parametrize(
    ("injected", "title"),
    [("chapter = 2", "# 2. T"), ('chapter = "5"', "# 5. T"), ("x = 2", "# 3. T")],
)
def test_the_title_takes_the_chapter_number_the_run_injected(injected: str, title: str) -> None:
    nb = _notebook(injected=True)
    nb["cells"][0]["source"] = "# 3. T"
    nb["cells"][2]["source"] = f"# Parameters\n{injected}\n"
    assert present_notebook(nb, "02_prevalence")["cells"][0]["source"] == title


def test_stage_fills_front_page_appendix_and_fonts(tables, tmp_path):
    run = tmp_path / "run"
    (run / "tables").mkdir(parents=True)
    for f in tables.glob("*.csv"):
        (run / "tables" / f.name).write_bytes(f.read_bytes())
    (run / "summary.json").write_text(json.dumps(SUMMARY), encoding="utf-8")
    nb = tmp_path / "01_fidelity.ipynb"
    nb.write_text(json.dumps({**_notebook(True), "metadata": {}, "nbformat": 4,
                              "nbformat_minor": 5}), encoding="utf-8")  # fmt: skip
    out = tmp_path / "staged"
    stage(REPO_ROOT / "book", run, [nb], out)
    index = (out / "index.md").read_text(encoding="utf-8")
    assert "<!-- findings -->" not in index and "agrees in sign" in index
    appendix = (out / "headline_tables.md").read_text(encoding="utf-8")
    assert "| m-de | 0.600 | 0.800 |" in appendix
    staged_nb = json.loads((out / "notebooks" / "01_fidelity.ipynb").read_text(encoding="utf-8"))
    assert "hide-input" in staged_nb["cells"][4]["metadata"]["tags"]
    # The front page names the 14 languages in their scripts: the book gets every script's font.
    css = (out / "_static" / "ifl-fonts.css").read_text(encoding="utf-8")
    for script, family in (("hani", "SC"), ("deva", "Devanagari"), ("beng", "Bengali"),
                           ("thai", "Thai"), ("hebr", "Hebrew"), ("arab", "Arabic")):  # fmt: skip
        assert f'"ifl Noto Sans {family}"' in css
        assert (out / "_static" / "fonts" / f"ifl-{script}.woff").is_file()
