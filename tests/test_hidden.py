"""Input embeddings, per-layer hidden states, pooled states and their storage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from _tiny_llava import (
    N_IMAGE_TOKENS,
    QUESTIONS,
    build_tiny_causal_lm,
    build_tiny_llava,
    prompts,
    random_images,
)

from ifl.represent.hidden import (
    hidden_states,
    input_embeddings,
    load_states,
    pooled_states,
    save_states,
)

torch.set_num_threads(1)
N_LAYERS = 4
HIDDEN = 64


@pytest.fixture(scope="module")
def llava():
    return build_tiny_llava("llama", seed=0, n_layers=N_LAYERS)


@pytest.fixture(scope="module")
def data():
    return prompts(QUESTIONS), random_images(len(QUESTIONS), seed=3)


def _projector_of_vision_features(model, processor, images) -> torch.Tensor:
    """The LLaVA recipe by hand: CLIP penultimate layer, CLS dropped, through the projector."""
    pixels = processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        vision = model.model.vision_tower(pixels, output_hidden_states=True)
        return model.model.multi_modal_projector(vision.hidden_states[-2][:, 1:])


def test_image_embeddings_are_projector_output(llava, data) -> None:
    model, processor = llava
    texts, images = data
    embeds, image_mask = input_embeddings(model, processor, texts, images)
    enc = processor(text=texts, images=images, return_tensors="pt", padding=True)
    assert embeds.shape == (*enc["input_ids"].shape, HIDDEN)
    assert image_mask.dtype == torch.bool
    assert image_mask.sum(1).tolist() == [N_IMAGE_TOKENS] * len(texts)

    expected = _projector_of_vision_features(model, processor, images)
    for row in range(len(texts)):
        torch.testing.assert_close(embeds[row][image_mask[row]], expected[row])
    with torch.no_grad():
        tokens = model.get_input_embeddings()(enc["input_ids"])
    torch.testing.assert_close(embeds[~image_mask], tokens[~image_mask])


def test_text_only_embeddings_on_causal_lm() -> None:
    model, tok = build_tiny_causal_lm("llama")
    embeds, image_mask = input_embeddings(model, tok, ["describe this image", "ja"])
    assert embeds.shape == (2, 4, HIDDEN) and not image_mask.any()
    ids = tok(["describe this image", "ja"], return_tensors="pt", padding=True)["input_ids"]
    torch.testing.assert_close(embeds, model.get_input_embeddings()(ids).detach())
    out = hidden_states(model, tok, ["describe this image", "ja"])
    assert out["states"].shape == (4 + 2, N_LAYERS + 1, HIDDEN)
    assert out["meta"]["modality"].tolist() == [
        "special",
        "text",
        "text",
        "text",
        "special",
        "text",
    ]


def test_hidden_states_shapes_meta_and_values(llava, data) -> None:
    model, processor = llava
    texts, images = data
    out = hidden_states(model, processor, texts, images, batch_size=3)
    states, meta = out["states"], out["meta"]
    enc = processor(text=texts, images=images, return_tensors="pt", padding=True)
    lengths = enc["attention_mask"].sum(1)
    assert states.shape == (int(lengths.sum()), N_LAYERS + 1, HIDDEN)
    assert states.dtype == np.float32
    assert list(meta.columns) == ["input", "position", "token_id", "modality"]
    assert meta.groupby("input").size().tolist() == lengths.tolist()
    for i, group in meta.groupby("input"):
        assert group["position"].tolist() == list(range(int(lengths[i])))
        assert (group["modality"] == "image").sum() == N_IMAGE_TOKENS
        assert group["modality"].iloc[0] == "special"  # BOS
    assert set(meta["modality"]) == {"image", "text", "special"}

    # layer 0 at image positions is the projector output
    expected = _projector_of_vision_features(model, processor, images).numpy()
    for i in range(len(texts)):
        rows = ((meta["input"] == i) & (meta["modality"] == "image")).to_numpy()
        np.testing.assert_allclose(states[rows, 0], expected[i], atol=1e-6)

    # layers 0..L-1 match transformers' hidden_states; the last is before the final norm
    with torch.no_grad():
        mask = enc["attention_mask"]
        reference = model(
            **enc,
            position_ids=(mask.cumsum(-1) - 1).masked_fill(mask == 0, 0),
            output_hidden_states=True,
        ).hidden_states
    keep = mask.bool()
    for layer in range(N_LAYERS):
        np.testing.assert_allclose(states[:, layer], reference[layer][keep].numpy(), atol=1e-5)
    final_norm = model.model.language_model.norm
    with torch.no_grad():
        normed = final_norm(torch.from_numpy(states[:, N_LAYERS])).numpy()
    np.testing.assert_allclose(normed, reference[N_LAYERS][keep].numpy(), atol=1e-5)


def test_hidden_states_do_not_depend_on_batching(llava, data) -> None:
    model, processor = llava
    texts, images = data
    one = hidden_states(model, processor, texts, images, batch_size=1)
    many = hidden_states(model, processor, texts, images, batch_size=32)
    pd.testing.assert_frame_equal(one["meta"], many["meta"])
    np.testing.assert_allclose(one["states"], many["states"], atol=1e-4)


@pytest.mark.parametrize("positions", ["image", "text", "all"])
def test_pooled_states_are_means_of_hidden_states(llava, data, positions: str) -> None:
    model, processor = llava
    texts, images = data
    pooled = pooled_states(model, processor, texts, images, positions=positions, batch_size=2)
    assert len(pooled) == N_LAYERS + 1
    assert all(p.shape == (len(texts), HIDDEN) and p.dtype == np.float32 for p in pooled)
    out = hidden_states(model, processor, texts, images)
    meta = out["meta"]
    select = {
        "image": meta["modality"] == "image",
        "text": meta["modality"] == "text",
        "all": pd.Series(True, index=meta.index),
    }[positions]
    for i in range(len(texts)):
        rows = (select & (meta["input"] == i)).to_numpy()
        np.testing.assert_allclose(
            np.stack([p[i] for p in pooled]), out["states"][rows].mean(0), atol=1e-5
        )


def test_pooled_image_states_need_image_positions(llava) -> None:
    model, processor = llava
    with pytest.raises(ValueError, match="input 0 has no 'image' positions"):
        pooled_states(model, processor, ["USER: describe this image ASSISTANT:"], positions="image")
    pooled = pooled_states(
        model, processor, ["USER: describe this image ASSISTANT:"], positions="text"
    )
    assert pooled[0].shape == (1, HIDDEN)


def test_gemma_llava_hidden_states() -> None:
    model, processor = build_tiny_llava("gemma", n_layers=2)
    texts = prompts(QUESTIONS[:2])
    images = random_images(2)
    out = hidden_states(model, processor, texts, images)
    assert out["states"].shape[1:] == (3, HIDDEN)
    # layer 0 is exactly what the decoder receives: Gemma's sqrt(hidden) scale is applied inside
    # its embedding module, so token embeddings are scaled and the projector output is not
    embeds, image_mask = input_embeddings(model, processor, texts, images)
    enc = processor(text=texts, images=images, return_tensors="pt", padding=True)
    keep = enc["attention_mask"].bool()
    np.testing.assert_allclose(out["states"][:, 0], embeds[keep].numpy(), atol=1e-6)
    expected = _projector_of_vision_features(model, processor, images)
    torch.testing.assert_close(embeds[image_mask], expected.reshape(-1, HIDDEN))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prompts": []}, "prompts"),
        ({"prompts": "one prompt"}, "prompts"),
        ({"images": []}, "one image per prompt"),
        ({"batch_size": 0}, "batch_size"),
        ({"positions": "pad"}, "positions"),
    ],
)
def test_pooled_states_reject_bad_input(llava, data, kwargs, match) -> None:
    model, processor = llava
    args = {"prompts": data[0], "images": data[1]} | kwargs
    with pytest.raises(ValueError, match=match):
        pooled_states(model, processor, **args)


def test_save_load_roundtrip(tmp_path) -> None:
    rng = np.random.default_rng(0)
    arrays = {"states": rng.normal(size=(5, 3, 4)).astype(np.float32), "ids": np.arange(5)}
    meta = pd.DataFrame({"input": [0, 0, 1, 1, 1], "modality": ["image", "text"] * 2 + ["text"]})
    path = tmp_path / "sub" / "states.npz"
    save_states(path, arrays, meta)
    loaded, loaded_meta = load_states(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["states.npz", "states.parquet"]
    assert loaded.keys() == arrays.keys()
    for name, array in arrays.items():
        np.testing.assert_array_equal(loaded[name], array)
        assert loaded[name].dtype == array.dtype
    pd.testing.assert_frame_equal(loaded_meta, meta)

    save_states(path, {"states": arrays["states"][:2]}, meta.iloc[:2])  # overwrite in place
    loaded, loaded_meta = load_states(path)
    assert list(loaded) == ["states"] and len(loaded_meta) == 2


def test_save_rejects_bad_input(tmp_path) -> None:
    meta = pd.DataFrame({"input": [0, 1]})
    with pytest.raises(ValueError, match=r"\.npz"):
        save_states(tmp_path / "states.pt", {"a": np.zeros(2)}, meta)
    with pytest.raises(ValueError, match="meta has 2 rows"):
        save_states(tmp_path / "states.npz", {"a": np.zeros(3)}, meta)
    with pytest.raises(ValueError, match="DataFrame"):
        save_states(tmp_path / "states.npz", {"a": np.zeros(2)}, {"input": [0, 1]})  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
