"""Layer-by-layer CKA between two VLMs (the paper's Figure 2): every layer's states pooled over
the image positions and over the text positions of the same inputs, compared in the paper's
layout (linear CKA on and below the diagonal, RBF above; :mod:`ifl.represent.cka`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ifl.models.prompts import render as organism_prompt
from ifl.represent.cka import cka_heatmap, triangle_mask
from ifl.represent.hidden import pooled_states
from ifl.world.items import detail_instruction

if TYPE_CHECKING:
    import torch

    from ifl.generate import Prompter


def cka_table(
    layers_a: Sequence[Any], layers_b: Sequence[Any], *, seed: int = 0, max_rows: int | None = 5000
) -> pd.DataFrame:
    """Layer-by-layer CKA between two models, long format: ``layer_a, layer_b, linear, rbf,
    kernel, value`` with the paper's layout (linear on and below the diagonal, RBF above)."""
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
    return [render(detail_instruction(langs[i % len(langs)]), True, None) for i in range(n)]


def pooled_layers(
    model: torch.nn.Module,
    processor: Any,
    prompts: Sequence[str],
    images: Sequence[Any],
    batch_size: int = 32,
) -> dict[str, list[np.ndarray]]:
    """Per-input mean states of every layer over image positions and over text positions."""
    return {
        pos: pooled_states(model, processor, prompts, images, positions=pos, batch_size=batch_size)
        for pos in ("image", "text")
    }


def compare_models(
    paths: Sequence[str],
    images: Sequence[Any],
    languages: Sequence[str],
    *,
    device: torch.device,
    batch_size: int,
    seed: int,
) -> pd.DataFrame:
    """The CKA table of the two VLMs saved at ``paths`` (loaded one at a time) over ``images``
    asked about in ``languages`` in turn, image and text positions stacked (``positions``)."""
    from ifl.generate import load_vlm

    prompts = cka_prompts(len(images), languages)
    pooled = []
    for path in paths:
        model, processor = load_vlm(path, device)
        pooled.append(pooled_layers(model, processor, prompts, images, batch_size))
        del model
    tables = [
        cka_table(pooled[0][pos], pooled[1][pos], seed=seed).assign(positions=pos)
        for pos in ("image", "text")
    ]
    return pd.concat(tables, ignore_index=True)
