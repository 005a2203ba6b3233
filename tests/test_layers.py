"""Layer access across LLaVA layouts and language-model families."""

from __future__ import annotations

import pytest
import torch
from _tiny_llava import TEXT_MODELS, build_tiny_causal_lm, build_tiny_llava
from torch import nn

from ifl.models.layers import decoder_layers, default_steer_layer, language_model, num_layers

torch.set_num_threads(1)


@pytest.mark.parametrize("kind", TEXT_MODELS)
def test_llava_layers_are_the_language_model_layers(kind: str) -> None:
    model, _ = build_tiny_llava(kind, n_layers=3)
    assert language_model(model) is model.model.language_model
    assert decoder_layers(model) is model.model.language_model.layers
    assert num_layers(model) == 3
    assert kind in type(decoder_layers(model)[0]).__name__.lower()


@pytest.mark.parametrize("kind", TEXT_MODELS)
def test_causal_lm_layers(kind: str) -> None:
    model, _ = build_tiny_causal_lm(kind, n_layers=2)
    assert decoder_layers(model) is model.model.layers
    assert num_layers(model) == 2
    # the bare decoder stack resolves to itself
    assert language_model(model.model) is model.model


def test_transformers4_llava_layout() -> None:
    """Old LLaVA: ``model.language_model`` is a causal LM whose ``.model`` holds the layers."""
    causal, _ = build_tiny_causal_lm("llama", n_layers=2)

    class OldLlava(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.language_model = causal

    assert decoder_layers(OldLlava()) is causal.model.layers


def test_unrelated_module_raises_clear_error() -> None:
    with pytest.raises(ValueError, match="cannot find decoder layers in Linear"):
        decoder_layers(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="Sequential"):
        num_layers(nn.Sequential(nn.Linear(2, 2)))


@pytest.mark.parametrize(
    ("n_layers", "expected"), [(30, 10), (32, 11), (40, 13), (18, 6), (4, 1), (2, 1), (1, 0)]
)
def test_default_steer_layer(n_layers: int, expected: int) -> None:
    assert default_steer_layer(n_layers) == expected


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "30"])
def test_default_steer_layer_rejects_bad_input(bad: object) -> None:
    with pytest.raises(ValueError, match="n_layers"):
        default_steer_layer(bad)  # type: ignore[arg-type]
