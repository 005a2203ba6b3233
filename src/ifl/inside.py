"""Inside the model (the paper's section 5): the steering remedy evaluated, and the
representation analyses of Figure 2 (image and text tokens in 2-D; layer-by-layer CKA).

Steering. For every query language a vector ``a_lang = LLM_l(x_lang) - LLM_l(x_en)`` is taken
from the model (``x_en`` = "Describe this image in detail.", ``x_lang`` its translation in the
organism's lexicon; :mod:`ifl.steer`). Each generated row is steered with the vector of its
language, chosen either from the query language (``oracle`` selection, as the paper) or from the
language a LID model detects in the question (``auto``); English rows get no vector. Replies are
measured as the main run's (LID proxy, reference judge, and on the organism the oracle truth),
and compared with the main run's unsteered replies of the same tasks:

- IFL           = fidelity(image)          - fidelity(text)
- IFL + remedy  = fidelity(image, steered) - fidelity(text)
- diff          = IFL + remedy - IFL,  relative increase = diff / |IFL|   (the paper's Table 5)

A model's figure is the unweighted mean over its (benchmark, language) cells, as the paper's
Table 5 is the mean of the cells of its Tables 6-9; its 95% CI is that of a stratified mean of
per-task paired differences (:func:`stratified_mean`).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from ifl import LANGUAGES
from ifl.config import vlm_name
from ifl.lid import ISO_TO_NAME
from ifl.models.prompts import render as organism_prompt

if TYPE_CHECKING:  # torch is imported where models run, so that the tables stay light
    import torch

    from ifl.generate import Prompter

log = logging.getLogger(__name__)
# As ifl.steer.REDUCTIONS / POSITIONS (a test keeps them equal), without importing torch.
REDUCTIONS = ("last", "mean")
POSITIONS = ("generated", "all")

EN_INSTRUCTION = "Describe this image in detail."
SELECTIONS = ("oracle", "auto")
VARIANTS = tuple(f"{r}-{p}" for r in REDUCTIONS for p in POSITIONS)
#: outcome columns of each measurement source: (fidelity, accuracy)
SOURCES: dict[str, tuple[str, str]] = {
    "proxy": ("fidelity_proxy", "accuracy_proxy"),
    "oracle": ("fidelity_oracle", "accuracy_oracle"),
}
CONFIG = ["study", "variant", "selection", "layer", "strength"]
_NAME_TO_ISO = {name: iso for iso, name in ISO_TO_NAME.items()}
# Items per language whose tokens enter the 2-D projection (all of them on the organism).
PROJECTION_TASKS_PER_LANGUAGE = 24
_CELL = ["benchmark", "language"]


# ---- configuration ------------------------------------------------------------------------


def variant_name(reduce: str, positions: str) -> str:
    """``"last-generated"`` etc.: the name of a (reduce, positions) steering variant."""
    if reduce not in REDUCTIONS or positions not in POSITIONS:
        raise ValueError(f"no steering variant for reduce={reduce!r}, positions={positions!r}")
    return f"{reduce}-{positions}"


def parse_variant(name: str) -> tuple[str, str]:
    """``(reduce, positions)`` of a variant name such as ``"mean-all"``."""
    if name not in VARIANTS:
        raise ValueError(f"unknown steering variant {name!r}; expected one of {VARIANTS}")
    reduce, positions = name.split("-")
    return reduce, positions


def primary_variant(steering: Mapping[str, Any]) -> str:
    """The variant of the config's ``steering.reduce`` and ``steering.positions``."""
    return variant_name(steering["reduce"], steering["positions"])


def variants(steering: Mapping[str, Any]) -> list[str]:
    """Variants to run, the primary one first (it always runs)."""
    primary = primary_variant(steering)
    return [primary] + [v for v in steering.get("variants", VARIANTS) if v != primary]


def _grid_names(cfg: Mapping[str, Any]) -> list[str]:
    """The models the analyses may name: the design grid's, or the audited ones."""
    if cfg.get("preset") == "audit":
        from ifl.audit import audit_models

        return [m.name for m in audit_models(cfg)]
    return [vlm_name(e) for e in cfg["grid"]]


def _check_models(names: Sequence[str], grid: Sequence[str], key: str) -> list[str]:
    for name in names:
        if name not in grid:
            raise ValueError(
                f"steering.{key}: {name!r} is not a model of this run; allowed: {', '.join(grid)}"
            )
    return list(names)


def steer_models(cfg: Mapping[str, Any]) -> list[str]:
    """Grid VLMs that are steered: ``steering.models``, or those trained on English data (the
    paper steers four English-trained LLaVAs), or the first grid model if none is. In the audit
    preset: ``steering.models``, or every audited model."""
    grid = _grid_names(cfg)
    chosen = cfg["steering"].get("models")
    if chosen:
        return _check_models(chosen, grid, "models")
    if cfg.get("preset") == "audit":
        return grid
    english = [vlm_name(e) for e in cfg["grid"] if e["data"] == "en"]
    return english or grid[:1]


def sweep_model(cfg: Mapping[str, Any]) -> str | None:
    """The model of the layer x strength sweep (None when the sweep is off)."""
    sweep = cfg["steering"].get("sweep", {})
    if not sweep.get("enabled", True):
        return None
    name = sweep.get("model")
    return (
        _check_models([name], _grid_names(cfg), "sweep.model")[0] if name else steer_models(cfg)[0]
    )


def cka_pair(cfg: Mapping[str, Any]) -> tuple[str, str]:
    """The two models compared by CKA: ``steering.cka_models``, else the paper's pair (Yi trained
    in Chinese vs Leo trained in German, CLIP) when in the grid, else the first two grid models."""
    grid = _grid_names(cfg)
    chosen = cfg["steering"].get("cka_models")
    if chosen:
        a, b = _check_models(chosen, grid, "cka_models")
        return a, b
    if {"yi-clip-zh", "leo-clip-de"} <= set(grid):
        return "yi-clip-zh", "leo-clip-de"
    return (grid[0], grid[1]) if len(grid) > 1 else (grid[0], grid[0])


def projection_model(cfg: Mapping[str, Any]) -> str:
    """The model whose tokens are projected in 2-D (default: the first steered model)."""
    name = cfg["steering"].get("projection_model")
    return (
        _check_models([name], _grid_names(cfg), "projection_model")[0]
        if name
        else steer_models(cfg)[0]
    )


def resolve_layer(layer: int | None, n_layers: int) -> int:
    """The steering layer: ``layer``, or ``round(n_layers / 3)`` when None (paper: 10 of 30)."""
    from ifl.models.layers import default_steer_layer

    if layer is None:
        return default_steer_layer(n_layers)
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n_layers:
        raise ValueError(f"steering layer {layer!r} is outside 0..{n_layers - 1} for this model")
    return layer


def sweep_layers(layers: Sequence[int] | None, n_layers: int) -> list[int]:
    """Layers of the sweep: ``layers``, or the quarter depths ``round(k n / 4)``, k = 1..3."""
    if layers is None:
        return sorted({min(round(k * n_layers / 4), n_layers - 1) for k in (1, 2, 3)})
    return sorted({resolve_layer(int(x), n_layers) for x in layers})


@dataclass(frozen=True)
class SteerRun:
    """One steered generation of a model: a variant, a selection, a layer and a strength."""

    study: str  # "remedy" (Table 5) or "sweep"
    variant: str
    selection: str
    layer: int
    strength: float
    conditions: tuple[str, ...] = ("image",)

    @property
    def name(self) -> str:
        """File-name-safe label of the run."""
        conds = "+".join(self.conditions)
        return (
            f"{self.study}-{self.variant}-{self.selection}-L{self.layer}-s{self.strength:g}-{conds}"
        )

    @property
    def intervention(self) -> str:
        """The ``intervention`` column of its replies (unique per run, so row ids stay unique)."""
        return (
            f"steer:{self.study}:{self.variant}:{self.selection}:L{self.layer}:s{self.strength:g}"
        )


def remedy_runs(steering: Mapping[str, Any], n_layers: int) -> list[SteerRun]:
    """The Table 5 runs of a model: every variant with oracle selection (the primary one also
    on the text condition when ``text_check``), then the primary one with auto selection."""
    layer = resolve_layer(steering.get("layer"), n_layers)
    strength = float(steering["strength"])
    names = variants(steering)
    runs = []
    for i, v in enumerate(names):
        conds = ("image", "text") if i == 0 and steering.get("text_check", True) else ("image",)
        runs.append(SteerRun("remedy", v, "oracle", layer, strength, conds))
    if steering.get("auto_selection", True):
        runs.append(SteerRun("remedy", names[0], "auto", layer, strength))
    return runs


def sweep_runs(steering: Mapping[str, Any], n_layers: int) -> list[SteerRun]:
    """The layer x strength grid of the sweep (primary variant, oracle selection, image only)."""
    sweep = steering.get("sweep", {})
    primary = primary_variant(steering)
    return [
        SteerRun("sweep", primary, "oracle", layer, float(s))
        for layer in sweep_layers(sweep.get("layers"), n_layers)
        for s in sweep.get("strengths", [0.5, 1.0, 2.0, 4.0])
    ]


# ---- language vectors and per-row selection --------------------------------------------------


@functools.cache
def instruction(lang: str) -> str:
    """The paper's instruction "Describe this image in detail." in ``lang`` (the lexicon's)."""
    from ifl.world.items import realise, sample_item

    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; expected one of {LANGUAGES}")
    item = sample_item(np.random.default_rng(0), "describe", "detail")
    return realise(item, lang)[0]


def language_vectors(
    model: torch.nn.Module,
    tokenizer: Any,
    languages: Sequence[str],
    layer: int,
    reduce: str = "last",
) -> dict[str, torch.Tensor]:
    """``a_lang`` for every non-English language of ``languages`` (one batched forward)."""
    from ifl.steer import layer_states

    langs = [lang for lang in dict.fromkeys(languages) if lang != "en"]
    if not langs:
        return {}
    states = layer_states(
        model, tokenizer, [instruction("en")] + [instruction(x) for x in langs], layer, reduce
    )
    return {lang: states[i + 1] - states[0] for i, lang in enumerate(langs)}


def detected_iso(names: Sequence[str]) -> list[str | None]:
    """ISO code of each LID language name (None for ``other``, ``other_latin``, ``none``)."""
    return [_NAME_TO_ISO.get(n) for n in names]


def question_languages(tasks: pd.DataFrame, identifier: Any) -> pd.DataFrame:
    """The LID model's reading of every question: ``task_id, language, lid_label, lid_prob,
    language_pred, detected`` (``detected``: ISO code, or None when not one of the 14)."""
    labels, probs = identifier.predict(tasks["question"].astype(str).tolist())
    names = identifier.names(labels)
    return pd.DataFrame(
        {
            "task_id": tasks["task_id"].to_numpy(),
            "benchmark": tasks["benchmark"].to_numpy(),
            "language": tasks["language"].to_numpy(),
            "lid_label": labels,
            "lid_prob": probs,
            "language_pred": names,
            "detected": detected_iso(names),
        }
    )


def select_languages(
    languages: Sequence[str], detected: Sequence[str | None] | None = None, mode: str = "oracle"
) -> list[str | None]:
    """The language whose vector steers each row, or None (unsteered).

    ``oracle``: the query language; ``auto``: the language detected in the question. English
    (and, for ``auto``, an undetected language) means no vector.
    """
    if mode == "oracle":
        chosen: Sequence[str | None] = list(languages)
    elif mode == "auto":
        if detected is None or len(detected) != len(languages):
            raise ValueError("auto selection needs one detected language per row")
        chosen = [
            None if d is None or (isinstance(d, float) and math.isnan(d)) else str(d)
            for d in detected
        ]
    else:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {mode!r}")
    return [None if c in (None, "en") else c for c in chosen]


def steering_context(
    model: torch.nn.Module,
    vectors: Mapping[str, torch.Tensor],
    layer: int,
    strength: float,
    positions: str,
    column: str = "steer_language",
) -> Callable[[pd.DataFrame], AbstractContextManager]:
    """For :func:`ifl.generate.run`: a context per batch that steers each row with the vector of
    its ``column`` language (a zero vector, i.e. nothing, where it is None)."""
    import torch

    from ifl.steer import steering

    def context(batch: pd.DataFrame) -> AbstractContextManager:
        langs = [None if pd.isna(x) else str(x) for x in batch[column]]
        if all(x is None for x in langs):
            return nullcontext()
        missing = sorted({x for x in langs if x is not None and x not in vectors})
        if missing:
            raise ValueError(f"no steering vector for language {missing[0]!r}")
        zero = torch.zeros_like(next(iter(vectors.values())))
        rows = torch.stack([vectors[x] if x is not None else zero for x in langs])
        return steering(model, rows, layer, strength, positions)

    return context


def steer_queries(
    tasks: pd.DataFrame,
    questions: pd.DataFrame | None,
    selection: str,
    conditions: Sequence[str],
    prompter: Prompter | None = None,
) -> pd.DataFrame:
    """Queries of ``tasks`` in ``conditions`` with the ``steer_language`` of every row, in the
    format of ``prompter`` (None: the organism's LLaVA-1.5 format)."""
    from ifl.generate import queries

    q = queries(tasks, tuple(conditions), prompter)
    detected = None
    if selection == "auto":
        if questions is None:
            raise ValueError("auto selection needs the question LID table")
        detected = q["task_id"].map(questions.set_index("task_id")["detected"]).tolist()
    return q.assign(steer_language=select_languages(q["language"].tolist(), detected, selection))


def steerable_tasks(tasks: pd.DataFrame, benchmarks: Sequence[str]) -> pd.DataFrame:
    """Non-English tasks of ``benchmarks`` (English queries have nothing to steer towards)."""
    out = tasks[tasks["benchmark"].isin(list(benchmarks)) & (tasks["language"] != "en")]
    if out.empty:
        raise ValueError(f"no non-English tasks in benchmarks {list(benchmarks)}")
    return out.reset_index(drop=True)


def _run_key(vectors: Mapping[str, Any], q: pd.DataFrame, settings: str) -> str:
    """A short hash of a run's vectors (so of the model), its queries and generation settings."""
    h = hashlib.sha1(settings.encode())
    for lang in sorted(vectors):
        h.update(lang.encode() + vectors[lang].numpy().tobytes())
    cols = ["task_id", "condition", "prompt", "steer_language"]
    h.update(pd.util.hash_pandas_object(q[cols].astype(str), index=False).to_numpy().tobytes())
    return h.hexdigest()[:12]


def run_steering(
    model: torch.nn.Module,
    processor: Any,
    tasks: pd.DataFrame,
    questions: pd.DataFrame | None,
    runs: Sequence[SteerRun],
    out_path: str | Path,
    *,
    batch_size: int,
    max_new_tokens: Mapping[str, int] | int,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int = 0,
    model_name: str = "",
    prompter: Prompter | None = None,
) -> pd.DataFrame:
    """Generate every run's steered replies and write them, concatenated, to ``out_path``.

    ``prompter`` renders the queries in the checkpoint's own format (None: the organism's).

    Each run is checkpointed under ``<out>.runs/`` (and within it by :func:`ifl.generate.run`),
    so an interrupted job resumes. An ``auto`` run only generates the rows whose detected
    language differs from the query language; the others are, by construction, the same
    steered query as in the oracle run (one vector per row), whose replies are reused.
    """
    from ifl import generate
    from ifl.io import write_parquet

    out_path = Path(out_path)
    work = out_path.with_name(out_path.name + ".runs")
    work.mkdir(parents=True, exist_ok=True)
    tok = getattr(processor, "tokenizer", processor)
    langs = [x for x in LANGUAGES if x != "en"]
    settings = repr((batch_size, max_new_tokens, do_sample, temperature, seed, model_name))
    cache: dict[tuple[int, str], dict[str, torch.Tensor]] = {}
    done: dict[SteerRun, pd.DataFrame] = {}
    for run in runs:
        reduce, positions = parse_variant(run.variant)
        if (run.layer, reduce) not in cache:
            cache[(run.layer, reduce)] = language_vectors(model, tok, langs, run.layer, reduce)
        q = steer_queries(tasks, questions, run.selection, run.conditions, prompter)
        reused = q.iloc[:0]
        twin = next(
            (
                t
                for r, t in done.items()
                if r.selection == "oracle"
                and replace(r, selection=run.selection, conditions=run.conditions) == run
            ),
            None,
        )
        if run.selection == "auto" and twin is not None:
            oracle = pd.Series(select_languages(q["language"].tolist()), index=q.index)
            same = (q["steer_language"].fillna("") == oracle.fillna("")).to_numpy()
            keys = q.loc[same, ["task_id", "condition"]]
            reused = twin.merge(keys, on=["task_id", "condition"]).assign(
                intervention=run.intervention
            )
            q = q[~same]
        # the checkpoint's name carries what its replies depend on, so a stale one is never reused
        path = work / f"{run.name}-{_run_key(cache[(run.layer, reduce)], q, settings)}.parquet"
        if path.exists():
            table = pd.read_parquet(path)
        elif len(q):
            context = steering_context(
                model, cache[(run.layer, reduce)], run.layer, run.strength, positions
            )
            table = generate.run(
                model,
                processor,
                q,
                path,
                batch_size=batch_size,
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                temperature=temperature,
                seed=seed,
                model_name=model_name,
                intervention=run.intervention,
                context=context,
            )
        else:
            table = None
        parts = [t for t in (table, reused) if t is not None and len(t)]
        table = pd.concat(parts, ignore_index=True) if parts else reused
        table = table.assign(
            study=run.study,
            variant=run.variant,
            selection=run.selection,
            layer=run.layer,
            strength=run.strength,
        )
        done[run] = table
        log.info(
            "%s: %d steered replies (%d reused from the oracle run)",
            run.name,
            len(table),
            len(reused),
        )
    result = pd.concat(list(done.values()), ignore_index=True)
    write_parquet(result, out_path)
    shutil.rmtree(work, ignore_errors=True)
    return result


# ---- measurement --------------------------------------------------------------------------


def measure_steering(
    generations: pd.DataFrame,
    baseline: pd.DataFrame,
    tasks: pd.DataFrame,
    identifier: Any,
    *,
    oracle: bool,
) -> pd.DataFrame:
    """Steered replies measured like the main run's, stacked on the main run's unsteered replies
    of the same models and benchmarks (``study == "none"``).

    Adds ``accuracy_proxy`` (:class:`ifl.judge.ReferenceJudge`) to every row and, when
    ``oracle``, the organism's ``fidelity_oracle`` / ``accuracy_oracle``.
    """
    from ifl import lid
    from ifl.judge import ReferenceJudge
    from ifl.labels import oracle_truth

    steered = lid.measure(generations, identifier)
    base = baseline[
        baseline["model"].isin(set(steered["model"]))
        & baseline["benchmark"].isin(set(steered["benchmark"]))
    ]
    if base.empty:
        raise ValueError(
            "the main run's measured table has no unsteered replies of the steered models"
        )
    base = base.assign(
        study="none", variant="none", selection="none", layer=-1, strength=0.0, steer_language=None
    )
    cols = list(dict.fromkeys([*base.columns, *steered.columns]))
    df = pd.concat([base.reindex(columns=cols), steered.reindex(columns=cols)], ignore_index=True)
    t = tasks.set_index("task_id")
    missing = sorted(set(df["task_id"]) - set(t.index))
    if missing:
        raise ValueError(f"task {missing[0]!r} of the replies is not in the tasks table")
    verdicts = ReferenceJudge()(
        t.loc[df["task_id"], "question"].tolist(),
        t.loc[df["task_id"], "reference"].tolist(),
        df["reply"].fillna("").astype(str).tolist(),
    )
    df["accuracy_proxy"] = np.asarray(verdicts, dtype=float)
    if oracle:
        df = oracle_truth(df, tasks)
    df["layer"] = df["layer"].astype(int)
    df["strength"] = df["strength"].astype(float)
    return df


# ---- estimates ----------------------------------------------------------------------------


def stratified_mean(
    values: Sequence[float], strata: Sequence[Any], level: float = 0.95
) -> dict[str, float]:
    """The unweighted mean of the stratum means, with a normal CI.

    ``Var = sum_k s_k^2 / n_k / K^2`` (K strata, ``s_k`` the within-stratum SD); a stratum of a
    single value borrows the pooled within-stratum variance. Returns ``estimate, se, ci_low,
    ci_high, n`` (n = number of values); NaN values are dropped.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    df = pd.DataFrame({"v": np.asarray(values, dtype=float), "k": list(strata)}).dropna(
        subset=["v"]
    )
    if df.empty:
        return {"estimate": np.nan, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n": 0}
    g = df.groupby("k", sort=True)["v"].agg(["mean", "var", "count"])
    dof = (g["count"] - 1).sum()
    pooled = float(((g["count"] - 1) * g["var"].fillna(0)).sum() / dof) if dof > 0 else np.nan
    var = g["var"].where(g["count"] > 1, pooled)
    k = len(g)
    se = float(np.sqrt((var / g["count"]).sum()) / k)
    est = float(g["mean"].mean())
    z = stats.norm.ppf(0.5 + level / 2)
    return {
        "estimate": est,
        "se": se,
        "ci_low": est - z * se,
        "ci_high": est + z * se,
        "n": int(len(df)),
    }


def paired_tasks(
    measured: pd.DataFrame, value: str, *, condition: str = "image", study: str | None = None
) -> pd.DataFrame:
    """Per steered task: the unsteered ``image`` and ``text`` values and the ``steered`` value
    of ``condition``, one row per (model, task, steering configuration), non-English tasks only."""
    missing = [
        c for c in ("model", "task_id", "condition", value, *CONFIG) if c not in measured.columns
    ]
    if missing:
        raise ValueError(f"measured steering table lacks column {missing[0]!r}")
    base = measured[measured["study"] == "none"]
    wide = base.pivot_table(
        index=["model", "task_id", "benchmark", "language"],
        columns="condition",
        values=value,
        aggfunc="mean",
    )
    wide = wide.reindex(columns=["image", "text"]).reset_index()
    wide.columns.name = None
    sel = (measured["study"] != "none") & (measured["condition"] == condition)
    if study is not None:
        sel &= measured["study"] == study
    steered = measured.loc[sel, ["model", "task_id", *CONFIG, value]].rename(
        columns={value: "steered"}
    )
    out = steered.merge(wide, on=["model", "task_id"], how="inner", validate="many_to_one")
    return out[out["language"] != "en"].reset_index(drop=True)


def _estimate(
    df: pd.DataFrame, values: pd.Series, name: str, level: float, ci: bool = True
) -> dict[str, float]:
    r = stratified_mean(
        values, (df["benchmark"].astype(str) + "|" + df["language"].astype(str)).tolist(), level
    )
    out = {name: r["estimate"]}
    if ci:
        out |= {f"{name}_ci_low": r["ci_low"], f"{name}_ci_high": r["ci_high"]}
    return out


def _sources(measured: pd.DataFrame) -> list[str]:
    return [s for s, cols in SOURCES.items() if all(c in measured.columns for c in cols)]


def _relative(diff: float, ifl: float) -> float:
    return diff / abs(ifl) if ifl != 0 and np.isfinite(ifl) else np.nan


def remedy_table(measured: pd.DataFrame, *, primary: str, level: float = 0.95) -> pd.DataFrame:
    """Table 5 on this run: per model, steering configuration and source (``proxy``: LID and the
    reference judge; ``oracle``: the organism's truth) the IFL, IFL + remedy, diff, relative
    increase = diff / |IFL|, and the accuracy before and after, with 95% CIs.

    ``primary`` (a variant name) flags the paper's setting: that variant with oracle selection.
    """
    rows = []
    for source in _sources(measured):
        fid, acc = SOURCES[source]
        pf = paired_tasks(measured, fid, study="remedy")
        pa = paired_tasks(measured, acc, study="remedy")
        acc_groups = dict(list(pa.groupby(["model", *CONFIG], sort=True)))
        for key, g in pf.groupby(["model", *CONFIG], sort=True):
            a = acc_groups.get(key, pa.iloc[:0])
            row = dict(zip(["model", *CONFIG], key, strict=True)) | {"source": source}
            row |= {"n_tasks": int(g["task_id"].nunique())}
            row |= _estimate(g, g["image"] - g["text"], "ifl", level)
            row |= _estimate(g, g["steered"] - g["text"], "ifl_remedy", level)
            row |= _estimate(g, g["steered"] - g["image"], "diff", level)
            row["relative_increase"] = _relative(row["diff"], row["ifl"])
            row |= _estimate(a, a["image"], "accuracy", level, ci=False)
            row |= _estimate(a, a["steered"], "accuracy_remedy", level, ci=False)
            row |= _estimate(a, a["steered"] - a["image"], "accuracy_diff", level)
            row["primary"] = bool(key[2] == primary and key[3] == "oracle")
            rows.append(row)
    return pd.DataFrame(rows)


def by_language_table(measured: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Tables 6-9 on this run: IFL, IFL + remedy and diff per model, configuration, source,
    benchmark and language, and each group's ``average`` row (the unweighted mean of its cells,
    equal to :func:`remedy_table`'s figures)."""
    z = stats.norm.ppf(0.5 + level / 2)
    out = []
    for source in _sources(measured):
        p = paired_tasks(measured, SOURCES[source][0], study="remedy")
        p = p.assign(
            ifl=p["image"] - p["text"],
            ifl_remedy=p["steered"] - p["text"],
            diff=p["steered"] - p["image"],
            source=source,
        )
        keys = ["model", *CONFIG, "source"]
        cells = (
            p.groupby([*keys, *_CELL], sort=True)
            .agg(
                n=("task_id", "nunique"),
                ifl=("ifl", "mean"),
                ifl_remedy=("ifl_remedy", "mean"),
                diff=("diff", "mean"),
                diff_sd=("diff", "std"),
            )
            .reset_index()
        )
        half = z * cells["diff_sd"] / np.sqrt(cells["n"])
        cells = cells.assign(diff_ci_low=cells["diff"] - half, diff_ci_high=cells["diff"] + half)
        avg = (
            cells.groupby(keys, sort=True)
            .agg(
                n=("n", "sum"),
                ifl=("ifl", "mean"),
                ifl_remedy=("ifl_remedy", "mean"),
                diff=("diff", "mean"),
            )
            .reset_index()
            .assign(benchmark="average", language="-")
        )
        out += [cells.drop(columns="diff_sd"), avg]
    if not out:
        return pd.DataFrame()
    return pd.concat(out, ignore_index=True)


def sweep_table(measured: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """The fidelity / accuracy trade-off of the sweep: per model, layer, strength and source the
    steered image-condition fidelity, IFL + remedy and accuracy (strength 0 = the main run's
    unsteered replies of the same tasks, shown at every layer)."""
    cols = [
        "model",
        "layer",
        "strength",
        "source",
        "n_tasks",
        "fidelity",
        "fidelity_ci_low",
        "fidelity_ci_high",
        "ifl_remedy",
        "accuracy",
        "accuracy_ci_low",
        "accuracy_ci_high",
    ]
    rows = []
    for source in _sources(measured):
        fid, acc = SOURCES[source]
        pf = paired_tasks(measured, fid, study="sweep")
        pa = paired_tasks(measured, acc, study="sweep")
        if pf.empty:
            continue
        acc_groups = dict(list(pa.groupby(["model", "layer", "strength"], sort=True)))
        for (model, layer, strength), g in pf.groupby(["model", "layer", "strength"], sort=True):
            a = acc_groups.get((model, layer, strength), pa.iloc[:0])
            for s, fcol, acol in ((0.0, "image", "image"), (strength, "steered", "steered")):
                row = {
                    "model": model,
                    "layer": layer,
                    "strength": s,
                    "source": source,
                    "n_tasks": int(g["task_id"].nunique()),
                }
                row |= _estimate(g, g[fcol], "fidelity", level)
                row |= _estimate(g, g[fcol] - g["text"], "ifl_remedy", level, ci=False)
                row |= _estimate(a, a[acol], "accuracy", level)
                rows.append(row)
    df = pd.DataFrame(rows, columns=cols)
    return (
        df.drop_duplicates(["model", "layer", "strength", "source"])
        .sort_values(["model", "source", "layer", "strength"])
        .reset_index(drop=True)
    )


def text_check_table(measured: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Steering the text condition: fidelity and accuracy of the text condition unsteered and
    steered, and their differences with CIs (per model, configuration and source)."""
    rows = []
    for source in _sources(measured):
        fid, acc = SOURCES[source]
        pf = paired_tasks(measured, fid, condition="text", study="remedy")
        pa = paired_tasks(measured, acc, condition="text", study="remedy")
        acc_groups = dict(list(pa.groupby(["model", *CONFIG], sort=True)))
        for key, g in pf.groupby(["model", *CONFIG], sort=True):
            a = acc_groups.get(key, pa.iloc[:0])
            row = dict(zip(["model", *CONFIG], key, strict=True)) | {"source": source}
            row |= {"n_tasks": int(g["task_id"].nunique())}
            row |= _estimate(g, g["text"], "fidelity_text", level, ci=False)
            row |= _estimate(g, g["steered"], "fidelity_text_steered", level, ci=False)
            row |= _estimate(g, g["steered"] - g["text"], "fidelity_diff", level)
            row |= _estimate(a, a["text"], "accuracy_text", level, ci=False)
            row |= _estimate(a, a["steered"], "accuracy_text_steered", level, ci=False)
            row |= _estimate(a, a["steered"] - a["text"], "accuracy_diff", level)
            rows.append(row)
    return pd.DataFrame(rows)


def question_lid_table(questions: pd.DataFrame) -> pd.DataFrame:
    """Per query language: how often the LID model finds it in the question (auto selection)."""
    q = questions.assign(agree=questions["detected"].fillna("") == questions["language"])
    return (
        q.groupby("language", sort=True)
        .agg(
            n=("task_id", "size"),
            agreement=("agree", "mean"),
            most_detected=("language_pred", lambda s: s.value_counts().index[0]),
        )
        .reset_index()
    )


def selection_table(table5: pd.DataFrame, questions: pd.DataFrame) -> pd.DataFrame:
    """Oracle against automatic attribute selection (primary variant): IFL + remedy and diff of
    both, per model and source, with the LID model's agreement on the steered questions."""
    if table5.empty:
        return pd.DataFrame()
    prim = table5[table5["primary"]]
    if prim.empty:
        return pd.DataFrame()
    variant = prim["variant"].iloc[0]
    t = table5[(table5["variant"] == variant) & (table5["study"] == "remedy")]
    wide = t.pivot_table(
        index=["model", "source"], columns="selection", values=["ifl", "ifl_remedy", "diff"]
    )
    wide.columns = [f"{v}_{s}" for v, s in wide.columns]
    wide = wide.reset_index()
    steered = questions[questions["language"] != "en"]
    agreement = (
        float((steered["detected"].fillna("") == steered["language"]).mean())
        if len(steered)
        else np.nan
    )
    return wide.assign(variant=variant, question_lid_agreement=agreement)


def steering_summary(table5: pd.DataFrame) -> dict:
    """Table 5's figures for summary.json: ``ifl``, ``ifl_remedy``, ``diff`` and
    ``relative_increase`` (model -> value) of the paper's setting (primary variant, oracle
    selection, LID proxy)."""
    rows = table5[table5["primary"] & (table5["source"] == "proxy")] if len(table5) else table5
    out: dict[str, dict[str, float | None]] = {}
    for key in ("ifl", "ifl_remedy", "diff", "relative_increase"):
        out[key] = {
            r.model: (
                None if not np.isfinite(getattr(r, key)) else round(float(getattr(r, key)), 4)
            )
            for r in rows.itertuples(index=False)
        }
    return out


# ---- CKA between two models ---------------------------------------------------------------


def triangle_mask(n_a: int, n_b: int) -> np.ndarray:
    """Cells ``(i, j)`` on or below the diagonal of an ``n_a`` x ``n_b`` layer grid (relative
    depth ``i / (n_a - 1) >= j / (n_b - 1)``; the plain ``i >= j`` when square)."""
    if n_a < 1 or n_b < 1:
        raise ValueError(f"layer counts must be positive, got {n_a} and {n_b}")
    i, j = np.meshgrid(np.arange(n_a), np.arange(n_b), indexing="ij")
    return (
        i * max(n_b - 1, 1) >= j * max(n_a - 1, 1)
        if n_a > 1 and n_b > 1
        else np.ones((n_a, n_b), bool)
    )


def cka_table(
    layers_a: Sequence[Any], layers_b: Sequence[Any], *, seed: int = 0, max_rows: int | None = 5000
) -> pd.DataFrame:
    """Layer-by-layer CKA between two models, long format: ``layer_a, layer_b, linear, rbf,
    kernel, value`` with the paper's layout (linear on and below the diagonal, RBF above)."""
    from ifl.represent.cka import cka_heatmap

    lin = cka_heatmap(layers_a, layers_b, kind="linear")
    rbf = cka_heatmap(layers_a, layers_b, kind="rbf", seed=seed, max_rows=max_rows)
    lower = triangle_mask(*lin.shape)
    i, j = np.meshgrid(np.arange(lin.shape[0]), np.arange(lin.shape[1]), indexing="ij")
    return pd.DataFrame(
        {
            "layer_a": i.ravel(),
            "layer_b": j.ravel(),
            "linear": lin.ravel(),
            "rbf": rbf.ravel(),
            "kernel": np.where(lower.ravel(), "linear", "rbf"),
            "value": np.where(lower, lin, rbf).ravel(),
        }
    )


def cka_prompts(n: int, languages: Sequence[str], prompter: Prompter | None = None) -> list[str]:
    """``n`` image prompts asking "Describe this image in detail." in ``languages`` in turn, in
    the format of ``prompter`` (None: the organism's)."""
    render = prompter or organism_prompt
    langs = list(languages) or ["en"]
    return [render(instruction(langs[i % len(langs)]), True, None) for i in range(n)]


def pooled_layers(
    model: torch.nn.Module,
    processor: Any,
    prompts: Sequence[str],
    images: Sequence[Any],
    batch_size: int = 32,
) -> dict[str, list[np.ndarray]]:
    """Per-input mean states of every layer over image positions and over text positions."""
    from ifl.represent.hidden import pooled_states

    return {
        pos: pooled_states(model, processor, prompts, images, positions=pos, batch_size=batch_size)
        for pos in ("image", "text")
    }


# ---- 2-D projection of image and text tokens ----------------------------------------------


def _find_run(seq: Sequence[int], sub: Sequence[int]) -> int:
    """Start of the last occurrence of ``sub`` in ``seq`` (-1 if absent)."""
    n, m = len(seq), len(sub)
    for s in range(n - m, -1, -1):
        if m and list(seq[s : s + m]) == list(sub):
            return s
    return -1


def question_token_mask(
    meta: pd.DataFrame, question_ids: Mapping[int, Sequence[int]]
) -> np.ndarray:
    """Positions (rows of ``meta`` from :func:`ifl.represent.hidden.hidden_states`) that are the
    tokens of each input's question: its tokenisation found in the input, else every text
    position after the last image token (template tokens such as ``USER:`` are left out)."""
    mask = np.zeros(len(meta), dtype=bool)
    for i, rows in meta.groupby("input", sort=False).indices.items():
        rows = rows[np.argsort(meta["position"].to_numpy()[rows])]
        ids = meta["token_id"].to_numpy()[rows]
        start = _find_run(ids, question_ids.get(int(i), []))
        if start >= 0:
            mask[rows[start : start + len(question_ids[int(i)])]] = True
            continue
        modality = meta["modality"].to_numpy()[rows]
        last_image = np.flatnonzero(modality == "image")
        after = np.arange(len(rows)) > (last_image[-1] if len(last_image) else -1)
        mask[rows[after & (modality == "text")]] = True
    return mask


def token_points(
    model: torch.nn.Module,
    processor: Any,
    tasks: pd.DataFrame,
    layers: Sequence[int],
    *,
    batch_size: int = 8,
    prompter: Prompter | None = None,
) -> tuple[pd.DataFrame, dict[int, np.ndarray]]:
    """States of image tokens and question tokens of the image-condition prompts of ``tasks``
    (in the format of ``prompter``; None: the organism's).

    Image tokens come from the inputs of one language only (``tasks``' first): before the
    question in the prompt, their states do not depend on it. Returns ``meta`` (``modality``:
    image|text, ``language``: the query language, ``image`` for image tokens) and per layer an
    ``(n_points, hidden)`` float32 array (layer 0 = the input embeddings).
    """
    from PIL import Image

    from ifl.represent.hidden import hidden_states

    tok = getattr(processor, "tokenizer", processor)
    image_lang = str(tasks["language"].iloc[0])
    metas, arrays = [], {int(layer): [] for layer in layers}
    for start in range(0, len(tasks), batch_size):
        chunk = tasks.iloc[start : start + batch_size]
        prompts = [(prompter or organism_prompt)(q, True, None) for q in chunk["question"]]
        images = [np.asarray(Image.open(p).convert("RGB")) for p in chunk["image"]]
        out = hidden_states(model, processor, prompts, images, batch_size=len(prompts))
        meta = out["meta"]
        qids = {
            i: tok(q, add_special_tokens=False)["input_ids"]
            for i, q in enumerate(chunk["question"])
        }
        lang = chunk["language"].to_numpy()[meta["input"].to_numpy()]
        is_image = (meta["modality"] == "image").to_numpy() & (lang == image_lang)
        keep = is_image | question_token_mask(meta, qids)
        metas.append(
            pd.DataFrame(
                {
                    "modality": np.where(is_image[keep], "image", "text"),
                    "language": np.where(is_image[keep], "image", lang[keep]),
                }
            )
        )
        for layer in arrays:
            arrays[layer].append(out["states"][keep, layer])
    meta = pd.concat(metas, ignore_index=True)
    return meta, {layer: np.concatenate(a).astype(np.float32) for layer, a in arrays.items()}


def projection_tasks(
    tasks: pd.DataFrame,
    benchmarks: Sequence[str],
    per_language: int = PROJECTION_TASKS_PER_LANGUAGE,
) -> pd.DataFrame:
    """The image tasks whose tokens are projected: at most ``per_language`` per language of
    ``benchmarks``, English first (image tokens are taken from the first language's prompts)."""
    tasks = tasks[tasks["benchmark"].isin(list(benchmarks)) & tasks["image"].notna()]
    if tasks.empty:
        raise ValueError(f"no image tasks in steering.benchmarks {list(benchmarks)}")
    order = tasks.assign(_en=tasks["language"] != "en").sort_values(
        ["_en", "language", "task_id"], kind="stable"
    )
    chosen = order.groupby("language", sort=False).head(per_language).drop(columns="_en")
    return chosen.reset_index(drop=True)


def projection_layers(layer: int | None, n_layers: int) -> tuple[int, list[int]]:
    """The state index of the steering layer and the states projected: the input embeddings
    (0), the steering layer's output and the last layer's (state ``k`` = output of decoder
    layer ``k - 1``)."""
    steer_state = resolve_layer(layer, n_layers) + 1
    return steer_state, sorted({0, steer_state, n_layers})


def sample_points(meta: pd.DataFrame, max_per_group: int, seed: int = 0) -> np.ndarray:
    """Sorted row indices: at most ``max_per_group`` per (modality, language), seeded."""
    if max_per_group < 1:
        raise ValueError(f"max_per_group must be positive, got {max_per_group}")
    rng = np.random.default_rng(seed)
    picks = []
    for _, rows in sorted(meta.groupby(["modality", "language"], sort=True).indices.items()):
        picks.append(
            rows if len(rows) <= max_per_group else rng.choice(rows, max_per_group, replace=False)
        )
    return np.sort(np.concatenate(picks)) if picks else np.array([], dtype=int)


def project_points(
    meta: pd.DataFrame, arrays: Mapping[int, np.ndarray], *, method: str = "umap", seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """2-D coordinates of every point per layer (image and text tokens embedded jointly), and
    the modality gap per layer (distance between the mean image and mean text token state)."""
    from ifl.represent.projections import embed_2d, modality_gap

    coords, gaps = [], []
    image = (meta["modality"] == "image").to_numpy()
    for layer, X in sorted(arrays.items()):
        xy = embed_2d(X, method, seed=seed)
        coords.append(meta.assign(layer=layer, method=method, x=xy[:, 0], y=xy[:, 1]))
        gaps.append(
            {
                "layer": layer,
                "modality_gap": modality_gap(X[image], X[~image]),
                "n_image": int(image.sum()),
                "n_text": int((~image).sum()),
            }
        )
    return pd.concat(coords, ignore_index=True), pd.DataFrame(gaps)
