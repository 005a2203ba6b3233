"""Hidden states of a VLM (or causal LM) per layer and position, pooled states, storage.

Layer 0 is the input of the first decoder layer, i.e. the merged input embeddings (in
transformers 5 Gemma's sqrt(hidden) scale lives in its embedding module, so it applies to token
embeddings but not to the projector output), layer ``i`` >= 1 the output of decoder layer ``i - 1``.
Unlike transformers' ``output_hidden_states``, the last layer is the raw decoder-layer output,
before the final norm, so every layer is measured the same way (and the same way as
:func:`ifl.steering.vectors.layer_states`).

Every position of an input has a modality: ``"image"`` (an image token, whose embedding is the
projector output), ``"special"`` (BOS/EOS and other special tokens: the BOS state of real LLMs has
outsized activations that would swamp a mean) or ``"text"``; padding is dropped.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ifl.models.families import image_batch, image_token_id, own_positions
from ifl.models.layers import decoder_layers, language_model

POOL_POSITIONS = ("image", "text", "all")


class _StopForward(Exception):
    """Raised by a capture hook once everything needed has run, to skip the rest of the model."""


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _check_inputs(prompts: Sequence[str], images: Sequence[Any] | None, batch_size: int) -> None:
    if isinstance(prompts, str) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompts must be a non-empty sequence of strings, got {prompts!r}")
    if images is not None and len(images) != len(prompts):
        raise ValueError(f"need one image per prompt: {len(prompts)} prompts, {len(images)} images")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def _encode(
    model: nn.Module, processor: Any, prompts: Sequence[str], images: Sequence[Any] | None
) -> dict[str, torch.Tensor]:
    kwargs: dict[str, Any] = {"text": list(prompts), "return_tensors": "pt", "padding": True}
    if images is not None:
        kwargs["images"] = image_batch(images)
    enc = processor(**kwargs)
    device, dtype = _device(model), next(model.parameters()).dtype
    out = {k: v.to(device) for k, v in enc.items() if isinstance(v, torch.Tensor)}
    if "pixel_values" in out:  # the vision tower's dtype (bf16 on CUDA)
        out["pixel_values"] = out["pixel_values"].to(dtype)
    return out


def _modalities(model: nn.Module, processor: Any, input_ids: torch.Tensor) -> np.ndarray:
    """Modality code per position: 0 text, 1 image, 2 special (padding is masked elsewhere)."""
    tok = getattr(processor, "tokenizer", processor)
    ids = input_ids.cpu()
    codes = np.zeros(ids.shape, dtype=np.int8)
    specials = torch.tensor(sorted(set(getattr(tok, "all_special_ids", []))), dtype=ids.dtype)
    codes[torch.isin(ids, specials).numpy()] = 2
    image_id = image_token_id(model)
    if image_id is not None:
        codes[(ids == image_id).numpy()] = 1
    return codes


_MODALITY_NAMES = np.array(["text", "image", "special"])


@torch.no_grad()
def input_embeddings(
    model: nn.Module,
    processor: Any,
    prompts: Sequence[str],
    images: Sequence[Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The language model's input embeddings after the projector merge, and the image-token mask.

    Image-token positions hold the projector output of the vision features, the other positions
    the token embeddings; these are captured from the model's own forward (the vision tower and
    projector run, the decoder layers do not), so they are exactly what the LLM receives.

    Returns:
        ``(embeds, image_mask)``: float32 CPU ``(n, seq, hidden)`` (left padding included) and a
        bool ``(n, seq)`` mask of image-token positions.
    """
    _check_inputs(prompts, images, 1)
    enc = _encode(model, processor, prompts, images)
    lm = language_model(model)
    captured: dict[str, torch.Tensor] = {}

    def capture(_module: nn.Module, _args: Any, kwargs: dict[str, Any]) -> None:
        embeds = kwargs.get("inputs_embeds")
        if embeds is None:  # plain causal LM called with input_ids
            embeds = lm.get_input_embeddings()(kwargs["input_ids"])
        captured["embeds"] = embeds
        raise _StopForward

    handle = lm.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        model(**enc, use_cache=False)
    except _StopForward:
        pass
    finally:
        handle.remove()
    image_id = image_token_id(model)
    ids = enc["input_ids"]
    mask = ids == image_id if image_id is not None else torch.zeros_like(ids, dtype=torch.bool)
    return captured["embeds"].float().cpu(), mask.cpu()


def _layer_states(model: nn.Module, enc: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Layer 0 (input of the first decoder layer) and every decoder layer's output, (B, T, H)."""
    layers = decoder_layers(model)
    states: list[torch.Tensor | None] = [None] * (len(layers) + 1)

    def first_input(_module: nn.Module, args: Any, kwargs: dict[str, Any]) -> None:
        states[0] = args[0] if args else kwargs["hidden_states"]

    def output_of(index: int):
        def hook(_module: nn.Module, _args: Any, output: Any) -> None:
            states[index + 1] = output[0] if isinstance(output, tuple) else output
            if index == len(layers) - 1:
                raise _StopForward  # the final norm and the lm head are not needed

        return hook

    if "attention_mask" in enc and not own_positions(model):
        # position ids from the mask, as generate() makes them (Qwen-VL makes its own)
        mask = enc["attention_mask"]
        enc = {**enc, "position_ids": (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)}
    handles = [layers[0].register_forward_pre_hook(first_input, with_kwargs=True)]
    handles += [layer.register_forward_hook(output_of(i)) for i, layer in enumerate(layers)]
    try:
        model(**enc, use_cache=False)
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return [s.float() for s in states if s is not None]


def _batches(
    model: nn.Module,
    processor: Any,
    prompts: Sequence[str],
    images: Sequence[Any] | None,
    batch_size: int,
) -> Iterator[tuple[int, list[torch.Tensor], torch.Tensor, np.ndarray, torch.Tensor]]:
    """Per batch: offset, layer states, attention mask, modality codes, input ids."""
    for start in range(0, len(prompts), batch_size):
        batch_images = None if images is None else images[start : start + batch_size]
        enc = _encode(model, processor, prompts[start : start + batch_size], batch_images)
        with torch.no_grad():
            states = _layer_states(model, enc)
        ids = enc["input_ids"]
        mask = enc.get("attention_mask", torch.ones_like(ids))
        yield start, states, mask.bool().cpu(), _modalities(model, processor, ids), ids.cpu()


def hidden_states(
    model: nn.Module,
    processor: Any,
    prompts: Sequence[str],
    images: Sequence[Any] | None = None,
    *,
    batch_size: int = 32,
) -> dict[str, Any]:
    """Every layer's hidden state at every (non-padding) position of every input.

    Args:
        model: a LLaVA (or causal LM, then ``images`` must be None).
        processor: its processor (or tokenizer).
        prompts: full prompts (with the image token where an image goes).
        images: one image per prompt, or None for text-only prompts.
        batch_size: prompts per forward pass.

    Returns:
        ``{"states": float32 array (n_positions, n_layers + 1, hidden), "meta": DataFrame}`` with
        one meta row per position: ``input`` (index into prompts), ``position`` (0-based within
        the unpadded input), ``token_id`` and ``modality`` ("image", "text" or "special").
        Save with ``save_states(path, {"states": out["states"]}, out["meta"])``.
    """
    _check_inputs(prompts, images, batch_size)
    chunks: list[np.ndarray] = []
    metas: list[pd.DataFrame] = []
    for start, states, mask, codes, ids in _batches(model, processor, prompts, images, batch_size):
        stacked = torch.stack(states, dim=2).cpu().numpy()  # (B, T, L + 1, H)
        keep = mask.numpy()
        rows, cols = np.nonzero(keep)
        position = np.cumsum(keep, axis=1) - 1  # index among the non-padding tokens
        chunks.append(stacked[rows, cols])
        metas.append(
            pd.DataFrame(
                {
                    "input": start + rows,
                    "position": position[rows, cols],
                    "token_id": ids.numpy()[rows, cols],
                    "modality": _MODALITY_NAMES[codes[rows, cols]],
                }
            )
        )
    meta = pd.concat(metas, ignore_index=True)
    return {"states": np.concatenate(chunks, axis=0).astype(np.float32), "meta": meta}


def pooled_states(
    model: nn.Module,
    processor: Any,
    prompts: Sequence[str],
    images: Sequence[Any] | None = None,
    *,
    positions: str = "image",
    batch_size: int = 32,
) -> list[np.ndarray]:
    """Per layer (layer 0 = embeddings), the mean state over the selected positions of each input.

    ``positions``: ``"image"`` (image tokens), ``"text"`` (text tokens, special tokens excluded)
    or ``"all"`` (every non-padding position). Used for layer-by-layer CKA between two models.

    Returns:
        ``n_layers + 1`` float32 arrays of shape ``(len(prompts), hidden)``.
    """
    if positions not in POOL_POSITIONS:
        raise ValueError(f"positions must be one of {POOL_POSITIONS}, got {positions!r}")
    _check_inputs(prompts, images, batch_size)
    pooled: list[list[np.ndarray]] = []
    for start, states, mask, codes, _ids in _batches(model, processor, prompts, images, batch_size):
        select = mask.numpy().copy()
        if positions == "image":
            select &= codes == 1
        elif positions == "text":
            select &= codes == 0
        empty = np.flatnonzero(select.sum(1) == 0)
        if empty.size:
            raise ValueError(f"input {start + int(empty[0])} has no {positions!r} positions")
        weights = torch.from_numpy(select).to(states[0].device, states[0].dtype).unsqueeze(-1)
        means = [((s * weights).sum(1) / weights.sum(1)).cpu().numpy() for s in states]
        pooled.append(means)
    return [np.concatenate(per_layer).astype(np.float32) for per_layer in zip(*pooled, strict=True)]


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same directory, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    npz = Path(path)
    if npz.suffix != ".npz":
        raise ValueError(f"path must end in .npz (meta goes next to it as .parquet), got {path!r}")
    return npz, npz.with_suffix(".parquet")


def save_states(
    path: str | os.PathLike[str], arrays: dict[str, np.ndarray], meta: pd.DataFrame
) -> None:
    """Save arrays to ``path`` (.npz) and ``meta`` to the sibling .parquet, both atomically.

    Every array has one row per ``meta`` row (axis 0).
    """
    npz, parquet = _paths(path)
    if not arrays or not all(
        isinstance(k, str) and isinstance(v, np.ndarray) for k, v in arrays.items()
    ):
        raise ValueError(f"arrays must be a non-empty dict of name -> ndarray, got {type(arrays)}")
    if not isinstance(meta, pd.DataFrame):
        raise ValueError(f"meta must be a pandas DataFrame, got {type(meta).__name__}")
    for name, array in arrays.items():
        if array.ndim == 0 or array.shape[0] != len(meta):
            raise ValueError(
                f"array {name!r} has shape {array.shape} but meta has {len(meta)} rows"
            )
    _atomic_write(npz, lambda handle: np.savez(handle, **arrays))
    _atomic_write(parquet, lambda handle: meta.to_parquet(handle, index=False))


def load_states(path: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Load what :func:`save_states` wrote: ``(arrays, meta)``."""
    npz, parquet = _paths(path)
    with np.load(npz, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    return arrays, pd.read_parquet(parquet)
