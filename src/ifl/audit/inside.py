"""The audit's representation analyses (Figure 2 for every model): per model, the pooled layer
states that CKA compares and the image and question tokens projected in 2-D; across models,
layer-by-layer CKA between every pair and the projections with their modality gap.

Each model is run once, on its own GPU job (:func:`model_states`, saved by :func:`save_states`);
the comparisons run on the CPU from the saved states (:func:`cka_pairs`, :func:`projections`).
Prompts are each checkpoint's own (its chat template), images the benchmarks' own
(:func:`cka_images`), so that every model sees the same inputs.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ifl.io import atomic_dir
from ifl.represent import hidden
from ifl.represent.cka_tables import cka_prompts, cka_table, pooled_layers
from ifl.represent.points import projection_tasks, sample_points, token_points
from ifl.represent.projections import project_points
from ifl.steering.plan import projection_layers

POSITIONS = ("image", "text")
# Inputs per forward pass: every layer's states of every position are held at once (up to ~2,000
# image tokens per input in LLaVA-NeXT's grids, 30+ layers of width 4,096: ~1 GB per input).
BATCH = 2


@dataclass
class ModelStates:
    """What one model's hidden-state job keeps.

    Attributes:
        pooled: per position kind (``image``, ``text``), one ``(n_images, hidden)`` array per
            state (0 = input embeddings, ``k`` = output of decoder layer ``k - 1``).
        meta: one row per projected token (``modality``, ``language``).
        tokens: state index -> ``(n_tokens, hidden)`` array of the projected tokens.
        facts: the model's family, processor, depth, width, steering layer and image tokens.
    """

    pooled: dict[str, list[np.ndarray]]
    meta: pd.DataFrame
    tokens: dict[int, np.ndarray]
    facts: dict[str, Any]


def cka_images(tasks: pd.DataFrame, n: int, seed: int) -> np.ndarray:
    """``n`` distinct images of the benchmarks (seeded), padded square and resized alike
    (:func:`ifl.paper.cka_images`): the inputs every audited model's states are compared on."""
    from ifl.paper import cka_images as draw

    return draw(tasks["image"].dropna().unique().tolist(), n, seed)


def model_states(
    model: Any,
    processor: Any,
    prompter: Any,
    images: np.ndarray,
    tasks: pd.DataFrame,
    *,
    languages: Sequence[str],
    steering: Mapping[str, Any],
    seed: int,
    batch_size: int = BATCH,
) -> ModelStates:
    """Pooled states of the CKA images (prompted "Describe this image in detail." in the run's
    languages in turn) and the sampled token states of the projection tasks, of one model."""
    from ifl.models import families
    from ifl.models.layers import num_layers

    prompts = cka_prompts(len(images), languages, prompter)
    pooled = pooled_layers(model, processor, prompts, list(images), batch_size)
    n = num_layers(model)
    steer_state, layers = projection_layers(steering["layer"], n)
    chosen = projection_tasks(tasks, steering["benchmarks"])
    meta, arrays = token_points(
        model, processor, chosen, layers, batch_size=batch_size, prompter=prompter
    )
    keep = sample_points(meta, steering["projection_points"], seed=seed)
    image_id = families.image_token_id(model)
    sample = processor(
        text=prompts[:batch_size],
        images=families.image_batch(list(images[:batch_size])),
        return_tensors="pt",
        padding=True,
    )
    facts = {
        "family": str(model.config.model_type),
        "processor": families.processor_kind(processor),
        "layers": n,
        "hidden": int(pooled["text"][-1].shape[1]),
        "steer_layer": steer_state - 1,
        "image_tokens": float((sample["input_ids"] == image_id).sum(1).float().mean()),
    }
    return ModelStates(
        pooled=pooled,
        meta=meta.iloc[keep].reset_index(drop=True),
        tokens={k: v[keep] for k, v in arrays.items()},
        facts=facts,
    )


def save_states(states: ModelStates, out_dir: str | Path) -> None:
    """Write one model's states to ``out_dir`` in one rename: ``pooled.npz``,
    ``tokens.npz`` + ``tokens.parquet`` and ``facts.json``."""
    with atomic_dir(out_dir) as tmp:
        np.savez(
            tmp / "pooled.npz",
            **{
                f"{pos}_{k}": a
                for pos, arrays in states.pooled.items()
                for k, a in enumerate(arrays)
            },
        )
        hidden.save_states(
            tmp / "tokens.npz", {f"state_{k}": a for k, a in states.tokens.items()}, states.meta
        )
        (tmp / "facts.json").write_text(json.dumps(states.facts, indent=2), encoding="utf-8")


def load(out_dir: str | Path) -> ModelStates:
    """What :func:`save_states` wrote."""
    folder = Path(out_dir)
    with np.load(folder / "pooled.npz", allow_pickle=False) as data:
        pooled = {
            pos: [
                data[f"{pos}_{k}"] for k in range(sum(n.startswith(f"{pos}_") for n in data.files))
            ]
            for pos in POSITIONS
        }
    arrays, meta = hidden.load_states(folder / "tokens.npz")
    tokens = {int(name.removeprefix("state_")): a for name, a in arrays.items()}
    facts = json.loads((folder / "facts.json").read_text(encoding="utf-8"))
    return ModelStates(pooled, meta, tokens, facts)


def cka_pairs(states: Mapping[str, ModelStates], seed: int = 0) -> pd.DataFrame:
    """Layer-by-layer CKA (linear and RBF, :func:`ifl.represent.cka_tables.cka_table`) between every pair of
    models, over image positions and over text positions, in the order the models are given."""
    tables = []
    for a, b in itertools.combinations(states, 2):
        for pos in POSITIONS:
            table = cka_table(states[a].pooled[pos], states[b].pooled[pos], seed=seed)
            n_images = states[a].pooled[pos][0].shape[0]
            tables.append(table.assign(positions=pos, model_a=a, model_b=b, n_images=n_images))
    columns = ["layer_a", "layer_b", "linear", "rbf", "kernel", "value", "positions", "model_a",
               "model_b", "n_images"]  # fmt: skip
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns)


def projections(
    states: Mapping[str, ModelStates], method: str = "umap", seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every model's image and question tokens in 2-D (:func:`ifl.represent.projections.project_points`) and
    the modality gap per layer, stacked with a ``model`` column (and ``steer_layer``, the state
    index of the steering layer, beside the gaps)."""
    points, gaps = [], []
    for name, s in states.items():
        coords, gap = project_points(s.meta, s.tokens, method=method, seed=seed)
        points.append(coords.assign(model=name))
        gaps.append(gap.assign(model=name, steer_layer=s.facts["steer_layer"] + 1))
    return pd.concat(points, ignore_index=True), pd.concat(gaps, ignore_index=True)


def matched_depth(cka: pd.DataFrame) -> pd.DataFrame:
    """Per pair of models and kind of position, the mean linear CKA of every layer of model A
    with the layer of model B at the same relative depth (layer ``i`` of ``n_a`` against
    ``round(i (n_b - 1) / (n_a - 1))``): one figure for how alike two models represent the same
    inputs, whatever their depths. Columns ``model_a, model_b, positions, cka``."""
    rows = []
    for (a, b, pos), d in cka.groupby(["model_a", "model_b", "positions"], sort=False):
        n_a, n_b = int(d["layer_a"].max()) + 1, int(d["layer_b"].max()) + 1
        i = np.arange(n_a)
        j = np.rint(i * (n_b - 1) / max(n_a - 1, 1)).astype(int)
        grid = d.set_index(["layer_a", "layer_b"])["linear"]
        rows.append({"model_a": a, "model_b": b, "positions": pos,
                     "cka": float(np.mean([grid[(x, y)] for x, y in zip(i, j, strict=True)]))})  # fmt: skip
    return pd.DataFrame(rows, columns=["model_a", "model_b", "positions", "cka"])
