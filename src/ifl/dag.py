"""Snakemake's rule graph, drawn by stage without Graphviz, and the run's job and time tables."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.pyplot as plt
import networkx as nx
import pandas as pd

_NODE = re.compile(r'^\s*(\d+)\[label = "([^"]+)"')
_EDGE = re.compile(r"^\s*(\d+) -> (\d+)")


def parse_rulegraph(dot: str) -> nx.DiGraph:
    """The rule graph as a networkx DiGraph whose nodes are rule names."""
    names, graph = {}, nx.DiGraph()
    for line in dot.splitlines():
        if m := _NODE.match(line):
            names[m.group(1)] = m.group(2)
            graph.add_node(m.group(2))
        elif m := _EDGE.match(line):
            graph.add_edge(names[m.group(1)], names[m.group(2)])
    if not graph:
        raise ValueError("no rules found in the rulegraph text")
    return graph


STAGES = ("data", "translate", "train", "generate", "measure", "analyse", "book")
# The stage of a rule file's rules (workflow/rules/<stem>.smk), and of rules that sit in a file
# of another stage or in a file spanning several (the remedies': by what the rule name says).
_FILE_STAGE = {
    "data": "data",
    "paper_download": "data",
    "paper_data": "data",
    "translate": "translate",
    "train": "train",
    "paper_train": "train",
    "generate": "generate",
    "paper_generate": "generate",
    "measure": "measure",
    "analyse": "analyse",
    "inside": "analyse",
    "audit": "analyse",
    "book": "book",
}
_RULE_STAGE = {"translate": "translate", "segments_visit": "translate",
               "segments_instruct": "translate", "instruct": "translate", "all": "book"}  # fmt: skip
_REMEDY_WORDS = (("mix", "data"), ("train", "train"), ("merge", "train"), ("generat", "generate"),
                 ("gold", "measure"), ("label", "measure"))  # fmt: skip
_RULE = re.compile(r"^\s*(?:rule|checkpoint)\s+(\w+)\s*:", re.MULTILINE)  # also under `if`


def rule_stages(rules_dir: str | Path) -> dict[str, str]:
    """The stage (one of :data:`STAGES`) of every rule defined in ``rules_dir``'s ``*.smk``."""
    out = {"all": "book"}
    for path in sorted(Path(rules_dir).glob("*.smk")):
        for name in _RULE.findall(path.read_text(encoding="utf-8")):
            stage = _RULE_STAGE.get(name) or _FILE_STAGE.get(path.stem)
            if stage is None:  # remedies: a file that spans the stages
                stage = next((s for w, s in _REMEDY_WORDS if w in name), "analyse")
            out[name] = stage
    return out


def draw_by_stage(graph: nx.DiGraph, stages: dict[str, str], per_row: int = 4):
    """The rule graph as bands, one per stage from data (top) to book (bottom), each rule a box
    named in a legible font at page width; arrows run from a rule to the rules that read its
    outputs. Rules of a stage wrap onto several lines of ``per_row`` boxes.

    Returns the matplotlib figure (7.5 inches wide, about a book page: shown at page width,
    its 9-point names stay legible). Raises ValueError for a rule without a stage.
    """
    from matplotlib.patches import FancyArrowPatch

    missing = sorted(set(graph) - set(stages))
    if missing:
        raise ValueError(f"rules without a stage: {missing}")
    width, left, line_h, gap = 7.5, 0.9, 0.5, 0.3
    pos, bands, y = {}, [], 0.0
    for stage in STAGES:
        sub = graph.subgraph(n for n in graph if stages[n] == stage)
        if not len(sub):
            continue
        # The stage's rules in order of their dependencies inside the stage, wrapped onto lines
        # of per_row: names stay legible; arrows within a line point sideways.
        rules = [n for gen in nx.topological_generations(sub) for n in sorted(gen)]
        lines = [rules[i : i + per_row] for i in range(0, len(rules), per_row)]
        top = y
        for line in lines:
            for col, name in enumerate(line):
                pos[name] = (left + (col + 0.5) * (width - left) / per_row, y)
            y -= line_h
        bands.append((stage, top + line_h / 2, y + line_h / 2))
        y -= gap
    height = -y + 0.2
    fig, ax = plt.subplots(figsize=(width, max(2.0, height)))
    ax.set_xlim(0, width)
    ax.set_ylim(y + gap - 0.1, line_h / 2 + 0.1)
    ax.axis("off")
    for k, (stage, top, bottom) in enumerate(bands):
        ax.axhspan(bottom, top, color="#f3f6fb" if k % 2 == 0 else "#ffffff", zorder=0)
        ax.text(
            0.05,
            (top + bottom) / 2,
            stage,
            fontsize=11,
            weight="bold",
            va="center",
            color="#34495e",
        )
    for a, b in graph.edges:
        (xa, ya), (xb, yb) = pos[a], pos[b]
        bend = 0.25 if ya == yb else 0.08
        ax.add_patch(FancyArrowPatch((xa, ya), (xb, yb), connectionstyle=f"arc3,rad={bend}",
                                     arrowstyle="-|>", mutation_scale=8, color="#9aa7b8", lw=0.7,
                                     shrinkA=11, shrinkB=11, zorder=1))  # fmt: skip
    for name, (x, yy) in pos.items():
        ax.text(x, yy, name, fontsize=9, ha="center", va="center", zorder=2,
                bbox={"boxstyle": "round,pad=0.3", "fc": "#e8f0fe", "ec": "#4a6fa5", "lw": 0.8})  # fmt: skip
    fig.tight_layout()
    return fig


_STAT = re.compile(r"^(\S+)\s+(\d+)\s*$")


def job_counts(text: str) -> dict[str, int]:
    """Jobs per rule from the ``Job stats`` table that ``snakemake -n`` prints (total excluded)."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("Job stats"))
    except StopIteration:
        raise ValueError("no 'Job stats' table in the dry-run output") from None
    counts = {}
    for line in lines[start + 3 :]:
        m = _STAT.match(line)
        if not m:
            break
        if m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


def benchmark_table(bench_dir: str | Path) -> pd.DataFrame:
    """Wall time and peak memory per rule from Snakemake's ``benchmark:`` files.

    Files are named ``<rule>-<wildcards>.tsv`` or ``<rule>.tsv``; columns ``s`` (seconds) and
    ``max_rss`` (MB) as Snakemake writes them.
    """
    rows = []
    for f in sorted(Path(bench_dir).glob("*.tsv")):
        t = pd.read_csv(f, sep="\t")
        rss = pd.to_numeric(t["max_rss"], errors="coerce").max() if "max_rss" in t else float("nan")
        rows.append(
            {
                "rule": f.stem.split("-", 1)[0],
                "job": f.stem,
                "seconds": float(t["s"].iloc[0]),
                "max_rss_mb": rss,
            }
        )
    if not rows:
        raise ValueError(f"no benchmark files in {str(bench_dir)!r}")
    jobs = pd.DataFrame(rows)
    return (
        jobs.groupby("rule", sort=False)
        .agg(
            jobs=("job", "size"),
            seconds=("seconds", "sum"),
            max_seconds=("seconds", "max"),
            max_rss_mb=("max_rss_mb", "max"),
        )
        .reset_index()
        .sort_values("seconds", ascending=False, ignore_index=True)
    )
