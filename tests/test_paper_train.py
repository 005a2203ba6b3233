"""The paper preset's LLaVA trainer (ifl.train.hf_trainer) on tiny local LLaVAs, on the CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from _paper_fixtures import (
    N_IMAGE_TOKENS,
    build_clip,
    build_llava_instruct,
    build_llava_pretrain,
    build_llm,
)
from safetensors.torch import load_file

from ifl.data.llava_data import read_llava_json
from ifl.models.prompts import CHAT_TEMPLATE
from ifl.models.registry import compose_llava, load_pretrained, make_prompter, resolve
from ifl.train import hf_trainer as T

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A composed tiny LLaVA (Llama backbone without pad or <image>, CLIP tower) and data."""
    root = tmp_path_factory.mktemp("train")
    build_llm(root / "llm")
    build_clip(root / "clip")
    model, processor = compose_llava(root / "llm", root / "clip", chat_template=CHAT_TEMPLATE)
    model.save_pretrained(root / "composed")
    processor.save_pretrained(root / "composed")
    build_llava_pretrain(root / "pretrain", n=4)
    build_llava_instruct(root / "instruct", root / "images", n=4)
    return {
        "root": root,
        "composed": root / "composed",
        "processor": processor,
        "pretrain": read_llava_json(
            root / "pretrain" / "blip_laion_cc_sbu_558k.json", root / "pretrain"
        ),
        "instruct": read_llava_json(root / "instruct" / "llava_v1_5_mix665k.json", root / "images"),
    }


def _spec(tune="projector", **kw):
    # no warm-up: with it the first step has lr 0 (as in transformers' Trainer)
    base = {
        "lr": 1e-2,
        "batch_size": 2,
        "per_device_batch_size": 1,
        "max_steps": 2,
        "warmup_ratio": 0,
    }
    return T.StageSpec(tune=tune, **{**base, **kw})


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path / "model.safetensors")


def _changed(a: Path, b: Path) -> set[str]:
    """Names of the tensors that differ (checkpoint keys: ``multi_modal_projector.*``,
    ``language_model.*``, ``vision_tower.*``, ``lm_head.*``)."""
    before, after = _weights(a), _weights(b)
    assert before.keys() == after.keys()
    return {k for k in before if not torch.equal(before[k], after[k])}


def test_formats_match_llava_and_the_generation_prompt():
    conv = [
        {"from": "human", "value": "What is it?\n<image>"},
        {"from": "gpt", "value": "A circle."},
        {"from": "human", "value": "Colour?"},
        {"from": "gpt", "value": "Red."},
    ]
    chat = T.pieces(conv, mode="chat", has_image=True, eos="</s>")
    assert chat == [
        ("USER: <image>\nWhat is it? ASSISTANT:", False),
        (" A circle.</s>", True),
        ("USER: Colour? ASSISTANT:", False),
        (" Red.</s>", True),
    ]
    # the first prompt is exactly what generation sends (organism / grid-VLM format)
    from ifl.models.prompts import prompt

    assert chat[0][0] == prompt("What is it?", image=True)
    plain = T.pieces(conv[:2], mode="plain", has_image=True, eos="</s>")
    assert plain == [("<image>", False), ("A circle.\n", True)]
    with pytest.raises(ValueError, match="mode 'x'"):
        T.pieces(conv, mode="x", has_image=True, eos="")


def test_collate_masks_prompts_and_expands_images(tiny):
    processor = tiny["processor"]
    n = T.image_token_count(processor)
    assert n == N_IMAGE_TOKENS
    rows = tiny["instruct"].to_dict("records")  # 4 image rows, then a text-only ShareGPT row
    batch = T.collate([rows[0], rows[-1]], processor, mode="chat", n_image_tokens=n, max_length=256)
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert batch["pixel_values"].shape[0] == 1  # only the image row brings pixels
    image_id = processor.image_token_id
    assert int((ids[0] == image_id).sum()) == n and int((ids[1] == image_id).sum()) == 0
    assert ids[0, 0] == processor.tokenizer.bos_token_id and labels[0, 0] == T.IGNORE
    assert (labels[mask == 0] == T.IGNORE).all()  # right padding carries no loss
    assert (labels[ids == image_id] == T.IGNORE).all()
    tok = processor.tokenizer
    answers = tok.decode(labels[0][labels[0] >= 0])
    assert "red circle" in answers and "USER" not in answers and answers.count("</s>") == 2
    with pytest.raises(ValueError, match="cuts into the 16 image tokens"):
        T.collate([rows[0]], processor, mode="chat", n_image_tokens=n, max_length=8)


def test_stage1_trains_only_the_projector(tiny, tmp_path):
    out = tmp_path / "stage1"
    loss = T.train(
        tiny["composed"], tiny["pretrain"], out, _spec(), mode="plain", cpu=True, max_length=64
    )
    assert list(loss.columns) == ["stage", "step", "loss"] and len(loss) == 2
    changed = _changed(tiny["composed"], out)
    assert changed and all(k.startswith("multi_modal_projector.") for k in changed)
    assert {"loss.csv", "train_state.json", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    state = json.loads((out / "train_state.json").read_text())
    assert state["steps"] == 2 and state["tune"] == "projector"
    assert not out.with_name("stage1.part").exists()
    # the checkpoint is an ordinary LLaVA: loaded and prompted as generation does
    entry, _ = resolve(out)
    model, processor = load_pretrained(out, "cpu")
    assert processor.tokenizer.padding_side == "left"
    text = make_prompter(entry, processor)("what colour is the circle ?", True, None)
    assert text == "USER: <image>\nwhat colour is the circle ? ASSISTANT:"


def test_stage2_trains_projector_and_llm_on_mixed_batches(tiny, tmp_path):
    out = tmp_path / "stage2"
    spec = _spec("projector+llm", batch_size=4, per_device_batch_size=2, max_steps=1)
    T.train(tiny["composed"], tiny["instruct"], out, spec, mode="chat", cpu=True, max_length=128)
    changed = _changed(tiny["composed"], out)
    assert any(k.startswith("language_model.") for k in changed)
    assert any(k.startswith("multi_modal_projector.") for k in changed)
    assert not any(k.startswith("vision_tower.") for k in changed)


def test_a_killed_run_resumes_to_the_same_weights(tiny, tmp_path, monkeypatch):
    spec = _spec(max_steps=3)
    kw = {"mode": "plain", "cpu": True, "max_length": 64, "save_steps": 1}
    T.train(tiny["composed"], tiny["pretrain"], tmp_path / "straight", spec, **kw)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(T, "_save", killed)
    with pytest.raises(KeyboardInterrupt):
        T.train(tiny["composed"], tiny["pretrain"], tmp_path / "resumed", spec, **kw)
    part = tmp_path / "resumed.part"
    assert json.loads((part / T.STATE_FILE).read_text())["step"] == 2
    monkeypatch.undo()
    loss = T.train(tiny["composed"], tiny["pretrain"], tmp_path / "resumed", spec, **kw)
    assert len(loss) == 3 and not part.exists()
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    straight = pd.read_csv(tmp_path / "straight" / "loss.csv")["loss"]
    assert straight.round(5).tolist() == loss["loss"].round(5).tolist()


def test_specs_fail_with_one_line_errors(tiny, tmp_path):
    with pytest.raises(
        ValueError, match="batch_size 3 is not a multiple of per_device_batch_size 2"
    ):
        _spec(batch_size=3, per_device_batch_size=2)
    with pytest.raises(ValueError, match="tune 'llm'"):
        _spec(tune="llm")
    with pytest.raises(ValueError, match="is not a multiple of per_device_batch_size 2 x 2"):
        _spec(batch_size=2, per_device_batch_size=2).accumulation(2)
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match="optional `deepspeed` package is not installed"):
            T.train(tiny["composed"], tiny["pretrain"], tmp_path / "x", _spec(deepspeed="zero3"),
                    mode="plain", cpu=True)  # fmt: skip
    spec = T.StageSpec.from_config(
        {"tune": "projector", "lr": 1e-3, "batch_size": 256, "per_device_batch_size": 32,
         "epochs": 1, "max_steps": None, "warmup_ratio": 0.03, "weight_decay": 0.0,
         "scheduler": "cosine", "deepspeed": "zero2"}
    )  # fmt: skip
    assert spec.accumulation(8) == 1 and spec.accumulation(1) == 8
