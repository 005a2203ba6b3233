"""Language vectors and the steering hook, with the KV cache on."""

from __future__ import annotations

import copy

import pytest
import torch
from _tiny_llava import QUESTIONS, build_tiny_causal_lm, build_tiny_llava, prompts, random_images

from ifl.models.layers import decoder_layers
from ifl.steering.vectors import language_vector, layer_states, steering

torch.set_num_threads(1)
LAYER = 1
HIDDEN = 64


@pytest.fixture(scope="module")
def llava():
    return build_tiny_llava("llama", seed=0)


@pytest.fixture(scope="module")
def inputs(llava):
    _, processor = llava
    enc = processor(
        text=prompts(QUESTIONS),
        images=random_images(len(QUESTIONS)),
        return_tensors="pt",
        padding=True,
    )
    assert (enc["attention_mask"][:, 0] == 0).any()  # genuinely left-padded
    return enc


def _generate(model, enc, **kwargs) -> torch.Tensor:
    n_prompt = enc["input_ids"].shape[1]
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=8, do_sample=False, **kwargs)
    return out[:, n_prompt:]


def _no_hooks(model) -> bool:
    return all(not layer._forward_hooks for layer in decoder_layers(model))


@pytest.mark.parametrize("positions", ["generated", "all"])
def test_zero_strength_is_token_for_token_unsteered(llava, inputs, positions: str) -> None:
    model, _ = llava
    baseline = _generate(model, inputs)
    vector = 100 * torch.randn(len(QUESTIONS), HIDDEN, generator=torch.Generator().manual_seed(1))
    with steering(model, vector, LAYER, strength=0.0, positions=positions):
        steered = _generate(model, inputs)
    assert torch.equal(steered, baseline)
    # ...while a nonzero strength of the same vector does change the output
    with steering(model, vector, LAYER, strength=1.0, positions=positions):
        assert not torch.equal(_generate(model, inputs), baseline)


def _layer_output_seen_downstream(model, run) -> torch.Tensor:
    """What flows out of decoder layer LAYER (= the input of the next layer) during ``run()``."""
    seen: list[torch.Tensor] = []
    handle = decoder_layers(model)[LAYER + 1].register_forward_pre_hook(
        lambda _m, args: seen.append(args[0].detach().clone())
    )
    try:
        with torch.no_grad():
            run()
    finally:
        handle.remove()
    assert len(seen) == 1
    return seen[0]


@pytest.mark.parametrize("positions", ["generated", "all"])
@pytest.mark.parametrize("per_row", [False, True])
def test_prefill_adds_vector_at_steered_positions(llava, inputs, positions, per_row) -> None:
    model, _ = llava
    gen = torch.Generator().manual_seed(2)
    vector = torch.randn(len(QUESTIONS), HIDDEN, generator=gen) if per_row else torch.randn(HIDDEN)
    expected_delta = vector[:, None, :] if per_row else vector

    plain = _layer_output_seen_downstream(model, lambda: model(**inputs))
    with steering(model, vector, LAYER, strength=0.5, positions=positions):
        hooked = _layer_output_seen_downstream(model, lambda: model(**inputs))

    diff = hooked - plain
    if positions == "all":
        torch.testing.assert_close(diff, (0.5 * expected_delta).expand_as(diff))
    else:
        assert torch.equal(hooked[:, :-1], plain[:, :-1])
        last = (0.5 * expected_delta).expand_as(diff)[:, -1]
        torch.testing.assert_close(diff[:, -1], last)


@pytest.mark.parametrize("positions", ["generated", "all"])
def test_decode_step_with_cache_adds_vector(llava, inputs, positions) -> None:
    """A KV-cached decode step (one position) is steered in both modes."""
    model, _ = llava
    with torch.no_grad():
        prefill = model(**inputs, use_cache=True)
    step = {
        "input_ids": prefill.logits[:, -1].argmax(-1, keepdim=True),
        "attention_mask": torch.cat(
            [inputs["attention_mask"], torch.ones(len(QUESTIONS), 1, dtype=torch.long)], dim=1
        ),
    }
    vector = torch.randn(len(QUESTIONS), HIDDEN, generator=torch.Generator().manual_seed(3))

    def decode():
        model(**step, cache=copy.deepcopy(prefill.cache), use_cache=True)

    plain = _layer_output_seen_downstream(model, decode)
    with steering(model, vector, LAYER, strength=2.0, positions=positions):
        hooked = _layer_output_seen_downstream(model, decode)
    assert hooked.shape == (len(QUESTIONS), 1, HIDDEN)
    torch.testing.assert_close(hooked - plain, 2.0 * vector[:, None, :])


class _ReferenceSteer:
    """Steer positions >= start of a full (cache-free) forward: the definition, written naively."""

    def __init__(self, vector: torch.Tensor, start: int) -> None:
        self.vector, self.start = vector, start

    def __call__(self, _module, _args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        hidden = hidden.clone()
        hidden[:, self.start :] += self.vector[:, None, :]
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def test_generated_mode_with_cache_matches_cache_free_reference(llava, inputs) -> None:
    """The cached hook reproduces steering of every generated position recomputed without cache."""
    model, _ = llava
    vector = 3 * torch.randn(len(QUESTIONS), HIDDEN, generator=torch.Generator().manual_seed(4))
    with steering(model, vector, LAYER, positions="generated"):
        cached = _generate(model, inputs)

    n_prompt = inputs["input_ids"].shape[1]
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    handle = decoder_layers(model)[LAYER].register_forward_hook(
        _ReferenceSteer(vector, n_prompt - 1)
    )
    try:
        with torch.no_grad():
            for _ in range(8):
                logits = model(
                    input_ids=ids,
                    attention_mask=mask,
                    pixel_values=inputs["pixel_values"],
                    position_ids=(mask.cumsum(-1) - 1).masked_fill(mask == 0, 0),
                    use_cache=False,
                ).logits
                ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
    finally:
        handle.remove()
    assert torch.equal(cached, ids[:, n_prompt:])
    assert not torch.equal(cached, _generate(model, inputs))  # the steering mattered


def test_all_mode_same_with_and_without_cache(llava, inputs) -> None:
    model, _ = llava
    vector = 3 * torch.randn(HIDDEN, generator=torch.Generator().manual_seed(5))
    with steering(model, vector, LAYER, positions="all"):
        with_cache = _generate(model, inputs)
        without_cache = _generate(model, inputs, use_cache=False)
    assert torch.equal(with_cache, without_cache)


def test_generated_mode_refuses_generation_without_cache(llava, inputs) -> None:
    model, _ = llava
    with (
        pytest.raises(ValueError, match="needs the KV cache"),
        steering(model, torch.ones(HIDDEN), LAYER),
    ):
        _generate(model, inputs, use_cache=False)
    assert _no_hooks(model)


def test_large_vector_steers_each_row_to_its_token(llava, inputs) -> None:
    """Known truth: a huge vector along a token's unembedding row makes the model emit that token."""
    model, _ = llava
    targets = torch.tensor([10, 20, 30, 40])
    rows = model.lm_head.weight.detach()[targets]
    vector = 1e3 * rows / rows.norm(dim=-1, keepdim=True)
    baseline = _generate(model, inputs)
    with steering(model, vector, LAYER):
        steered = _generate(model, inputs)
    assert torch.equal(steered, targets[:, None].expand_as(steered))
    assert not torch.equal(baseline, steered)


def test_hook_removed_on_exit_and_on_error(llava, inputs) -> None:
    model, _ = llava
    baseline = _generate(model, inputs)
    with steering(model, torch.ones(HIDDEN), LAYER):
        assert decoder_layers(model)[LAYER]._forward_hooks
    assert _no_hooks(model)

    wrong_batch = torch.ones(len(QUESTIONS) + 1, HIDDEN)
    with (
        pytest.raises(ValueError, match="rows but the batch has"),
        steering(model, wrong_batch, LAYER),
    ):
        _generate(model, inputs)  # generation raises inside the context
    assert _no_hooks(model)

    with pytest.raises(KeyboardInterrupt), steering(model, torch.ones(HIDDEN), LAYER):
        raise KeyboardInterrupt
    assert _no_hooks(model)
    assert torch.equal(_generate(model, inputs), baseline)


def test_steering_handles_tuple_layer_outputs() -> None:
    """Older decoder layers return tuples; the hook adds to the first element and keeps the rest."""

    class TupleLayer(torch.nn.Module):
        def forward(self, hidden):
            return hidden * 2, "extra"

    class Stack(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList([TupleLayer()])

    stack = Stack()
    x = torch.zeros(2, 3, 4)
    with steering(stack, torch.arange(4.0), 0, positions="generated"):
        out, extra = stack.layers[0](x)
    assert extra == "extra"
    assert torch.equal(out[:, -1], torch.arange(4.0).expand(2, 4))
    assert torch.equal(out[:, :-1], torch.zeros(2, 2, 4))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"positions": "prompt"}, "positions"),
        ({"layer": 4}, "layer"),
        ({"layer": -1}, "layer"),
        ({"strength": float("nan")}, "strength"),
        ({"vector": torch.ones(HIDDEN + 1)}, "hidden size"),
        ({"vector": torch.ones(1, 2, HIDDEN)}, "vector"),
        ({"vector": torch.full((HIDDEN,), float("inf"))}, "finite"),
    ],
)
def test_steering_rejects_bad_input(llava, kwargs, match) -> None:
    model, _ = llava
    args = {"vector": torch.ones(HIDDEN), "layer": LAYER} | kwargs
    with pytest.raises(ValueError, match=match), steering(model, **args):
        pass
    assert _no_hooks(model)


# ---- language vectors ---------------------------------------------------------------------

EN = "describe this image in detail ."
DE = "beschreibe dieses bild im detail ."


@pytest.mark.parametrize("reduce", ["last", "mean"])
def test_layer_states_match_hf_hidden_states(llava, reduce: str) -> None:
    """Known truth: transformers' hidden_states[layer + 1] is the output of decoder layer `layer`."""
    model, processor = llava
    enc = processor.tokenizer([DE], return_tensors="pt")
    with torch.no_grad():
        reference = model(**enc, output_hidden_states=True).hidden_states[LAYER + 1][0]
    assert enc["input_ids"][0, 0] == processor.tokenizer.bos_token_id
    expected = reference[-1] if reduce == "last" else reference[1:].mean(0)  # BOS left out
    got = layer_states(model, processor, [DE], LAYER, reduce)  # a processor is accepted too
    assert got.shape == (1, HIDDEN) and got.dtype == torch.float32
    torch.testing.assert_close(got[0], expected)


@pytest.mark.parametrize("reduce", ["last", "mean"])
def test_layer_states_ignore_padding(llava, reduce: str) -> None:
    model, processor = llava
    texts = [EN, "ja", DE + " " + EN]
    batched = layer_states(model, processor.tokenizer, texts, LAYER, reduce)
    single = torch.cat(
        [layer_states(model, processor.tokenizer, [t], LAYER, reduce) for t in texts]
    )
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("reduce", ["last", "mean"])
def test_language_vector_shape_and_sign(llava, reduce: str) -> None:
    model, processor = llava
    tok = processor.tokenizer
    vector = language_vector(model, tok, DE, EN, LAYER, reduce)
    assert vector.shape == (HIDDEN,)
    states = layer_states(model, tok, [DE, EN], LAYER, reduce)
    torch.testing.assert_close(vector, states[0] - states[1])
    torch.testing.assert_close(language_vector(model, tok, EN, DE, LAYER, reduce), -vector)
    assert vector.norm() > 0
    assert torch.count_nonzero(language_vector(model, tok, DE, DE, LAYER, reduce)) == 0


def test_last_and_mean_differ(llava) -> None:
    model, processor = llava
    last = language_vector(model, processor, DE, EN, LAYER, "last")
    mean = language_vector(model, processor, DE, EN, LAYER, "mean")
    assert not torch.allclose(last, mean)


@pytest.mark.parametrize("kind", ["mistral", "gemma"])
def test_language_vector_on_causal_lms(kind: str) -> None:
    model, tok = build_tiny_causal_lm(kind)
    vector = language_vector(model, tok, DE, EN, layer=2, reduce="mean")
    assert vector.shape == (HIDDEN,) and torch.isfinite(vector).all() and vector.norm() > 0


@pytest.mark.parametrize(
    ("texts", "layer", "reduce", "match"),
    [
        ([], 1, "last", "texts"),
        ("a text", 1, "last", "texts"),
        ([EN], 9, "last", "layer"),
        ([EN], 1, "max", "reduce"),
        ([""], 1, "last", "non-special token"),
    ],
)
def test_layer_states_reject_bad_input(llava, texts, layer, reduce, match) -> None:
    model, processor = llava
    with pytest.raises(ValueError, match=match):
        layer_states(model, processor.tokenizer, texts, layer, reduce)
