"""Steered replies: a language vector per query language, one per row chosen by the oracle or
the LID model, added during :func:`ifl.generate.run`; every run of a model checkpointed and
resumable (:func:`run_steering`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ifl import LANGUAGES
from ifl.lid import NAME_TO_ISO
from ifl.steering.plan import SELECTIONS, SteerRun, parse_variant
from ifl.world.items import detail_instruction

if TYPE_CHECKING:  # torch is imported where models run, so that the tables stay light
    import torch

    from ifl.generate import Prompter

log = logging.getLogger(__name__)


def language_vectors(
    model: torch.nn.Module,
    tokenizer: Any,
    languages: Sequence[str],
    layer: int,
    reduce: str = "last",
) -> dict[str, torch.Tensor]:
    """``a_lang`` for every non-English language of ``languages`` (one batched forward)."""
    from ifl.steering.vectors import layer_states

    langs = [lang for lang in dict.fromkeys(languages) if lang != "en"]
    if not langs:
        return {}
    states = layer_states(
        model, tokenizer, [detail_instruction(x) for x in ["en", *langs]], layer, reduce
    )
    return {lang: states[i + 1] - states[0] for i, lang in enumerate(langs)}


def detected_iso(names: Sequence[str]) -> list[str | None]:
    """ISO code of each LID language name (None for ``other``, ``other_latin``, ``none``)."""
    return [NAME_TO_ISO.get(n) for n in names]


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

    from ifl.steering.vectors import steering

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
