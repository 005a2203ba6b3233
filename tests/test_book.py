"""Book assembly helpers: the front-page tables and the rule-graph drawing."""

from __future__ import annotations

import pytest

from ifl.book import prune_toc, summary_markdown
from ifl.dag import STAGES, draw_by_stage, parse_rulegraph, rule_stages

DOT = """digraph snakemake_dag {
    0[label = "all", color = "0.1 0.6 0.85", style="rounded"];
    1[label = "book", color = "0.2 0.6 0.85", style="rounded"];
    2[label = "tasks", color = "0.3 0.6 0.85", style="rounded"];
    1 -> 0
    2 -> 1
}"""


def test_summary_markdown_renders_nested_figures():
    ci = {"estimate": -0.1, "ci_low": -0.2, "ci_high": 0.05}
    md = summary_markdown(
        {
            "run_name": "x",
            "fidelity": {"m1": {"image": 0.5, "text": 0.75}},
            "prevalence": {"ifl": {"m1": {"MaXM": ci}}},
            "organism": {"lid_rate": {"de": 1.0}, "minutes_total": 12.5},
        }
    )
    assert "- **run_name**: x" in md
    assert "| | image | text |" in md and "| m1 | 0.500 | 0.750 |" in md
    assert "## prevalence" in md and "### ifl" in md and "| m1 | -0.100 [-0.200, +0.050] |" in md
    assert "### lid_rate" in md and "- **minutes_total**: 12.500" in md


def test_rulegraph_parse_and_draw_by_stage():
    g = parse_rulegraph(DOT)
    assert set(g.edges) == {("book", "all"), ("tasks", "book")}
    fig = draw_by_stage(g, {"all": "book", "book": "book", "tasks": "data"})
    labels = {t.get_text() for t in fig.axes[0].texts}
    assert {"all", "book", "tasks", "data"} <= labels and "train" not in labels  # empty stage
    with pytest.raises(ValueError, match=r"rules without a stage: \['tasks'\]"):
        draw_by_stage(g, {"all": "book", "book": "book"})


def test_every_rule_of_both_presets_has_a_stage():
    """Every rule the workflow defines (organism and paper presets) maps to a stage, the
    remedies' by what they do."""
    from ifl.config import REPO_ROOT

    stages = rule_stages(REPO_ROOT / "workflow" / "rules")
    assert set(stages.values()) <= set(STAGES)
    assert stages["tokenizer"] == "train" and stages["translate"] == "translate"
    assert stages["remedy_mix"] == "data" and stages["remedy_merge"] == "train"
    assert stages["remedy_generate"] == "generate" and stages["remedy_gold_sample"] == "measure"
    assert stages["remedy_tables"] == "analyse" and stages["rulegraph"] == "book"
    assert stages["audit_states"] == "analyse" and stages["audit_table"] == "analyse"
    assert stages["gold_sample"] == "measure"  # a rule defined under `if` in its file


def _toc() -> dict:
    import yaml

    from ifl.config import REPO_ROOT

    return yaml.safe_load((REPO_ROOT / "book" / "_toc.yml").read_text(encoding="utf-8"))


def test_toc_keeps_every_chapter_of_a_full_run():
    toc = _toc()
    stems = {c["file"].split("/")[-1] for p in toc["parts"] for c in p["chapters"]}
    assert prune_toc(toc, stems) == toc  # the organism's book is built from the file as it is


def test_toc_drops_chapters_and_parts_a_preset_does_not_run():
    paper = {"01_fidelity", "02_prevalence", "03_design_effects", "04_inside", "99_how_built"}
    pruned = prune_toc(_toc(), paper)
    files = [c["file"] for p in pruned["parts"] for c in p["chapters"]]
    assert files == [f"notebooks/{s}" for s in sorted(paper)] + ["headline_tables"]
    captions = [p["caption"] for p in pruned["parts"]]
    assert "The model organism" not in captions and "Remedies" not in captions
    assert pruned["root"] == "index"
    with pytest.raises(ValueError, match="no chapter of the table of contents was run"):
        prune_toc(_toc(), set())
