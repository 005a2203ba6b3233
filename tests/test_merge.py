"""Model merging: the end points are the fine-tuned VLM and the original LLM, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _tiny_llava import build_tiny_causal_lm, build_tiny_llava
from safetensors.torch import load_file
from transformers import LlavaForConditionalGeneration

import ifl.train.merge as merge_mod
from ifl.data.organism import sample_scenes, text_dialogues
from ifl.models.tiny import build_llm, build_vision, build_vlm, train_tokenizer
from ifl.train.merge import interpolate, llm_key, merge_llm, shard_map

torch.set_num_threads(1)
ARCH = {"hidden": 32, "layers": 2, "heads": 2, "intermediate": 64}


def _fine_tune(model: torch.nn.Module, seed: int) -> None:
    """Move every weight away from the backbone, as stage 2 does."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    """An organism-style (tied) LLM and the fine-tuned LLaVA built from it, on disk."""
    root = tmp_path_factory.mktemp("merge")
    texts = text_dialogues(sample_scenes(20, 1), {"en": 1.0, "de": 1.0}, 100, 3)
    tok = train_tokenizer((texts["prompt"] + texts["target"]).tolist(), 400)
    llm = build_llm(tok, ARCH, 1)
    vlm, processor = build_vlm(llm, build_vision(ARCH, 32, 8, 2), tok, 3)
    _fine_tune(vlm, 4)
    llm.save_pretrained(root / "llm")
    tok.save_pretrained(root / "llm")
    vlm.save_pretrained(root / "vlm")
    processor.save_pretrained(root / "vlm")
    vlm.save_pretrained(root / "vlm_sharded", max_shard_size="40KB")
    processor.save_pretrained(root / "vlm_sharded")
    return root / "vlm", root / "llm"


def _tensors(ckpt: Path) -> dict[str, torch.Tensor]:
    out = {}
    for shard in sorted(set(shard_map(ckpt).values())):
        out.update(load_file(ckpt / shard))
    return out


def test_alpha_zero_reproduces_the_fine_tuned_vlm_bit_for_bit(pair, tmp_path):
    vlm, llm = pair
    record = merge_llm(vlm, llm, 0.0, tmp_path / "m0")
    assert (tmp_path / "m0" / "model.safetensors").read_bytes() == (
        vlm / "model.safetensors"
    ).read_bytes()
    assert record["merged_tensors"] > 0 and record["copied_tensors"] > 0
    a = LlavaForConditionalGeneration.from_pretrained(vlm).eval()
    b = LlavaForConditionalGeneration.from_pretrained(tmp_path / "m0").eval()
    ids = torch.tensor([[2, 10, 11, 12]])
    with torch.no_grad():
        assert torch.equal(a(input_ids=ids).logits, b(input_ids=ids).logits)
    for name in ("config.json", "processor_config.json", "tokenizer.json", "chat_template.jinja"):
        assert (tmp_path / "m0" / name).read_bytes() == (vlm / name).read_bytes()
    assert json.loads((tmp_path / "m0" / "merge.json").read_text())["alpha"] == 0.0


def test_alpha_one_puts_the_original_llm_back_and_keeps_vision_and_projector(pair, tmp_path):
    vlm, llm = pair
    merge_llm(vlm, llm, 1.0, tmp_path / "m1")
    merged, tuned, original = _tensors(tmp_path / "m1"), _tensors(vlm), _tensors(llm)
    lm_keys = [k for k in merged if llm_key(k)]
    assert lm_keys and all(torch.equal(merged[k], original[llm_key(k)]) for k in lm_keys)
    others = [k for k in merged if not llm_key(k)]
    assert any("vision_tower" in k for k in others) and any("projector" in k for k in others)
    assert all(torch.equal(merged[k], tuned[k]) for k in others)
    assert any(
        not torch.equal(tuned[k], original[llm_key(k)]) for k in lm_keys
    )  # it was fine-tuned
    # The loaded model's language model is the original LLM, its tied head included.
    model = LlavaForConditionalGeneration.from_pretrained(tmp_path / "m1")
    ref = load_file(llm / "model.safetensors")
    state = model.model.language_model.state_dict()
    assert all(torch.equal(state[k.removeprefix("model.")], v) for k, v in ref.items())
    assert torch.equal(model.lm_head.weight, ref["model.embed_tokens.weight"])


def test_alpha_half_is_the_midpoint(pair, tmp_path):
    vlm, llm = pair
    merge_llm(vlm, llm, 0.5, tmp_path / "m")
    merged, tuned, original = _tensors(tmp_path / "m"), _tensors(vlm), _tensors(llm)
    for k, v in merged.items():
        expected = (tuned[k] + original[llm_key(k)]) / 2 if llm_key(k) else tuned[k]
        torch.testing.assert_close(v, expected, rtol=0, atol=1e-6)


def test_sharded_checkpoints_are_merged_and_written_shard_by_shard(pair, tmp_path, monkeypatch):
    vlm, llm = pair
    sharded = vlm.parent / "vlm_sharded"
    assert len(set(shard_map(sharded).values())) > 2
    writes = []
    real_save = merge_mod.save_file

    def spy(tensors, filename, metadata=None):
        writes.append((Path(filename).name, set(tensors)))
        real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(merge_mod, "save_file", spy)
    merge_llm(sharded, llm, 0.3, tmp_path / "s")
    merge_llm(vlm, llm, 0.3, tmp_path / "u")
    where = shard_map(sharded)
    for name, keys in writes[:-1]:  # one call per input shard, holding that shard only
        assert keys == {k for k, s in where.items() if s == name}
    assert shard_map(tmp_path / "s") == where
    a, b = _tensors(tmp_path / "s"), _tensors(tmp_path / "u")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_untied_llava_and_causal_lm_are_merged(tmp_path):
    vlm, processor = build_tiny_llava("llama", seed=0)
    llm, tok = build_tiny_causal_lm("llama", seed=1)
    vlm.save_pretrained(tmp_path / "vlm")
    processor.save_pretrained(tmp_path / "vlm")
    llm.save_pretrained(tmp_path / "llm")
    merge_llm(tmp_path / "vlm", tmp_path / "llm", 1.0, tmp_path / "m")
    merged, original = _tensors(tmp_path / "m"), _tensors(tmp_path / "llm")
    head = next(k for k in merged if llm_key(k) == "lm_head.weight")
    assert torch.equal(merged[head], original["lm_head.weight"])


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("model.language_model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.up_proj.weight"),
        ("language_model.model.norm.weight", "model.norm.weight"),
        ("lm_head.weight", "lm_head.weight"),
        ("language_model.lm_head.weight", "lm_head.weight"),
        ("model.vision_tower.embeddings.patch_embedding.weight", None),
        ("multi_modal_projector.linear_1.weight", None),
    ],
)
def test_key_mapping_covers_both_llava_layouts(key, expected):
    assert llm_key(key) == expected


def test_interpolate_is_exact_at_the_end_points_in_bf16_and_keeps_added_rows():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(6, 4, generator=gen).to(torch.bfloat16)
    b = torch.randn(5, 4, generator=gen)
    assert torch.equal(interpolate(a, b, 0.0), a)
    one = interpolate(a, b, 1.0)
    assert torch.equal(one[:5], b.to(torch.bfloat16)) and torch.equal(one[5:], a[5:])
    assert one.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="cannot merge shapes"):
        interpolate(torch.zeros(3), torch.zeros(4), 0.5)


def test_bad_inputs_raise(pair, tmp_path):
    vlm, llm = pair
    with pytest.raises(ValueError, match="merge alpha must be a number in"):
        merge_llm(vlm, llm, 1.5, tmp_path / "x")
    with pytest.raises(ValueError, match="no safetensors checkpoint"):
        merge_llm(tmp_path, llm, 0.5, tmp_path / "x")
    untied, _ = build_tiny_causal_lm("llama", seed=0)
    untied.save_pretrained(tmp_path / "untied")
    with pytest.raises(ValueError, match="lm_head is untied"):
        merge_llm(vlm, tmp_path / "untied", 0.5, tmp_path / "x")
    tiny, processor = build_tiny_llava("llama", seed=0)
    tiny.save_pretrained(tmp_path / "tiny")
    deeper, _ = build_tiny_causal_lm("llama", seed=0, n_layers=5)
    deeper.save_pretrained(tmp_path / "deeper")
    with pytest.raises(ValueError, match="'model.layers.4.*' has no counterpart in the VLM"):
        merge_llm(tmp_path / "tiny", tmp_path / "deeper", 0.5, tmp_path / "x")
    shallow, _ = build_tiny_causal_lm("llama", seed=0, n_layers=3)
    shallow.save_pretrained(tmp_path / "shallow")
    with pytest.raises(ValueError, match="has no counterpart 'model.layers.3"):
        merge_llm(tmp_path / "tiny", tmp_path / "shallow", 0.5, tmp_path / "x")
    assert not (tmp_path / "x").exists()  # nothing half-written
