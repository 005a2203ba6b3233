"""The evaluation task table of the model organism: parallel items asked in every language.

Like the paper's translated benchmarks, every item is asked in every query language. Items
are drawn from a generator seeded by (seed, benchmark, item index), so a table with more items
extends a smaller one without changing it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ifl import LANGUAGES
from ifl.world.items import (
    BENCHMARK_OF,
    FAMILIES,
    Item,
    answer_concepts,
    describe,
    item_from_json,
    item_to_json,
    realise,
    reference_answers,
    sample_item,
)
from ifl.world.render import render, save_png

__all__ = [
    "BENCHMARKS", "COLUMNS", "build_items", "build_tasks", "item_from_json", "item_to_json",
    "text_checks",
]  # fmt: skip

# Fixed order: a benchmark's index seeds its items, so it must never change.
BENCHMARKS: tuple[str, ...] = ("MaXM", "LLaVA-W", "VisIT", "MultiQ")
_FAMILY_OF_BENCHMARK = {b: f for f, b in BENCHMARK_OF.items()}
COLUMNS: tuple[str, ...] = (
    "task_id", "benchmark", "family", "kind", "language", "question", "description", "answers",
    "reference", "answer_concepts", "scene", "item", "image",
)  # fmt: skip


def build_items(benchmark: str, n: int, *, seed: int) -> list[Item]:
    """The first ``n`` items of ``benchmark`` (kinds of its family in rotation)."""
    if benchmark not in _FAMILY_OF_BENCHMARK:
        raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {BENCHMARKS}")
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"item count must be a non-negative int, got {n!r}")
    family = _FAMILY_OF_BENCHMARK[benchmark]
    kinds = FAMILIES[family]
    b = BENCHMARKS.index(benchmark)
    return [
        sample_item(np.random.default_rng([seed, b, i]), family, kinds[i % len(kinds)])
        for i in range(int(n))
    ]


def build_tasks(
    n_per_benchmark: Mapping[str, int],
    languages: Sequence[str],
    *,
    seed: int,
    image_dir: Path,
    image_size: int = 32,
) -> pd.DataFrame:
    """One row per (item, language); writes one PNG per item under ``image_dir``.

    ``n_per_benchmark`` maps benchmark names (``BENCHMARKS``) to items per language.
    """
    unknown = set(n_per_benchmark) - set(BENCHMARKS)
    if unknown:
        raise ValueError(f"unknown benchmarks {sorted(unknown)}; expected {BENCHMARKS}")
    bad = [lang for lang in languages if lang not in LANGUAGES]
    if bad:
        raise ValueError(f"unknown languages {bad}; expected codes from {LANGUAGES}")
    if len(set(languages)) != len(languages):
        raise ValueError(f"languages repeat: {list(languages)}")
    image_dir = Path(image_dir)
    rows = []
    for benchmark in BENCHMARKS:
        if benchmark not in n_per_benchmark:
            continue
        for i, item in enumerate(build_items(benchmark, n_per_benchmark[benchmark], seed=seed)):
            stem = f"{benchmark}-{i:04d}"
            image = save_png(render(item.scene, image_size), image_dir / f"{stem}.png")
            scene_json = json.dumps(item.scene.to_dict(), sort_keys=True)
            concepts = list(answer_concepts(item))
            for lang in languages:
                question, _ = realise(item, lang)
                answers = reference_answers(item, lang)
                rows.append(
                    {
                        "task_id": f"{stem}-{lang}",
                        "benchmark": benchmark,
                        "family": item.family,
                        "kind": item.kind,
                        "language": lang,
                        "question": question,
                        "description": describe(item.scene, lang),
                        "answers": answers,
                        "reference": answers[0],
                        "answer_concepts": concepts,
                        "scene": scene_json,
                        "item": item_to_json(item),
                        "image": str(image),
                    }
                )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def text_checks(languages: Sequence[str], per_kind: int, *, seed: int) -> pd.DataFrame:
    """Short questions with their scene's description, ``per_kind`` of each MaXM kind, asked in
    every language: the text-only check of the LM backbones. ``key`` is what a colour or shape
    question names its object by (position, shape, colour, size and shape or colour; empty for
    the other kinds), ``objects`` the scene's number of objects.

    The items are MaXM's generator under another seed (``seed`` should differ from the task
    table's), so that the check shares no item with the evaluation.
    """
    kinds = FAMILIES[_FAMILY_OF_BENCHMARK["MaXM"]]
    items = build_items("MaXM", per_kind * len(kinds), seed=seed)
    return pd.DataFrame(
        [
            {
                "language": lang,
                "kind": item.kind,
                "question": realise(item, lang)[0],
                "description": describe(item.scene, lang),
                "item": item_to_json(item),
                "key": dict(item.slots).get("ref"),
                "objects": len(item.scene.objects),
            }
            for item in items
            for lang in languages
        ]
    )
