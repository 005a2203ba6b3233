"""Draw Snakemake's ``--rulegraph`` (DOT text) as a PNG without Graphviz."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402
import pandas as pd  # noqa: E402

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


def draw(graph: nx.DiGraph, path: str | Path) -> None:
    """Layered left-to-right drawing: each rule sits one column after its latest input."""
    for node in nx.topological_sort(graph):
        graph.nodes[node]["layer"] = max(
            (graph.nodes[p]["layer"] + 1 for p in graph.predecessors(node)), default=0
        )
    pos = nx.multipartite_layout(graph, subset_key="layer")
    width = 2.2 * (1 + max(nx.get_node_attributes(graph, "layer").values()))
    fig, ax = plt.subplots(figsize=(width, 4.5))
    nx.draw_networkx_edges(
        graph, pos, ax=ax, arrows=True, arrowsize=12, edge_color="#888", node_size=2200
    )
    nx.draw_networkx_labels(
        graph, pos, ax=ax, font_size=8, bbox={"boxstyle": "round", "fc": "#e8f0fe", "ec": "#4a6fa5"}
    )
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
