"""Book assembly helpers: the front-page tables and the rule-graph drawing."""

from __future__ import annotations

from ifl.book import summary_markdown
from ifl.dag import draw, parse_rulegraph

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
    assert "#### ifl" in md and "| m1 | -0.100 [-0.200, +0.050] |" in md
    assert "#### lid_rate" in md and "- **minutes_total**: 12.500" in md


def test_rulegraph_parse_and_draw(tmp_path):
    g = parse_rulegraph(DOT)
    assert set(g.edges) == {("book", "all"), ("tasks", "book")}
    draw(g, tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
