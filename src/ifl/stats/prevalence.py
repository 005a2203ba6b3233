"""IFL estimates from the labelled table: DSL-debiased, naive (proxy only), and oracle.

IFL of a cell (e.g. a model x benchmark) is the coefficient of ``image`` in a linear
probability model of fidelity within that cell: fidelity(image) - fidelity(text), negative when
the image lowers fidelity (the paper's sign convention). All cells are fitted in one regression
with cell-specific intercepts and image effects, so that DSL's outcome model is cross-fitted on
the whole gold sample.

Only tasks asked in both conditions enter (:func:`paired_rows`): a text-only task (MultiQ under
``datasets.MultiQ.image: null``, the paper preset's default) has no image reply to compare with,
so it would only shift the text baseline of its cells. Its fidelity stays in ``fidelity.csv``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import pandas as pd

from ifl.stats.dsl import DSLResult, dsl, naive_proxy

# The three design choices of Table 4 and their reference classes.
DESIGN_TERMS = {"LLM": "llm", "VE": "vision", "Data": "data"}
REFERENCE = {"llm": "vicuna", "vision": "clip", "data": "en"}
CONDITIONS = ("image", "text")
log = logging.getLogger(__name__)


def paired_rows(labelled: pd.DataFrame) -> pd.DataFrame:
    """The rows of tasks that a model answered in both conditions.

    A task is keyed by ``model`` and ``task_id`` (and ``intervention`` when present). Text-only
    tasks are dropped with a log line; on the organism every task is paired and nothing is.

    Raises:
        ValueError: if a key column is missing, or no task was asked in both conditions.
    """
    keys = ["model", "task_id"] + (["intervention"] if "intervention" in labelled.columns else [])
    missing = [c for c in (*keys, "condition") if c not in labelled.columns]
    if missing:
        raise ValueError(f"labelled table lacks column {missing[0]!r}")
    both = labelled[labelled["condition"].isin(CONDITIONS)].groupby(keys)["condition"].nunique()
    paired = both[both == len(CONDITIONS)].index
    keep = pd.MultiIndex.from_frame(labelled[keys]).isin(paired)
    if not keep.any():
        raise ValueError("no task was asked in both the image and the text condition")
    if not keep.all():
        dropped = labelled[~keep]
        per_benchmark = (
            dropped["benchmark"].value_counts().to_dict() if "benchmark" in dropped else {}
        )
        log.info("IFL leaves out %d replies of text-only tasks %s", len(dropped), per_benchmark)
    return labelled[keep].reset_index(drop=True)


def _cell_design(data: pd.DataFrame, by: Sequence[str]) -> tuple[pd.DataFrame, list[tuple], str]:
    """Add cell indicators ``c{k}`` and image-by-cell columns ``i{k}``; return the formula RHS."""
    missing = [c for c in (*by, "condition") if c not in data.columns]
    if missing:
        raise ValueError(f"labelled table lacks column {missing[0]!r}")
    cells = data[list(by)].drop_duplicates().sort_values(list(by))
    keys = list(cells.itertuples(index=False, name=None))
    code = data.groupby(list(by), sort=True).ngroup().to_numpy()
    image = (data["condition"] == "image").to_numpy(dtype=float)
    cols = {}
    for k in range(len(keys)):
        member = (code == k).astype(float)
        cols[f"c{k}"] = member
        cols[f"i{k}"] = member * image
    design = pd.concat([data.reset_index(drop=True), pd.DataFrame(cols)], axis=1)
    rhs = " + ".join(
        ["0", *[f"c{k}" for k in range(len(keys))], *[f"i{k}" for k in range(len(keys))]]
    )
    return design, keys, rhs


def _cells(
    result: DSLResult, keys: list[tuple], by: Sequence[str], prefix: str = "i"
) -> pd.DataFrame:
    table = result.table.set_index("term")
    rows = []
    for k, key in enumerate(keys):
        r = table.loc[f"{prefix}{k}"]
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "estimate": r["estimate"],
                "se": r["se"],
                "ci_low": r["ci_low"],
                "ci_high": r["ci_high"],
                "p_value": r["p_value"],
                "method": result.method,
            }
        )
    return pd.DataFrame(rows)


def _estimate_cells(
    design: pd.DataFrame,
    formula: str,
    keys: list[tuple],
    by: Sequence[str],
    prefix: str,
    *,
    surrogate: str,
    oracle: str | None,
    debias: bool = True,
    **dsl_kwargs,
) -> pd.DataFrame:
    """DSL (when ``debias``: there is a gold sample), naive-proxy and (optionally) oracle
    estimates of the ``prefix`` terms of ``formula``."""
    results = [dsl(design, formula, surrogate=surrogate, **dsl_kwargs)] if debias else []
    results.append(naive_proxy(design, formula, surrogate=surrogate))
    if oracle is not None:
        results.append(naive_proxy(design, formula, surrogate=oracle))
        results[-1].method = "oracle"
    return pd.concat([_cells(r, keys, by, prefix) for r in results], ignore_index=True)


def ifl_by_cell(
    labelled: pd.DataFrame,
    *,
    by: Sequence[str] = ("model", "benchmark"),
    outcome: str = "fidelity_gold",
    surrogate: str = "fidelity_proxy",
    oracle: str | None = None,
    pi: str = "pi",
    folds: int = 5,
    splits: int = 1,
    learner: str = "logistic",
    seed: int = 0,
    debias: bool = True,
) -> pd.DataFrame:
    """IFL per cell of ``by``: DSL, the naive proxy estimate and, when given, the oracle truth.

    ``oracle`` names a column with the true outcome for every row (the organism knows it); its
    row is least squares on all rows, the estimate DSL should recover. Text-only tasks are left
    out (:func:`paired_rows`). ``debias=False`` (no gold sample) gives the naive proxy's only.
    """
    design, keys, rhs = _cell_design(paired_rows(labelled), by)
    return _estimate_cells(
        design,
        f"{outcome} ~ {rhs}",
        keys,
        by,
        "i",
        surrogate=surrogate,
        oracle=oracle,
        debias=debias,
        pi=pi,
        n_folds=folds,
        n_splits=splits,
        learner=learner,
        seed=seed,
    )


def mean_by_cell(
    labelled: pd.DataFrame,
    *,
    by: Sequence[str] = ("model", "condition"),
    outcome: str = "fidelity_gold",
    surrogate: str = "fidelity_proxy",
    oracle: str | None = None,
    pi: str = "pi",
    folds: int = 5,
    splits: int = 1,
    learner: str = "logistic",
    seed: int = 0,
    debias: bool = True,
) -> pd.DataFrame:
    """Mean outcome per cell of ``by`` (e.g. Figure 3's fidelity per model and condition), over
    the tasks asked in both conditions (:func:`paired_rows`), so that the image and text means
    of a model differ by its IFL. ``debias=False`` (no gold sample): the naive proxy's only."""
    design, keys, _ = _cell_design(paired_rows(labelled), by)
    rhs = " + ".join(["0", *[f"c{k}" for k in range(len(keys))]])
    return _estimate_cells(
        design,
        f"{outcome} ~ {rhs}",
        keys,
        by,
        "c",
        surrogate=surrogate,
        oracle=oracle,
        debias=debias,
        pi=pi,
        n_folds=folds,
        n_splits=splits,
        learner=learner,
        seed=seed,
    )


def design_indicators(
    labelled: pd.DataFrame, grid: Mapping[str, Mapping[str, str]]
) -> pd.DataFrame:
    """Add the model's design (llm, vision, data) and the image-by-design indicator columns."""
    unknown = sorted(set(labelled["model"]) - set(grid))
    if unknown:
        raise ValueError(f"model {unknown[0]!r} is not in the design grid")
    out = labelled.copy()
    image = (out["condition"] == "image").astype(float)
    for axis, ref in REFERENCE.items():
        out[axis] = out["model"].map(lambda m, a=axis: grid[m][a])
        out[f"alt_{axis}"] = (out[axis] != ref).astype(float)
        out[f"image_alt_{axis}"] = image * out[f"alt_{axis}"]
    out["image"] = image
    return out


def design_effects(
    labelled: pd.DataFrame,
    grid: Mapping[str, Mapping[str, str]],
    target: str,
    *,
    outcome: str = "fidelity_gold",
    surrogate: str = "fidelity_proxy",
    pi: str = "pi",
    folds: int = 5,
    splits: int = 1,
    learner: str = "logistic",
    seed: int = 0,
) -> pd.DataFrame:
    """Table 4: ``outcome ~ image + image:LLM + image:VE + image:Data`` for queries in ``target``.

    Uses the models whose training-data language is English or ``target`` (the paper's design
    for Chinese and German). A design axis that does not vary among those models is dropped.
    """
    d = design_indicators(labelled[labelled["language"] == target], grid)
    d = d[d["data"].isin(["en", target])]
    if d.empty:
        raise ValueError(f"no rows for target language {target!r}")
    d = paired_rows(d)
    terms = [name for name, axis in DESIGN_TERMS.items() if d[f"alt_{axis}"].nunique() > 1]
    rhs = " + ".join(["image", *[f"image_alt_{DESIGN_TERMS[t]}" for t in terms]])
    res = dsl(
        d,
        f"{outcome} ~ {rhs}",
        surrogate=surrogate,
        pi=pi,
        n_folds=folds,
        n_splits=splits,
        learner=learner,
        seed=seed,
    )
    names = {f"image_alt_{DESIGN_TERMS[t]}": t for t in terms} | {
        "image": "Image",
        "(Intercept)": "Intercept",
    }
    table = res.table.assign(term=res.table["term"].map(names), language=target)
    return table[["language", "term", "estimate", "se", "ci_low", "ci_high", "p_value"]]


DESIGN_COLUMNS = ["language", "term", "estimate", "se", "ci_low", "ci_high", "p_value", "outcome"]


def prevalence_tables(
    labelled: pd.DataFrame,
    grid: Mapping[str, Mapping[str, str]],
    *,
    folds: int,
    splits: int,
    learner: str,
    seed: int,
    debias: bool = True,
) -> dict[str, pd.DataFrame]:
    """The DSL tables of a run by file name: IFL per model x benchmark and per language, fidelity
    per model x condition (each with the oracle's truth where the organism has it), and Table 4
    for the query languages zh and de, over the design ``grid``'s models only (the paper
    preset's released VLMs are not in it). ``debias=False`` (no gold sample, gold.enabled
    false): the naive proxy's estimates only, and no Table 4 rows (it is DSL on the gold sample).
    """
    kw = {"folds": folds, "splits": splits, "learner": learner, "seed": seed}
    oracle = "fidelity_oracle" if "fidelity_oracle" in labelled.columns else None
    est = {"oracle": oracle, "debias": debias, **kw}
    tables = {
        "ifl.csv": ifl_by_cell(labelled, by=("model", "benchmark"), **est),
        "ifl_by_language.csv": ifl_by_cell(labelled, by=("language",), **est),
        "fidelity_by_condition.csv": mean_by_cell(labelled, by=("model", "condition"), **est),
    }
    in_grid = labelled[labelled["model"].isin(grid)] if debias else labelled.iloc[:0]
    rows = []
    for target in ("zh", "de"):
        if target not in set(in_grid["language"]):
            continue
        fid = design_effects(in_grid, grid, target, **kw).assign(outcome="ifl")
        acc = design_effects(
            in_grid, grid, target, outcome="accuracy_gold", surrogate="accuracy_proxy", **kw
        )
        rows += [fid, acc.assign(outcome="accuracy")]
    tables["design_effects.csv"] = (
        pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=DESIGN_COLUMNS)
    )
    return tables
