"""The organism's training stages: LM pretraining, vision pretraining, LLaVA stages 1 and 2,
and stage 2 on a remedy's mix (:func:`stage2_phased`).

Each stage reads what the previous one saved with ``save_pretrained`` and writes an ordinary
Hugging Face checkpoint (plus ``loss.csv``) atomically, so that an interrupted job never leaves a
half-written model behind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from transformers import (
    AutoTokenizer,
    CLIPConfig,
    CLIPModel,
    CLIPTextConfig,
    CLIPVisionModel,
    LlamaForCausalLM,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from ifl.data.organism import text_dialogues
from ifl.io import atomic_dir
from ifl.models.tiny import build_llm, build_vision, build_vlm, image_processor
from ifl.train.batches import Encoded, LengthBatches, collate, encode, labelled_counts, lengths
from ifl.train.induction import content_vocab, copy_loss, lookup_probe
from ifl.train.loop import fit


def _n_examples(schedule: Mapping[str, Any], cap: int = 40_000) -> int:
    return int(min(cap, max(schedule["batch_size"], schedule["steps"] * schedule["batch_size"])))


def pixel_tensor(images: np.ndarray, image_size: int) -> torch.Tensor:
    """Normalise rendered scenes exactly as the saved processor does at inference."""
    proc = image_processor(image_size)
    return proc(list(images), return_tensors="pt")["pixel_values"]


def _fit_lm(
    model,
    tok,
    loss_fn,
    schedule: Mapping[str, Any],
    out_dir: Path,
    *,
    seed: int,
    desc: str,
    probes: Mapping[str, Callable[[], Any]] | None = None,
    probe_every: int = 100,
) -> pd.DataFrame:
    """Train a causal LM with :func:`ifl.train.loop.fit` (the zero-shot lookup always among the
    probes) and save it, its tokenizer and ``loss.csv`` atomically."""
    curve = fit(
        model.parameters(),
        loss_fn,
        steps=schedule["steps"],
        lr=schedule["lr"],
        seed=seed,
        desc=desc,
        probes=lookup_probe(model, tok) | dict(probes or {}),
        probe_every=probe_every,
    )
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        curve.to_csv(tmp / "loss.csv", index=False)
    return curve


def pretrain_induction(
    tokenizer_dir: Path,
    arch: Mapping[str, int],
    schedule: Mapping[str, Any],
    out_dir: Path,
    *,
    seed: int,
    device: torch.device,
) -> pd.DataFrame:
    """Train a fresh Llama of shape ``arch`` on the copy task until it has an induction head.

    The checkpoint is the common starting point of every backbone (the task has no language).
    ``loss.csv`` records the zero-shot lookup accuracy every 100 steps: the head forms abruptly.
    """
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    model = build_llm(tok, arch, seed).to(device)
    model.train()
    vocab = content_vocab(tok)

    def loss_fn(rng: np.random.Generator) -> torch.Tensor:
        return copy_loss(
            model, rng, schedule, vocab=vocab, bos_id=tok.bos_token_id,
            batch_size=schedule["batch_size"],
        )  # fmt: skip

    return _fit_lm(model, tok, loss_fn, schedule, out_dir, seed=seed, desc="induction")


def pretrain_llm(
    init_dir: Path,
    scenes: list,
    mix: Mapping[str, float],
    schedule: Mapping[str, Any],
    copy_task: Mapping[str, Any],
    out_dir: Path,
    *,
    seed: int,
    device: torch.device,
    probes: Mapping[str, Callable[[Any, Any], Callable[[], Any]]] | None = None,
    probe_every: int = 100,
) -> pd.DataFrame:
    """Pretrain a chat LM on text-only dialogues in ``mix``, from ``init_dir`` (the induction
    checkpoint, or a base LM that started from it).

    Each dialogue is a scene description and ``turns`` questions about it in one language. The
    loss is on every token (the LM learns its languages; a random ``lm_fraction`` of the prompt
    tokens stands in for all, see :func:`thin_labels`) plus ``answer_weight`` times the mean
    over the answers (which are a few percent of the tokens but all of the reading). The copy
    task stays in every step with weight ``copy_weight`` (``copy_batch`` sequences): without it
    the dialogues erase the induction head within a few hundred steps (lookup 0.99 -> 0.09).
    The zero-shot lookup is measured every ``probe_every`` steps, and so is each of ``probes``
    (name -> ``make(model, tokenizer)`` returning a probe of :func:`ifl.train.loop.fit`).
    """
    tok = AutoTokenizer.from_pretrained(init_dir)
    model = LlamaForCausalLM.from_pretrained(init_dir).to(device)
    model.train()
    data = text_dialogues(scenes, mix, _n_examples(schedule), seed, turns=schedule["turns"])
    enc = encode(tok, data["prompt"].tolist(), data["target"].tolist())
    draw = LengthBatches(
        lengths(enc), schedule["batch_size"], labelled=labelled_counts(enc, loss_on_prompt=True)
    )
    vocab = content_vocab(tok)

    def loss_fn(rng: np.random.Generator) -> torch.Tensor:
        batch = collate(enc, draw(rng), tok.pad_token_id, loss_on_prompt=True)
        batch = thin_labels(batch, schedule["lm_fraction"], rng)
        loss = target_loss(
            model,
            {k: v.to(device) for k, v in batch.items()},
            norm=draw.norm,
            answer_weight=schedule["answer_weight"],
        )
        if schedule["copy_weight"]:
            loss = loss + schedule["copy_weight"] * copy_loss(
                model, rng, copy_task, vocab=vocab, bos_id=tok.bos_token_id,
                batch_size=schedule["copy_batch"],
            )  # fmt: skip
        return loss

    extra = {name: make(model, tok) for name, make in (probes or {}).items()}
    return _fit_lm(
        model, tok, loss_fn, schedule, out_dir, seed=seed, desc="pretrain-llm", probes=extra,
        probe_every=probe_every,
    )  # fmt: skip


def _augment(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Views for self-supervision: small shifts, brightness and noise (colours kept)."""
    dx, dy = (int(v) for v in rng.integers(-2, 3, size=2))
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    scale = torch.from_numpy(rng.uniform(0.85, 1.15, size=(x.shape[0], 1, 1, 1)).astype(np.float32))
    noise = torch.from_numpy(rng.normal(0, 0.05, size=x.shape).astype(np.float32))
    return x * scale + noise


def pretrain_vision(
    pixels: torch.Tensor,
    captions: list[str],
    objective: str,
    tokenizer_dir: Path,
    arch: Mapping[str, int],
    image_size: int,
    patch_size: int,
    schedule: Mapping[str, Any],
    out_dir: Path,
    *,
    seed: int,
    device: torch.device,
) -> pd.DataFrame:
    """Pretrain a CLIP-architecture ViT: contrastive with English captions, or self-supervised.

    ``contrastive`` is the CLIP analogue (a tiny text tower is trained alongside and dropped);
    ``self_supervised`` is the DINOv2 analogue (SimCLR on two augmented views, no language).
    """
    vision = build_vision(arch, image_size, patch_size, seed)
    bs = schedule["batch_size"]
    if objective == "contrastive":
        tok = AutoTokenizer.from_pretrained(tokenizer_dir)
        text_cfg = CLIPTextConfig(
            vocab_size=len(tok),
            hidden_size=arch["hidden"],
            intermediate_size=arch["intermediate"],
            num_hidden_layers=2,
            num_attention_heads=arch["heads"],
            max_position_embeddings=128,
            pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        )
        clip = CLIPModel(
            CLIPConfig(
                text_config=text_cfg.to_dict(),
                vision_config=vision.config.to_dict(),
                projection_dim=arch["hidden"],
            )
        )
        clip.vision_model = vision  # train our ViT in place inside the CLIP pair
        clip.to(device).train()
        tokens = tok(
            [c + tok.eos_token for c in captions],
            add_special_tokens=False,
            padding=True,
            padding_side="right",
            return_tensors="pt",
        )

        def loss_fn(rng: np.random.Generator) -> torch.Tensor:
            rows = torch.from_numpy(rng.choice(len(pixels), size=bs, replace=False))
            return clip(
                input_ids=tokens["input_ids"][rows].to(device),
                attention_mask=tokens["attention_mask"][rows].to(device),
                pixel_values=pixels[rows].to(device),
                return_loss=True,
            ).loss

        params = clip.parameters()
    elif objective == "self_supervised":
        head = torch.nn.Sequential(
            torch.nn.Linear(arch["hidden"], arch["hidden"]),
            torch.nn.ReLU(),
            torch.nn.Linear(arch["hidden"], arch["hidden"]),
        )
        vision.to(device).train()
        head.to(device)

        def loss_fn(rng: np.random.Generator) -> torch.Tensor:
            rows = torch.from_numpy(rng.choice(len(pixels), size=bs, replace=False))
            x = pixels[rows]
            z = torch.cat(
                [
                    head(vision(pixel_values=_augment(x, rng).to(device)).pooler_output)
                    for _ in range(2)
                ]
            )
            z = F.normalize(z, dim=-1)
            sim = z @ z.T / 0.2
            sim.fill_diagonal_(float("-inf"))
            n = len(rows)
            labels = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(device)
            return F.cross_entropy(sim, labels)

        params = list(vision.parameters()) + list(head.parameters())
    else:
        raise ValueError(
            f"unknown vision objective {objective!r}; allowed: contrastive, self_supervised"
        )
    curve = fit(
        params,
        loss_fn,
        steps=schedule["steps"],
        lr=schedule["lr"],
        seed=seed,
        desc=f"pretrain-vision-{objective}",
    )
    with atomic_dir(out_dir) as tmp:
        vision.save_pretrained(tmp)
        image_processor(image_size).save_pretrained(tmp)
        curve.to_csv(tmp / "loss.csv", index=False)
    return curve


def target_loss(
    model,
    batch: dict[str, torch.Tensor],
    *,
    norm: float | None = None,
    answer_weight: float = 0.0,
    **inputs: Any,
) -> torch.Tensor:
    """Next-token cross-entropy over the labelled positions: their mean, as ``model(...).loss``,
    or their sum divided by ``norm`` (see :class:`ifl.train.batches.LengthBatches`); plus
    ``answer_weight`` times the mean over the answer tokens (``batch["answer"]``). An optional
    ``batch["weight"]`` scales each position's term in the sum.

    The output head runs on the labelled positions only: with answer-only labels that skips
    most of the vocabulary projection, the largest single matrix of a tiny LM.
    """
    labels = batch["labels"][:, 1:]
    hidden = model.model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **inputs
    ).last_hidden_state[:, :-1]
    keep = labels != -100
    logits = model.lm_head(hidden[keep])
    if not answer_weight and "weight" not in batch:
        if norm is None:
            return F.cross_entropy(logits, labels[keep])
        return F.cross_entropy(logits, labels[keep], reduction="sum") / norm
    ce = F.cross_entropy(logits, labels[keep], reduction="none")
    weighted = ce * batch["weight"][:, 1:][keep] if "weight" in batch else ce
    loss = weighted.mean() if norm is None else weighted.sum() / norm
    on_answer = batch["answer"][:, 1:][keep]
    if answer_weight and on_answer.any():
        loss = loss + answer_weight * ce[on_answer].mean()
    return loss


def thin_labels(
    batch: dict[str, torch.Tensor], fraction: float, rng: np.random.Generator
) -> dict[str, torch.Tensor]:
    """Keep the answer labels and a random ``fraction`` of the other labels, weighted
    ``1 / fraction`` (an unbiased estimate of the full sum).

    The vocabulary projection of every labelled position is most of a tiny LM's step: at a
    quarter of the prompt positions the step costs about half, and the language-model part of
    the loss keeps its expected value.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"lm_fraction must lie in (0, 1], got {fraction!r}")
    if fraction == 1:
        return batch
    labels, answer = batch["labels"], batch["answer"]
    drawn = torch.from_numpy(rng.random(tuple(labels.shape)) < fraction)
    kept = answer | drawn
    weight = torch.where(answer, 1.0, 1.0 / fraction)
    return {**batch, "labels": labels.masked_fill(~kept, -100), "weight": weight}


def _vlm_loss(
    model, enc: Encoded, pixels: torch.Tensor, pad_id: int, bs: int, device: torch.device
):
    draw = LengthBatches(lengths(enc), bs, labelled=labelled_counts(enc))

    def loss_fn(rng: np.random.Generator) -> torch.Tensor:
        rows = draw(rng)
        batch = collate(enc, rows, pad_id)
        img = enc.image[rows]
        img = img[img >= 0]
        pv = pixels[torch.from_numpy(img)].to(device) if len(img) else None
        return target_loss(
            model, {k: v.to(device) for k, v in batch.items()}, norm=draw.norm, pixel_values=pv
        )

    return loss_fn


def _image_tokens(model: LlavaForConditionalGeneration) -> int:
    return int(model.config.image_seq_length)


def stage1(
    llm_dir: Path,
    vision_dir: Path,
    pixels: torch.Tensor,
    captions: pd.DataFrame,
    schedule: Mapping[str, Any],
    out_dir: Path,
    *,
    seed: int,
    device: torch.device,
) -> pd.DataFrame:
    """LLaVA stage 1: compose LLM + ViT with a fresh projector and train the projector only."""
    llm = LlamaForCausalLM.from_pretrained(llm_dir)
    tok = AutoTokenizer.from_pretrained(llm_dir)
    vision = CLIPVisionModel.from_pretrained(vision_dir)
    model, processor = build_vlm(llm, vision, tok, seed)
    model.to(device).train()
    for name, p in model.named_parameters():
        p.requires_grad = "multi_modal_projector" in name
    enc = encode(
        tok,
        captions["prompt"].tolist(),
        captions["target"].tolist(),
        image_tokens=_image_tokens(model),
        image=captions["scene"].tolist(),
    )
    loss_fn = _vlm_loss(model, enc, pixels, tok.pad_token_id, schedule["batch_size"], device)
    return _fit_vlm(model, processor, loss_fn, schedule, out_dir, seed=seed, desc="stage1")


def stage2(
    stage1_dir: Path,
    pixels: torch.Tensor,
    instructions: pd.DataFrame,
    scenes: list,
    text_only_share: float,
    schedule: Mapping[str, Any],
    out_dir: Path,
    *,
    seed: int,
    device: torch.device,
) -> pd.DataFrame:
    """LLaVA stage 2: train projector + LLM on visual instructions plus English text-only dialogues."""
    model = LlavaForConditionalGeneration.from_pretrained(stage1_dir)
    processor = LlavaProcessor.from_pretrained(stage1_dir)
    tok = processor.tokenizer
    n_text = int(round(len(instructions) * text_only_share / max(1e-9, 1 - text_only_share)))
    text = (
        text_dialogues(scenes, {"en": 1.0}, n_text, seed + 1) if n_text else instructions.iloc[:0]
    )
    data = pd.concat(
        [instructions.assign(image=instructions["scene"]), text.assign(image=-1)], ignore_index=True
    )
    enc = encode(
        tok,
        data["prompt"].tolist(),
        data["target"].tolist(),
        image_tokens=_image_tokens(model),
        image=data["image"].tolist(),
    )
    model.to(device).train()
    for name, p in model.named_parameters():
        p.requires_grad = "vision_tower" not in name
    loss_fn = _vlm_loss(model, enc, pixels, tok.pad_token_id, schedule["batch_size"], device)
    return _fit_vlm(model, processor, loss_fn, schedule, out_dir, seed=seed, desc="stage2")


def _fit_vlm(
    model, processor, loss_fn, schedule: Mapping[str, Any], out_dir: Path, *, seed: int, desc: str
) -> pd.DataFrame:
    """Train a VLM with :func:`ifl.train.loop.fit` and save it (eval mode), its processor and
    ``loss.csv`` atomically."""
    curve = fit(
        model.parameters(),
        loss_fn,
        steps=schedule["steps"],
        lr=schedule["lr"],
        seed=seed,
        desc=desc,
    )
    model.eval()
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        curve.to_csv(tmp / "loss.csv", index=False)


def _switch(first, then, at: int):
    """A loss function that calls ``first`` for its first ``at`` calls, then ``then``."""
    calls = iter(range(10**12))

    def loss_fn(rng: np.random.Generator):
        return (first if next(calls) < at else then)(rng)

    return loss_fn


def stage2_phased(
    stage1_dir: Path,
    pixels: torch.Tensor,
    mix: pd.DataFrame,
    schedule: Mapping[str, Any],
    out_dir: Path,
    *,
    final_fraction: float,
    seed: int,
    device: torch.device,
) -> pd.DataFrame:
    """LLaVA stage 2 on a mix, with its ``final``-phase rows only in the last steps.

    One optimiser and one learning-rate schedule over ``schedule["steps"]``: the first
    ``steps - round(final_fraction * steps)`` steps sample the ``all`` rows, the rest sample
    every row (a final phase cannot be expressed by :func:`stage2`'s uniform sampling). The
    mix is a table of :func:`ifl.data.mixes.build_mix`. Without ``final`` rows this is exactly
    ``stage2(..., text_only_share=0)``.
    """
    if not 0 <= final_fraction <= 1:
        raise ValueError(f"final_fraction must lie in [0, 1], got {final_fraction!r}")
    bad = sorted(set(mix["phase"]) - {"all", "final"})
    if bad:
        raise ValueError(f"unknown phase {bad[0]!r}; expected 'all' or 'final'")
    data = pd.concat([mix[mix["phase"] == "all"], mix[mix["phase"] == "final"]], ignore_index=True)
    n_all = int((data["phase"] == "all").sum())
    if n_all == 0:
        raise ValueError("the mix has no rows outside the final phase")
    model = LlavaForConditionalGeneration.from_pretrained(stage1_dir)
    processor = LlavaProcessor.from_pretrained(stage1_dir)
    tok = processor.tokenizer
    enc = encode(
        tok,
        data["prompt"].tolist(),
        data["target"].tolist(),
        image_tokens=_image_tokens(model),
        image=data["scene"].astype(int).tolist(),
    )
    model.to(device).train()
    for name, p in model.named_parameters():
        p.requires_grad = "vision_tower" not in name
    bs = schedule["batch_size"]
    full = _vlm_loss(model, enc, pixels, tok.pad_token_id, bs, device)
    loss_fn = full
    if n_all < len(data):
        head = Encoded(enc.ids[:n_all], enc.target_start[:n_all], enc.image[:n_all])
        main = _vlm_loss(model, head, pixels, tok.pad_token_id, bs, device)
        loss_fn = _switch(
            main, full, schedule["steps"] - int(round(final_fraction * schedule["steps"]))
        )
    return _fit_vlm(model, processor, loss_fn, schedule, out_dir, seed=seed, desc="stage2-remedy")
