"""Language steering vectors: the training-free remedy of the paper (section 5).

``a_lang = LLM_l(x_lang) - LLM_l(x_en)``: the difference between the layer-``l`` states of an
instruction in the query language and of the same instruction in English. During generation
``strength * a_lang`` is added to the output of decoder layer ``l``. Layers are 0-based indices
into :func:`ifl.models.layers.decoder_layers`.

The paper leaves two choices open, both parameters here:

- ``reduce``: how a sentence becomes one vector, the last token's state (``"last"``) or the mean
  over its tokens (``"mean"``);
- ``positions``: which positions are steered, only those that predict a generated token
  (``"generated"``) or also every prompt position (``"all"``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ifl.models.layers import decoder_layers, language_model
from ifl.steering.plan import POSITIONS, REDUCTIONS


class _StopForward(Exception):
    """Raised by a capture hook once the wanted layer has run, to skip the rest of the model."""


def _check_layer(model: nn.Module, layer: int) -> nn.Module:
    layers = decoder_layers(model)
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < len(layers):
        raise ValueError(f"layer must be an integer in [0, {len(layers) - 1}], got {layer!r}")
    return layers[layer]


def _first(output: Any) -> torch.Tensor:
    """Hidden states of a decoder layer output (a tensor, or a tuple whose first item it is)."""
    return output[0] if isinstance(output, tuple) else output


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def layer_states(
    model: nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    layer: int,
    reduce: str = "last",
) -> torch.Tensor:
    """Output of decoder layer ``layer`` for raw sentences, reduced over tokens.

    The texts are tokenized as they are (no chat template; BOS as the tokenizer adds it) and run
    through the language model only, text-only. Padding is ignored: position ids follow the
    attention mask (as in ``generate``). The reduction runs over the sentence's own tokens:
    padding and special tokens (BOS/EOS) are skipped, since the BOS state is the same for every
    sentence and, in real LLMs, of outsized norm, so it would only dilute a mean by length.

    Args:
        model: a LLaVA or causal LM.
        tokenizer: its tokenizer (a processor with a ``.tokenizer`` is accepted too).
        texts: the sentences.
        layer: 0-based decoder layer index.
        reduce: ``"last"`` (state of the last token) or ``"mean"`` (mean over the tokens).

    Returns:
        float32 CPU tensor of shape ``(len(texts), hidden)``.
    """
    if isinstance(texts, str) or not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError(f"texts must be a non-empty sequence of strings, got {texts!r}")
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    target = _check_layer(model, layer)
    tok = getattr(tokenizer, "tokenizer", tokenizer)
    enc = tok(list(texts), return_tensors="pt", padding=True)
    mask = enc["attention_mask"].to(_device(model))
    ids = enc["input_ids"].to(mask.device)
    specials = torch.tensor(sorted(set(tok.all_special_ids)), dtype=ids.dtype, device=ids.device)
    words = mask.bool() & ~torch.isin(ids, specials)
    if (words.sum(-1) == 0).any():
        raise ValueError(
            f"every text must give at least one non-special token, got {list(texts)!r}"
        )
    captured: dict[str, torch.Tensor] = {}

    def capture(_module: nn.Module, _args: Any, output: Any) -> None:
        captured["h"] = _first(output)
        raise _StopForward

    handle = target.register_forward_hook(capture)
    try:
        language_model(model)(
            input_ids=ids,
            attention_mask=mask,
            position_ids=(mask.cumsum(-1) - 1).masked_fill(mask == 0, 0),  # as generate()
            use_cache=False,
        )
    except _StopForward:
        pass
    finally:
        handle.remove()
    states = captured["h"].float()
    if reduce == "last":
        # last word position, whichever side the tokenizer pads on
        last = words.shape[1] - 1 - words.int().flip(-1).argmax(-1)
        out = states[torch.arange(states.shape[0], device=states.device), last]
    else:
        weights = words.to(states.dtype).unsqueeze(-1)
        out = (states * weights).sum(1) / weights.sum(1)
    return out.cpu()


def language_vector(
    model: nn.Module,
    tokenizer: Any,
    text_lang: str,
    text_en: str,
    layer: int,
    reduce: str = "last",
) -> torch.Tensor:
    """The steering vector ``a_lang = LLM_l(x_lang) - LLM_l(x_en)`` (float32 CPU, ``(hidden,)``).

    ``text_en`` is the English instruction (paper: "Describe this image in detail.") and
    ``text_lang`` its translation; see :func:`layer_states` for ``layer`` and ``reduce``.
    """
    for name, value in (("text_lang", text_lang), ("text_en", text_en)):
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r}")
    states = layer_states(model, tokenizer, [text_lang, text_en], layer, reduce)
    return states[0] - states[1]


def _check_vector(model: nn.Module, vector: torch.Tensor) -> None:
    if not isinstance(vector, torch.Tensor) or vector.ndim not in (1, 2):
        shape = tuple(vector.shape) if isinstance(vector, torch.Tensor) else type(vector).__name__
        raise ValueError(f"vector must be a (hidden,) or (batch, hidden) tensor, got {shape}")
    hidden = getattr(getattr(language_model(model), "config", None), "hidden_size", None)
    if hidden is not None and vector.shape[-1] != hidden:
        raise ValueError(
            f"vector has size {vector.shape[-1]} but the model's hidden size is {hidden}"
        )
    if not torch.isfinite(vector).all():
        raise ValueError("vector must be finite, got NaN or inf entries")


def _steering_hook(delta: torch.Tensor, positions: str):
    """A forward hook (with kwargs) adding ``delta`` to a decoder layer's output."""
    cast: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}

    def hook(_module: nn.Module, _args: Any, kwargs: dict[str, Any], output: Any) -> Any:
        hidden = _first(output)
        key = (hidden.dtype, hidden.device)
        if key not in cast:  # convert once per dtype/device, not at every decode step
            d = delta.to(dtype=hidden.dtype, device=hidden.device)
            cast[key] = d.unsqueeze(1) if d.ndim == 2 else d
        d = cast[key]
        if d.ndim == 3 and d.shape[0] != hidden.shape[0]:
            raise ValueError(
                f"per-row steering vector has {d.shape[0]} rows but the batch has {hidden.shape[0]}"
            )
        if positions == "all" or hidden.shape[1] == 1:
            # decode step with the KV cache: the single position predicts the next token
            steered = hidden + d
        else:
            if kwargs.get("use_cache") is False:
                # without the cache every step re-runs the whole sequence and the generated
                # positions can no longer be told apart from the prompt
                raise ValueError("positions='generated' needs the KV cache, got use_cache=False")
            # prefill (prompts are left-padded): only the last position predicts a new token
            steered = torch.cat([hidden[:, :-1], hidden[:, -1:] + d], dim=1)
        return (steered, *output[1:]) if isinstance(output, tuple) else steered

    return hook


@contextmanager
def steering(
    model: nn.Module,
    vector: torch.Tensor,
    layer: int,
    strength: float = 1.0,
    positions: str = "generated",
) -> Iterator[None]:
    """Add ``strength * vector`` to the output of decoder layer ``layer`` inside the block.

    The paper adds the vector "for every generated token" and is silent on the prompt. Here:

    - ``positions="generated"``: the positions whose output predicts a generated token, i.e. the
      last prompt position in the prefill forward (prompts must be LEFT-padded so that it is
      index -1 for every row) and the single position of every KV-cached decode step. Prompt
      positions before the last keep their unsteered states (and so their cached keys/values).
      Needs the KV cache (``use_cache=True``, the default of ``generate``); a forward with
      ``use_cache=False`` and more than one position raises ``ValueError``.
    - ``positions="all"``: every position of every forward, prompt included (padding too, which
      attention masks out anyway).

    ``vector`` is ``(hidden,)`` (same vector for every row) or ``(batch, hidden)`` (one vector
    per row, e.g. each row steered towards its own language; the batch must then match the
    generation batch). The hook copes with layer outputs that are a tensor or a tuple, and it is
    always removed on exit, also when the block raises.

    Example::

        with steering(model, vector, layer=10, strength=1.0):
            out = model.generate(**inputs, max_new_tokens=64)
    """
    if positions not in POSITIONS:
        raise ValueError(f"positions must be one of {POSITIONS}, got {positions!r}")
    if (
        isinstance(strength, bool)
        or not isinstance(strength, int | float)
        or not math.isfinite(strength)
    ):
        raise ValueError(f"strength must be a finite number, got {strength!r}")
    target = _check_layer(model, layer)
    _check_vector(model, vector)
    delta = float(strength) * vector.detach()
    handle = target.register_forward_hook(_steering_hook(delta, positions), with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()
