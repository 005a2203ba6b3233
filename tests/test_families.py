"""Every supported vision-language family, on a tiny random instance: it loads with its own
processor (or the stand-in where that needs torchvision), is prompted in its own chat template
with the image where the family puts it and no image at all in the text condition, answers in
batches in both conditions, exposes its language model's layers to hidden states, and is
steered exactly: strength 0 changes no token, a vector moves the hooked layer's output by that
vector. Unsupported checkpoints are refused in one line."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
import torch
from _audit_fixtures import BUILDERS, build
from PIL import Image

from ifl import generate
from ifl.models import families
from ifl.models.layers import decoder_layers
from ifl.models.processors import PixtralProcessorPil, without_video
from ifl.models.registry import entry_from_config, make_prompter
from ifl.represent.hidden import hidden_states
from ifl.steering.vectors import language_vector, steering

torch.set_num_threads(1)
TORCHVISION = importlib.util.find_spec("torchvision") is not None
# What builds each family's processor on a machine without torchvision.
STAND_IN = {"llava_onevision": "official without video", "qwen2_5_vl": "official without video",
            "qwen3_vl": "official without video", "smolvlm": "official without video",
            "internvl": "official without video", "mistral3": "own (PixtralProcessorPil)"}  # fmt: skip
QUESTION, DESCRIPTION = "what colour is the circle ?", "a red circle and two blue squares ."


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate([(40, 48), (56, 30), (64, 64)]):  # differing sizes and shapes
        path = root / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("family", list(BUILDERS))
def test_family_prompts_answers_and_is_steered_exactly(family, tmp_path, images):
    path = build(family, tmp_path / family)
    assert families.model_type(path) == family
    model, processor = families.load_vlm(path, "cpu")
    kind = families.processor_kind(processor)
    assert kind == ("official" if TORCHVISION else STAND_IN.get(family, "official"))

    # The checkpoint's own chat template: an image part in the image condition, none in the text.
    prompter = make_prompter(entry_from_config(path), processor)
    with_image = prompter(QUESTION, True, None)
    text_only = prompter(QUESTION, False, DESCRIPTION)
    image_token = families.image_token_id(model)
    ids = processor(text=[text_only], return_tensors="pt")["input_ids"]
    assert DESCRIPTION in text_only and QUESTION in text_only and image_token not in ids
    enc = processor(text=[with_image] * 3, images=families.image_batch(
        [np.asarray(Image.open(p).convert("RGB")) for p in images]), return_tensors="pt", padding=True)  # fmt: skip
    assert (enc["input_ids"] == image_token).sum(1).min() > 0  # every prompt has its image tokens

    # Batched generation in both conditions, images of different sizes in one batch.
    for prompt, imgs in ((with_image, images), (text_only, [None] * 3)):
        batch = pd.DataFrame({"prompt": [prompt] * 3, "image": imgs})
        replies, tokens = generate.generate_batch(model, processor, batch, max_new_tokens=3)
        assert len(replies) == 3 and all(isinstance(r, str) for r in replies)
        assert all(0 <= t <= 3 for t in tokens)

    # Hidden states of the language model: one image position per image token of the input.
    out = hidden_states(model, processor, [with_image] * 3, [Image.open(p) for p in images])
    n_image = int((enc["input_ids"] == image_token).sum())
    assert (out["meta"]["modality"] == "image").sum() == n_image
    assert out["states"].shape[1] == len(decoder_layers(model)) + 1

    # Steering: strength 0 is the unsteered reply token for token (KV cache on); a vector moves
    # the hooked layer's output by exactly that vector (every position, or the last prompt one).
    vector = language_vector(model, processor, "beschreibe das bild", "describe this image", 1)
    plain = model.generate(**enc, max_new_tokens=4, do_sample=False)
    for positions in ("generated", "all"):
        with steering(model, vector, 1, strength=0.0, positions=positions):
            assert torch.equal(model.generate(**enc, max_new_tokens=4, do_sample=False), plain)
    layer, seen = decoder_layers(model)[1], {}

    def grab(name):
        def hook(_module, _args, output):
            seen[name] = (output[0] if isinstance(output, tuple) else output).detach().clone()

        return hook

    first = layer.register_forward_hook(grab("raw"))  # runs before the steering hook
    for positions in ("all", "generated"):
        with steering(model, vector, 1, strength=1.0, positions=positions):
            last = layer.register_forward_hook(grab("steered"))  # runs after it
            model(**enc, use_cache=True)
            last.remove()
        moved = seen["steered"] - seen["raw"]
        expected = torch.zeros_like(moved)
        expected[:, (0 if positions == "all" else -1) :] = vector  # left padding: -1 is last
        torch.testing.assert_close(moved, expected, rtol=0, atol=1e-5)
    first.remove()


def test_pixtral_stand_in_lays_out_image_tokens_as_pixtral():
    """Rows of [IMG] per (patch x merge) square, each closed by [IMG_BREAK], the last by
    [IMG_END]: for a 48 x 64 image in 16-pixel steps, 3 rows of 4."""
    processor = PixtralProcessorPil.__new__(PixtralProcessorPil)
    processor.patch_size, processor.spatial_merge_size = 8, 2
    processor.image_token, processor.image_break_token, processor.image_end_token = (
        "[IMG]", "[IMG_BREAK]", "[IMG_END]",
    )  # fmt: skip
    row = "[IMG]" * 4
    text = processor.replace_image_token({"image_sizes": [[48, 64]]}, 0)
    assert text == f"{row}[IMG_BREAK]{row}[IMG_BREAK]{row}[IMG_END]"


def _config(tmp_path, **fields):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(fields), encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"model_type": "mllama"}, "family 'mllama' is not supported: its images enter"),
        ({"model_type": "internvl_chat", "auto_map": {"AutoModel": "x.Y"}}, "trust_remote_code"),
        ({"model_type": "bert"}, "model_type 'bert' is not an image-text-to-text architecture"),
    ],
)
def test_unsupported_checkpoints_are_refused_in_one_line(tmp_path, fields, expected):
    path = _config(tmp_path, **fields)
    with pytest.raises(ValueError, match=expected) as info:
        families.model_type(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_missing_chat_template_is_named(tmp_path):
    path = build("qwen2_5_vl", tmp_path / "qwen")
    (path / "chat_template.jinja").unlink()
    with pytest.raises(ValueError, match="ships no chat template") as info:
        families.load_vlm(path, "cpu")
    assert "\n" not in str(info.value)


def test_without_video_needs_a_video_processor():
    from transformers import LlavaProcessor

    with pytest.raises(ValueError, match="LlavaProcessor has no video processor"):
        without_video(LlavaProcessor)
