"""The points of the 2-D projection (the paper's Figure 2): which tasks are asked, which token
positions are image tokens and which are the question's, and a seeded sample of each group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from PIL import Image

from ifl.models.prompts import render as organism_prompt
from ifl.represent.hidden import hidden_states
from ifl.represent.projections import project_points

if TYPE_CHECKING:
    import torch

    from ifl.generate import Prompter

# Items per language whose tokens enter the 2-D projection (all of them on the organism).
TASKS_PER_LANGUAGE = 24


def projection_tasks(
    tasks: pd.DataFrame, benchmarks: Sequence[str], per_language: int = TASKS_PER_LANGUAGE
) -> pd.DataFrame:
    """The first ``per_language`` image tasks of ``benchmarks`` in every language, English
    first (image tokens are taken from the first language's prompts)."""
    tasks = tasks[tasks["benchmark"].isin(list(benchmarks)) & tasks["image"].notna()]
    if tasks.empty:
        raise ValueError(f"no image tasks in steering.benchmarks {list(benchmarks)}")
    order = tasks.assign(_en=tasks["language"] != "en").sort_values(
        ["_en", "language", "task_id"], kind="stable"
    )
    return (
        order.groupby("language", sort=False)
        .head(per_language)
        .drop(columns="_en")
        .reset_index(drop=True)
    )


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


def project_tokens(
    model: torch.nn.Module,
    processor: Any,
    tasks: pd.DataFrame,
    layers: Sequence[int],
    *,
    max_per_group: int,
    method: str,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Image and question tokens of ``tasks`` at ``layers`` in 2-D, at most ``max_per_group``
    per (modality, language), and the modality gap per layer (:func:`project_points`)."""
    meta, arrays = token_points(model, processor, tasks, layers)
    keep = sample_points(meta, max_per_group, seed=seed)
    return project_points(
        meta.iloc[keep].reset_index(drop=True),
        {k: v[keep] for k, v in arrays.items()},
        method=method,
        seed=seed,
    )
