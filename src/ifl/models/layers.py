"""One place that knows where the decoder stack of a model lives.

transformers 5 moved the LLaVA language model to ``model.model.language_model`` (a base model
with ``.layers``), as in LLaVA-NeXT, LLaVA-OneVision, Qwen2.5-VL, Qwen3-VL, Gemma 3, Mistral 3
and InternVL; Idefics3 and SmolVLM call it ``model.model.text_model``; transformers 4 had the
LLaVA one at ``model.language_model`` (a causal LM whose ``.model`` has the layers). Plain
causal LMs keep it at ``model.model``. Every other module of the package goes through these
helpers, so a layout change is fixed here only.
"""

from __future__ import annotations

from torch import nn

# Attribute paths tried in order; the first that ends in a module with a ModuleList `.layers` wins.
_CANDIDATE_PATHS: tuple[tuple[str, ...], ...] = (
    ("model", "language_model"),  # LLaVA, transformers 5, and most VLM families
    ("model", "text_model"),  # Idefics3, SmolVLM
    ("language_model",),  # LLaVA-like models exposing the base LM directly
    ("language_model", "model"),  # LLaVA, transformers 4 (language_model is a causal LM)
    ("model",),  # *ForCausalLM
    (),  # the decoder stack itself (e.g. LlamaModel)
)


def _resolve(model: nn.Module, path: tuple[str, ...]) -> nn.Module | None:
    obj: object = model
    for name in path:
        obj = getattr(obj, name, None)
        if obj is None:
            return None
    return obj if isinstance(obj, nn.Module) else None


def language_model(model: nn.Module) -> nn.Module:
    """The decoder stack (embeddings, decoder layers, final norm) of a VLM or causal LM.

    Raises:
        ValueError: if no known attribute path leads to a module with a ``layers`` ModuleList.
    """
    for path in _CANDIDATE_PATHS:
        stack = _resolve(model, path)
        if stack is not None and isinstance(getattr(stack, "layers", None), nn.ModuleList):
            return stack
    tried = ", ".join(".".join(("model", *p, "layers")) for p in _CANDIDATE_PATHS)
    raise ValueError(f"cannot find decoder layers in {type(model).__name__}; tried {tried}")


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The decoder layers of the language model of a VLM or causal LM (0-based)."""
    return language_model(model).layers


def num_layers(model: nn.Module) -> int:
    """Number of decoder layers of ``model``."""
    return len(decoder_layers(model))


def default_steer_layer(n_layers: int) -> int:
    """The steering layer at one third of the depth: ``round(n_layers / 3)`` (paper: 10 of 30).

    The result indexes ``decoder_layers(model)`` (0-based), i.e. the hook sits on the output of
    the decoder layer with that index.
    """
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"n_layers must be a positive integer, got {n_layers!r}")
    return min(round(n_layers / 3), n_layers - 1)
