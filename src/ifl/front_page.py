"""The book's front page: what this run found, in sentences, beside the papers' figures.

Every number is read from the run's ``summary.json`` and result tables, every paper figure from
the CSVs of ``book/data/paper``; every comparison (agrees in sign, disagrees, not resolved) is
computed, so the text stays true whatever the numbers of a run are. Each function returns
Markdown for one finding, or ``""`` when the run has no such result.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

LANGUAGE_NAMES = {"zh": "Chinese", "de": "German"}  # the targets of Table 4's regressions


def _sign(low: float, high: float) -> int:
    """+1 / -1 when a 95% CI lies above / below zero, 0 when it covers zero."""
    return 1 if low > 0 else -1 if high < 0 else 0


def sign_verdict(ours: int, paper: int) -> str:
    """Compare a resolved sign of this run (+1, -1, or 0 when its CI covers 0) with the paper's:
    ``agrees in sign``, ``disagrees in sign`` or ``not resolved``."""
    if ours == 0:
        return "not resolved"
    return "agrees in sign" if ours == paper else "disagrees in sign"


def _this_run(verdict: str) -> str:
    """The verdict as the end of a sentence that starts "This run"."""
    if verdict == "not resolved":
        return (
            "**does not resolve the sign** (no 95% CI excludes zero), so it neither agrees nor "
            "disagrees with the paper"
        )
    return f"**{verdict}** with the paper"


def _range(values: pd.Series, fmt: str = "{:+.2f}") -> str:
    lo, hi = values.min(), values.max()
    return fmt.format(lo) if np.isclose(lo, hi) else f"{fmt.format(lo)} to {fmt.format(hi)}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _cells(summary: Mapping[str, Any], key: str = "ifl") -> pd.DataFrame:
    """``summary['prevalence'][key]`` as rows of model, benchmark, estimate, ci_low, ci_high."""
    block = summary.get("prevalence", {}).get(key, {})
    rows = [{"model": m, "benchmark": b, **est} for m, by in block.items() for b, est in by.items()]
    return pd.DataFrame(rows, columns=["model", "benchmark", "estimate", "ci_low", "ci_high"])


def scope(fidelity: pd.DataFrame | None, summary: Mapping[str, Any]) -> str:
    """What the figures average over: models, query languages, benchmarks, queries per model."""
    models = sorted(summary.get("fidelity", {}))
    if fidelity is None or fidelity.empty:
        return f"{_count(len(models), 'model')}"
    langs = fidelity["language"].nunique()
    benches = fidelity["benchmark"].nunique()
    queries = int(round(fidelity.loc[fidelity["condition"] == "image", "n"].sum() / len(models)))
    return (
        f"{_count(len(models), 'model')}, {_count(langs, 'query language')} and "
        f"{_count(benches, 'benchmark')}: {queries} queries with an image per model, each also "
        "asked with the image replaced by its text description"
    )


def fidelity_finding(summary: Mapping[str, Any], fidelity: pd.DataFrame | None) -> str:
    """Do the models reply in the query language at all? Mean fidelity per condition."""
    fid = pd.DataFrame(summary.get("fidelity", {})).T
    if fid.empty or not {"image", "text"} <= set(fid.columns):
        return ""
    langs = fidelity["language"].nunique() if fidelity is not None else None
    over = (
        f"pooled over every benchmark and the {langs} query languages (English included)"
        if langs
        else "pooled over every benchmark and query language"
    )
    return (
        "**Do the models answer in the query language?** With the text description in place of "
        f"the image, the share of replies in the query language is {_range(fid['text'], '{:.2f}')} "
        f"(mean {fid['text'].mean():.2f} over models); with the image, "
        f"{_range(fid['image'], '{:.2f}')} (mean {fid['image'].mean():.2f}). Fidelity per model "
        f"and condition, {over}, as the LID model labels the replies (appendix table "
        "*fidelity*). The paper's Figure 3 shows the same comparison as a plot without quoted "
        "values.\n"
    )


def ifl_finding(summary: Mapping[str, Any], paper_fig1: pd.DataFrame) -> str:
    """IFL per model and benchmark (DSL) against the values the paper quotes from Figure 1."""
    cells = _cells(summary)
    if cells.empty:
        return ""
    signs = [_sign(r.ci_low, r.ci_high) for r in cells.itertuples()]
    below, above = signs.count(-1), signs.count(1)
    lo, hi = cells.loc[cells["estimate"].idxmin()], cells.loc[cells["estimate"].idxmax()]
    quoted = paper_fig1.dropna(subset=["ifl_pp"])
    paper = quoted["ifl_pp"] / 100
    paper_sign = int(np.sign(np.median(paper)))
    not_sig = paper_fig1["ifl_pp"].isna().sum()
    ours = int(np.sign(above - below)) if below + above else 0  # the sign most cells resolve
    verdict = sign_verdict(ours, paper_sign)
    direction = "lowers" if paper_sign < 0 else "raises"
    lines = [
        "**Image-induced fidelity loss (IFL).** IFL = fidelity(image) - fidelity(text) of one "
        "model on one benchmark, the DSL estimate pooled over the benchmark's tasks in every "
        "query language, negative when the image costs fidelity. In this run it ranges from "
        f"{lo['estimate']:+.2f} ({lo['model']}, {lo['benchmark']}) to {hi['estimate']:+.2f} "
        f"({hi['model']}, {hi['benchmark']}); of the {len(cells)} model x benchmark cells, "
        f"{below} have a 95% CI below zero, {above} above zero and {len(cells) - below - above} "
        f"cover zero. The paper quotes {_count(len(quoted), 'value')} from its Figure 1, "
        f"{_range(paper)} for its released LLaVAs (converted from percentage points), "
        f"and calls {_count(not_sig, 'cell')} not significant: the image {direction} fidelity. "
        f"This run {_this_run(verdict)}"
        + (
            f" (cells below zero {'outnumber' if below > above else 'are outnumbered by'} "
            "those above)."
            if ours
            else "."
        )
        + _size(cells["estimate"], paper),
        "",
        "| model | IFL per benchmark (DSL) | cells below / above zero |",
        "|---|---|---|",
    ]
    for model, group in cells.groupby("model", sort=True):
        s = [_sign(r.ci_low, r.ci_high) for r in group.itertuples()]
        per = ", ".join(f"{r.benchmark} {r.estimate:+.2f}" for r in group.itertuples())
        lines.append(f"| {model} | {per} | {s.count(-1)} / {s.count(1)} of {len(s)} |")
    return "\n".join(lines) + "\n"


def _size(ours: pd.Series, paper: pd.Series) -> str:
    """How large this run's IFL is against the paper's quoted values (medians)."""
    mine, theirs = float(np.median(ours)), float(np.median(paper)) if len(paper) else 0.0
    if not theirs or np.sign(mine) != np.sign(theirs):
        return ""
    ratio = abs(mine) / abs(theirs)
    size = "larger" if ratio > 1 else "smaller"
    return (
        f" In size, this run's loss is {size}: its median cell is {mine:+.2f}, "
        f"{ratio:.1f} times the median of the paper's quoted values ({theirs:+.2f})."
    )


def design_comparison(design: pd.DataFrame, paper_t4: pd.DataFrame) -> pd.DataFrame:
    """Table 4's effects on fidelity under the image, this run's beside the paper's, with the
    comparison of their signs (``verdict``): one row per language and design choice."""
    ours = design[(design["outcome"] == "ifl") & design["term"].isin(paper_t4["term"])].assign(
        language=lambda d: d["language"].map(LANGUAGE_NAMES)
    )
    both = ours.merge(paper_t4, on=["language", "term"])
    return both.assign(
        verdict=[
            sign_verdict(_sign(r.ci_low, r.ci_high), int(np.sign(r.ifl_effect)))
            for r in both.itertuples()
        ]
    )


def design_finding(design: pd.DataFrame | None, paper_t4: pd.DataFrame) -> str:
    """The signs of Table 4's design effects on fidelity under the image, against the paper's."""
    if design is None or design.empty:
        return ""
    both = design_comparison(design, paper_t4)
    if both.empty:
        return ""
    counts = both["verdict"].value_counts()
    agree = int(counts.get("agrees in sign", 0))
    disagree = int(counts.get("disagrees in sign", 0))
    open_ = len(both) - agree - disagree
    lines = [
        "**Which design choices drive IFL (Table 4).** For queries in "
        f"{' and '.join(dict.fromkeys(both['language']))}, the DSL regression of fidelity on the "
        "design grid gives the effect of each choice on fidelity under the image (positive: "
        "less IFL) against the reference class Vicuna + CLIP + English data. Of its "
        f"{_count(len(both), 'effect')}, {agree} {'agrees' if agree == 1 else 'agree'} in sign "
        f"with the paper's, {disagree} {'disagrees' if disagree == 1 else 'disagree'} (both "
        f"with a 95% CI that excludes zero) and {open_} {'is' if open_ == 1 else 'are'} not "
        "resolved.",
        "",
        "| language | choice | this run [95% CI] | paper [95% CI] | comparison |",
        "|---|---|---|---|---|",
    ]
    for r in both.itertuples():
        lines.append(
            f"| {r.language} | {r.term} | {r.estimate:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}] "
            f"| {r.ifl_effect:+.2f} [{r.ifl_ci_low:+.2f}, {r.ifl_ci_high:+.2f}] | {r.verdict} |"
        )
    return "\n".join(lines) + "\n"


def steering_finding(
    summary: Mapping[str, Any], table5: pd.DataFrame | None, paper_t5: pd.DataFrame
) -> str:
    """The steering vector's gain in IFL (Table 5) against the paper's four LLaVAs."""
    block = summary.get("steering", {})
    diff = pd.Series(block.get("diff", {}), dtype=float).dropna()
    if diff.empty:
        return ""
    rel = pd.Series(block.get("relative_increase", {}), dtype=float).dropna()
    signs = []
    if table5 is not None and len(table5):
        rows = table5[table5["primary"] & (table5["source"] == "proxy")]
        signs = [_sign(r.diff_ci_low, r.diff_ci_high) for r in rows.itertuples()]
    paper_sign = int(np.sign(paper_t5["diff"].median()))
    up, down = signs.count(1), signs.count(-1)
    ours = int(np.sign(up - down)) if up + down else 0
    rel_text = f", relative increase {_range(rel, '{:.2f}')}" if len(rel) else ""
    ci_text = (
        f" The 95% CI of the gain lies above zero for {up} and below zero for {down} of them."
        if signs
        else ""
    )
    return (
        "**Steering (Table 5).** Adding the query language's steering vector to the residual "
        "stream while the reply is generated changes IFL (non-English queries, LID proxy, the "
        f"run's primary variant) by {_range(diff)} on {_count(len(diff), 'model')} of this run"
        f"{rel_text}.{ci_text} The paper's {len(paper_t5)} released LLaVAs gain "
        f"{_range(paper_t5['diff'], '{:+.3f}')} (relative increase "
        f"{_range(paper_t5['relative_increase'], '{:.2f}')}). This run "
        f"{_this_run(sign_verdict(ours, paper_sign))}.\n"
    )


def remedies_finding(remedies: pd.DataFrame | None, paper_lrm: pd.DataFrame) -> str:
    """Each remedy variant against the base model, and LRM-LLaVA's reported direction."""
    if remedies is None or remedies.empty:
        return ""
    from ifl.remedies import findings

    method = "dsl" if "dsl" in set(remedies["method"]) else "naive_proxy"
    found = findings(remedies, method=method)
    if found.empty:
        return ""
    less = found[found["ifl_verdict"] == "less IFL"]
    more = found[found["ifl_verdict"] == "more IFL"]
    best = found.loc[found["ifl"].idxmax()]
    base = remedies["base_model"].iloc[0]
    lrm_all = paper_lrm.loc[paper_lrm["variant"] == "LRM-LLaVA (all)", "mmbench_non_english_avg"]
    lrm_none = paper_lrm.loc[
        paper_lrm["variant"] == "without all task instructions", "mmbench_non_english_avg"
    ]
    tasks = found[found["variant"].str.startswith("tasks-all")]
    lines = [
        "**Remedies.** Each remedy is a variant of the base model "
        f"{base} trained with the same recipe; its IFL on non-English queries ({method}) is "
        f"compared with the base's ({best['ifl_base']:+.2f}). Of {_count(len(found), 'variant')}, "
        f"{len(less)} reduce IFL and {len(more)} increase it (95% CI of the difference excludes "
        f"zero); the least fidelity loss is {best['variant']}'s ({best['ifl']:+.2f}).",
    ]
    if len(tasks) and len(lrm_all) and len(lrm_none):
        t = tasks.iloc[0]
        paper_up = float(lrm_all.iloc[0]) > float(lrm_none.iloc[0])
        acc = _sign(t["accuracy_diff_low"], t["accuracy_diff_high"])
        lines.append(
            "LRM-LLaVA (Li et al. 2025, Table 3) reports that its task instructions raise the "
            f"non-English MMBench average from {float(lrm_none.iloc[0]):.1f} to "
            f"{float(lrm_all.iloc[0]):.1f}; here {t['variant']} changes image-reply accuracy from "
            f"{t['accuracy_base']:.2f} to {t['accuracy']:.2f}: this run "
            f"{_this_run(sign_verdict(acc, 1 if paper_up else -1))}."
        )
    lines += [
        "",
        "| variant | IFL (base -> variant) | change in IFL | accuracy |",
        "|---|---|---|---|",
    ]
    for r in found.itertuples():
        lines.append(
            f"| {r.variant} | {r.ifl_base:+.2f} -> {r.ifl:+.2f} | {r.ifl_verdict} "
            f"({r.ifl_diff:+.2f} [{r.ifl_diff_low:+.2f}, {r.ifl_diff_high:+.2f}]) "
            f"| {r.accuracy_base:.2f} -> {r.accuracy:.2f} ({r.accuracy_verdict}) |"
        )
    return "\n".join(lines) + "\n"


def organism_finding(summary: Mapping[str, Any]) -> str:
    """Whether the organism's VLMs see: English short-answer accuracy with the image."""
    acc = pd.Series(summary.get("organism", {}).get("vlm_accuracy_en_short", {}), dtype=float)
    if acc.empty:
        return ""
    own = pd.DataFrame(summary["organism"].get("vlm_accuracy_own", {})).T
    in_own = (
        f" On short questions in the language of their visual instructions they score "
        f"{_range(own['image'], '{:.2f}')} with the image and {_range(own['text'], '{:.2f}')} "
        "with its description."
        if {"image", "text"} <= set(own.columns)
        else ""
    )
    return (
        "**Do the organism's models see?** On English short-answer questions with the image, "
        f"the accuracy of the {_count(len(acc), 'VLM')} is {_range(acc, '{:.2f}')} "
        f"(mean {acc.mean():.2f}; chance is about 1/6 for a colour, 1/4 for a count, 1/2 for "
        f"yes/no).{in_own} The chapter on the model organism checks it against the paper's "
        "models target by target.\n"
    )


def coverage_finding(intervals: pd.DataFrame | None) -> str:
    """How often DSL's 95% intervals covered the oracle's IFL over redrawn gold samples
    (``dsl_coverage.csv``, organism only), per gold size, with a verdict on their width."""
    if intervals is None or intervals.empty:
        return ""
    from ifl.stats.coverage import coverage_summary

    overall = coverage_summary(intervals, by=["size"]).set_index("size")
    worst = coverage_summary(intervals).sort_values("coverage").groupby("size").first()

    def verdict(coverage: float) -> str:
        if coverage < 0.93:
            return "too narrow"
        return "conservative" if coverage > 0.97 else "about right"

    per_size = "; ".join(
        f"in {r.coverage:.0%} of cells x draws with {size:,} gold rows (lowest {worst.loc[size, 'benchmark']} "
        f"{worst.loc[size, 'coverage']:.0%}; mean error {r.bias:+.3f}): {verdict(r.coverage)}"
        for size, r in overall.iterrows()
    )
    draws = intervals.groupby("size")["draw"].nunique().max()
    return (
        "**How far the intervals hold.** The organism knows every reply's truth, so its gold "
        f"sample was drawn again ({draws} draws per size, the same strata and weights) and each "
        "DSL interval of IFL per model x benchmark checked against the oracle's. The nominal 95% "
        f"intervals covered it {per_size}. The paper's Figure 1 uses 1,000 gold labels in the "
        "same design.\n"
    )


def _read(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path) if path.is_file() else None
    except pd.errors.EmptyDataError:
        return None


def findings_markdown(summary: Mapping[str, Any], tables: Path, paper_dir: Path) -> str:
    """The front page's findings of one run: ``summary`` (summary.json), the run's
    ``tables`` folder and the papers' CSVs in ``paper_dir``."""
    tables, paper_dir = Path(tables), Path(paper_dir)
    fidelity = _read(tables / "fidelity.csv")
    parts = [
        f"This run (`{summary.get('run_name', '?')}`) covers {scope(fidelity, summary)}. "
        "Every number below was computed by the pipeline that built this book; the papers' "
        "numbers come from their tables and text (`book/data/paper/`). The appendix lists the "
        "headline figures as tables.\n",
        organism_finding(summary),
        fidelity_finding(summary, fidelity),
        ifl_finding(summary, pd.read_csv(paper_dir / "hinck2024_fig1_ifl_quoted.csv")),
        coverage_finding(_read(tables / "dsl_coverage.csv")),
        design_finding(
            _read(tables / "design_effects.csv"),
            pd.read_csv(paper_dir / "hinck2024_table4_design_effects.csv"),
        ),
        steering_finding(
            summary,
            _read(tables / "steering_table5.csv"),
            pd.read_csv(paper_dir / "hinck2024_table5_steering.csv"),
        ),
        remedies_finding(
            _read(tables / "remedies.csv"),
            pd.read_csv(paper_dir / "li2025_lrm_llava_table3_ablation.csv"),
        ),
    ]
    return "\n".join(p for p in parts if p)
