"""LLaVA-1.5 training of the paper preset's design grid with accelerate (optional DeepSpeed ZeRO).

Two stages, as LLaVA-1.5 (``StageSpec`` carries the hyper-parameters of each):

* stage 1 (``mode="plain"``): only the projector learns, on LLaVA-Pretrain's captions in
  LLaVA's "plain" format, ``<image>`` followed by the caption and a newline;
* stage 2 (``mode="chat"``): projector and LLM learn on multi-turn visual instructions in the
  LLaVA-1.5 conversation format ``USER: <image>\\n{question} ASSISTANT: {answer}</s>USER: ...``,
  the same format the generation prompts use (:mod:`ifl.models.prompts`), without a system
  prompt (the llava-hf chat templates have none either).

Only the assistant's tokens carry a loss; ``<image>`` is moved to the front of the first
user turn and expanded to the processor's number of image tokens. The loop is plain
accelerate: ``accelerate launch --num_processes N`` gives data parallelism, ``deepspeed`` in
the spec switches on ZeRO-2/3 (``deepspeed`` is an optional dependency, imported only then).
Every ``save_steps`` optimiser steps the full training state is saved under
``<out>.part/``; a rerun after a kill resumes from it (same data order, optimiser and
scheduler) when the settings are unchanged. The finished checkpoint (safetensors, processor,
``loss.csv``, ``train_state.json``) replaces ``out`` in one rename.

A remedy mix (:mod:`ifl.data.paper_mixes`) may hold rows of a ``final`` phase (textual
regularisation in the last steps only): with ``final_fraction`` the first steps sample only
the other rows and the last ``round(final_fraction * steps)`` sample every row, one optimiser
and one learning-rate schedule throughout (as the organism's ``stage2_phased``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image

from ifl.io import atomic_dir, write_json

log = logging.getLogger("ifl.train")
IMAGE_TOKEN = "<image>"
IGNORE = -100  # label of positions without a loss
MODES = ("plain", "chat")
TUNES = ("projector", "projector+llm")
DEEPSPEED_STAGES = {"none": 0, "zero2": 2, "zero3": 3}
STATE_FILE = "latest.json"


@dataclass(frozen=True)
class StageSpec:
    """Hyper-parameters of one training stage (config ``training.stage1`` / ``stage2``)."""

    tune: str
    lr: float
    batch_size: int
    per_device_batch_size: int
    epochs: float = 1.0
    max_steps: int | None = None
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    scheduler: str = "cosine"
    deepspeed: str = "none"

    def __post_init__(self) -> None:
        if self.tune not in TUNES:
            raise ValueError(f"tune {self.tune!r} is not one of {TUNES}")
        if self.deepspeed not in DEEPSPEED_STAGES:
            raise ValueError(
                f"deepspeed {self.deepspeed!r} is not one of {tuple(DEEPSPEED_STAGES)}"
            )
        if self.batch_size % self.per_device_batch_size:
            raise ValueError(
                f"batch_size {self.batch_size} is not a multiple of per_device_batch_size "
                f"{self.per_device_batch_size}"
            )

    @classmethod
    def from_config(cls, stage: Mapping[str, Any]) -> StageSpec:
        """The spec of a validated ``training.stage1`` or ``training.stage2`` mapping."""
        return cls(**{k: stage[k] for k in cls.__dataclass_fields__ if k in stage})

    def accumulation(self, world_size: int) -> int:
        """Gradient-accumulation steps that make ``batch_size`` over ``world_size`` processes.

        Raises:
            ValueError: if the global batch does not split evenly over the processes.
        """
        per_step = self.per_device_batch_size * world_size
        if self.batch_size % per_step:
            raise ValueError(
                f"batch_size {self.batch_size} is not a multiple of per_device_batch_size "
                f"{self.per_device_batch_size} x {world_size} processes"
            )
        return self.batch_size // per_step


# --- turning an example into token ids and labels ---------------------------------------------
def image_token_count(processor: Any) -> int:
    """How many ``<image>`` tokens the processor expands one image into (CLS, patch size and
    crop size as the checkpoint configures them), measured on a blank image (any size: the
    image processor resizes it)."""
    blank = Image.new("RGB", (64, 64))
    ids = processor(text=[IMAGE_TOKEN], images=[blank], return_tensors="pt")["input_ids"]
    return int((ids == _image_token_id(processor)).sum())


def _image_token_id(processor: Any) -> int:
    token_id = getattr(processor, "image_token_id", None)
    if token_id is None:
        token_id = processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    return int(token_id)


def pieces(
    conversations: Sequence[Mapping[str, str]], *, mode: str, has_image: bool, eos: str
) -> list[tuple[str, bool]]:
    """The example as ``(text, trained)`` pieces in the stage's format.

    ``plain``: ``<image>`` (no loss), then the first answer and a newline (loss), as LLaVA's
    stage 1. ``chat``: per round ``USER: {question} ASSISTANT:`` (no loss) and
    `` {answer}{eos}`` (loss); with an image, ``<image>\\n`` opens the first question.

    Raises:
        ValueError: on an unknown mode or a conversation without an answer.
    """
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {MODES}")
    turns = [dict(t) for t in conversations]
    if len(turns) < 2:
        raise ValueError("a training conversation needs a question and an answer")
    for t in turns:
        t["value"] = t["value"].replace(IMAGE_TOKEN, "").strip()
    if mode == "plain":
        return [(IMAGE_TOKEN if has_image else "", False), (turns[1]["value"] + "\n", True)]
    if has_image:
        turns[0]["value"] = f"{IMAGE_TOKEN}\n{turns[0]['value']}"
    out: list[tuple[str, bool]] = []
    for i in range(0, len(turns) - 1, 2):
        out.append((f"USER: {turns[i]['value']} ASSISTANT:", False))
        out.append((f" {turns[i + 1]['value']}{eos}", True))
    return out


def encode(
    conversations: Sequence[Mapping[str, str]],
    tokenizer: Any,
    *,
    mode: str,
    has_image: bool,
    image_token_id: int,
    n_image_tokens: int,
    max_length: int,
) -> tuple[list[int], list[int]]:
    """Token ids and labels of one example: ``<image>`` expanded to ``n_image_tokens`` ids, a
    BOS in front when the tokenizer adds one, labels ``-100`` outside the trained pieces, and
    the whole cut to ``max_length``.

    Raises:
        ValueError: if ``max_length`` would cut into the image tokens.
    """
    ids: list[int] = []
    labels: list[int] = []
    bos = tokenizer.bos_token_id
    if bos is not None and _adds_bos(tokenizer):
        ids, labels = [bos], [IGNORE]
    eos = tokenizer.eos_token or ""
    for text, trained in pieces(conversations, mode=mode, has_image=has_image, eos=eos):
        if not text:
            continue
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        expanded: list[int] = []
        for t in piece:  # one id per image position, as the processor expands it
            expanded += [t] * n_image_tokens if t == image_token_id else [t]
        ids += expanded
        labels += expanded if trained else [IGNORE] * len(expanded)
    if has_image and ids[:max_length].count(image_token_id) != n_image_tokens:
        raise ValueError(f"max_length {max_length} cuts into the {n_image_tokens} image tokens")
    return ids[:max_length], labels[:max_length]


def _adds_bos(tokenizer: Any) -> bool:
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id


def _has_image(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def collate(
    rows: Sequence[Mapping[str, Any]],
    processor: Any,
    *,
    mode: str,
    n_image_tokens: int,
    max_length: int,
) -> dict[str, torch.Tensor]:
    """A right-padded training batch: ``input_ids``, ``attention_mask``, ``labels`` and, when
    any row has an image, ``pixel_values`` of those rows in order (text-only rows, such as
    mix665k's ShareGPT part, have no image tokens)."""
    tok = processor.tokenizer
    image_id = _image_token_id(processor)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    encoded = [
        encode(
            r["conversations"],
            tok,
            mode=mode,
            has_image=_has_image(r.get("image")),
            image_token_id=image_id,
            n_image_tokens=n_image_tokens,
            max_length=max_length,
        )
        for r in rows
    ]
    width = max(len(ids) for ids, _ in encoded)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(encoded):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        labels[i, : len(lab)] = torch.tensor(lab)
        mask[i, : len(ids)] = 1
    batch = {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
    images = [Image.open(r["image"]).convert("RGB") for r in rows if _has_image(r.get("image"))]
    if images:
        batch["pixel_values"] = processor.image_processor(images=images, return_tensors="pt")[
            "pixel_values"
        ]
    return batch


# --- the model --------------------------------------------------------------------------------
def set_trainable(model: torch.nn.Module, tune: str) -> list[str]:
    """Freeze everything but the projector (``projector``) or the projector and the language
    model with its head (``projector+llm``); the vision tower always stays frozen. Returns the
    names of the trainable parameters."""
    if tune not in TUNES:
        raise ValueError(f"tune {tune!r} is not one of {TUNES}")
    prefixes = ["model.multi_modal_projector."]
    if tune == "projector+llm":
        prefixes += ["model.language_model.", "lm_head."]
    names = []
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(tuple(prefixes)))
        if p.requires_grad:
            names.append(name)
    if not names:
        raise ValueError(f"no parameter matches tune {tune!r} (is this a LLaVA checkpoint?)")
    return names


def _accelerator(spec: StageSpec, *, bf16: bool, cpu: bool):
    """An Accelerator with the spec's accumulation, precision and (optional) DeepSpeed plugin."""
    from accelerate import Accelerator, PartialState
    from accelerate.utils import GradientAccumulationPlugin

    world = PartialState(cpu=cpu).num_processes
    accumulation = spec.accumulation(world)
    plugin = None
    if spec.deepspeed != "none":
        try:
            import deepspeed  # noqa: F401 - optional dependency, checked here only
        except ImportError as err:
            raise ValueError(
                f"training asks for DeepSpeed {spec.deepspeed} but the optional `deepspeed` "
                "package is not installed (pip install deepspeed, or set deepspeed: none)"
            ) from err
        from accelerate import DeepSpeedPlugin

        plugin = DeepSpeedPlugin(
            zero_stage=DEEPSPEED_STAGES[spec.deepspeed],
            gradient_accumulation_steps=accumulation,
            gradient_clipping=1.0,
            zero3_save_16bit_model=True,
        )
    accelerator = Accelerator(
        cpu=cpu,
        mixed_precision="bf16" if bf16 else "no",
        deepspeed_plugin=plugin,
        # one scheduler step per optimiser step, whatever the number of processes
        step_scheduler_with_optimizer=False,
        gradient_accumulation_plugin=GradientAccumulationPlugin(
            num_steps=accumulation, sync_with_dataloader=False
        ),
    )
    if plugin is not None:
        # DeepSpeed reads the micro-batch from a prepared DataLoader; ours are prepared per
        # epoch after the model, so it is given here
        ds_config = accelerator.state.deepspeed_plugin.deepspeed_config
        ds_config["train_micro_batch_size_per_gpu"] = spec.per_device_batch_size
    return accelerator


def _fingerprint(spec: StageSpec, data: pd.DataFrame, model_dir: Path, **settings: Any) -> str:
    """What the resumable state depends on: settings, the examples and the starting weights."""
    h = hashlib.sha256(json.dumps({**asdict(spec), **settings}, sort_keys=True).encode())
    h.update("\n".join(map(str, data["id"])).encode())
    h.update((model_dir / "config.json").read_bytes())
    return h.hexdigest()


def _batches(
    data: pd.DataFrame, loader_kwargs: Mapping[str, Any], accelerator: Any, seed: int, skip: int
) -> Iterator[dict[str, torch.Tensor]]:
    """Micro-batches epoch after epoch (a seeded permutation per epoch), first ``skip`` skipped."""
    from torch.utils.data import DataLoader

    records = data.to_dict("records")
    epoch = 0
    while True:
        order = np.random.default_rng(seed + epoch).permutation(len(records))
        loader = accelerator.prepare_data_loader(
            DataLoader([records[i] for i in order], shuffle=False, **loader_kwargs)
        )
        per_epoch = len(loader)
        if skip >= per_epoch:
            skip -= per_epoch
        else:
            if skip:
                loader = accelerator.skip_first_batches(loader, skip)
                skip = 0
            yield from loader
        epoch += 1


def _phased_batches(
    head: pd.DataFrame,
    full: pd.DataFrame,
    loader_kwargs: Mapping[str, Any],
    accelerator: Any,
    seed: int,
    skip: int,
    switch: int,
) -> Iterator[dict[str, torch.Tensor]]:
    """``head``'s micro-batches until ``switch`` of them were drawn, then ``full``'s (in its
    own seeded order); the first ``skip`` micro-batches of the whole stream are skipped."""
    if skip < switch:
        stream = _batches(head, loader_kwargs, accelerator, seed, skip)
        for _ in range(switch - skip):
            yield next(stream)
        skip = switch
    yield from _batches(full, loader_kwargs, accelerator, seed + 1, skip - switch)


def final_phase_start(total: int, final_fraction: float) -> int:
    """The optimiser step from which a mix's ``final`` rows are sampled too."""
    if not 0 < final_fraction < 1:
        raise ValueError(f"final_fraction must lie in (0, 1), got {final_fraction!r}")
    return total - int(round(final_fraction * total))


def micro_batches_per_epoch(n_examples: int, per_device: int, world: int) -> int:
    """Batches each process sees per epoch (accelerate pads the last round to full size)."""
    return math.ceil(math.ceil(n_examples / per_device) / world)


def train(
    model_dir: str | Path,
    data: pd.DataFrame,
    out_dir: str | Path,
    spec: StageSpec,
    *,
    mode: str,
    max_length: int = 2048,
    bf16: bool = False,
    gradient_checkpointing: bool = False,
    save_steps: int = 250,
    seed: int = 0,
    cpu: bool = False,
    workers: int = 0,
    stage_name: str = "",
    final_fraction: float = 0.0,
) -> pd.DataFrame:
    """Train the LLaVA in ``model_dir`` on ``data`` (rows of :func:`ifl.data.llava_data.read_llava_json`)
    and save the result to ``out_dir`` (safetensors, processor, ``loss.csv``, ``train_state.json``).

    Resumes from ``<out_dir>.part/`` when a previous run with the same settings was interrupted.
    When ``data`` has a ``phase`` column with ``final`` rows, those join the sampling only for
    the last ``final_fraction`` of the steps (see the module docstring).

    Returns:
        The loss curve (``stage``, ``step``, ``loss``: the mean over the step's examples).
    """
    from transformers import AutoProcessor, LlavaForConditionalGeneration, get_scheduler

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if data.empty:
        raise ValueError("no training examples")
    accelerator = _accelerator(spec, bf16=bf16, cpu=cpu)
    world = accelerator.num_processes
    accumulation = spec.accumulation(world)
    per_epoch = micro_batches_per_epoch(len(data), spec.per_device_batch_size, world)
    # max_steps overrides the epochs, as in transformers' Trainer (the data cycles as needed)
    total = spec.max_steps or max(1, int(per_epoch * spec.epochs) // accumulation)
    stage_name = stage_name or f"{mode}-{spec.tune}"
    settings = {"mode": mode, "max_length": max_length, "bf16": bf16, "seed": seed, "world": world}
    final = data["phase"].eq("final").to_numpy() if "phase" in data.columns else None
    phased = final is not None and bool(final.any())
    if phased:
        if final.all():
            raise ValueError("the mix has no rows outside the final phase")
        switch = final_phase_start(total, final_fraction)
        settings["final_fraction"] = final_fraction  # part of the resumable state
    fingerprint = _fingerprint(spec, data, model_dir, **settings)

    torch.manual_seed(seed)
    # Under DeepSpeed the fp32 master weights live in the optimiser: load bf16 weights then.
    dtype = torch.bfloat16 if bf16 and spec.deepspeed != "none" else torch.float32
    model = LlavaForConditionalGeneration.from_pretrained(model_dir, dtype=dtype)
    processor = AutoProcessor.from_pretrained(model_dir)
    processor.tokenizer.padding_side = "right"  # training pads on the right; saved as left below
    model.config.use_cache = False
    set_trainable(model, spec.tune)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    scheduler = get_scheduler(
        spec.scheduler,
        optimizer,
        num_warmup_steps=math.ceil(spec.warmup_ratio * total),
        num_training_steps=total,
    )
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    part = out_dir.with_name(out_dir.name + ".part")
    step, curve = _resume(accelerator, part, fingerprint)
    loader_kwargs = {
        "batch_size": spec.per_device_batch_size,
        "num_workers": workers,
        "collate_fn": partial(
            collate,
            processor=processor,
            mode=mode,
            n_image_tokens=image_token_count(processor),
            max_length=max_length,
        ),
    }
    if phased:
        batches = _phased_batches(
            data[~final], data, loader_kwargs, accelerator, seed,
            skip=step * accumulation, switch=switch * accumulation,
        )  # fmt: skip
    else:
        batches = _batches(data, loader_kwargs, accelerator, seed, skip=step * accumulation)
    model.train()
    losses: list[torch.Tensor] = []
    while step < total:
        batch = next(batches)
        with accelerator.accumulate(model):
            loss = model(**batch).loss
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(params, 1.0)
            optimizer.step()
            if accelerator.sync_gradients:
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach().float())
        if not accelerator.sync_gradients:
            continue
        value = float(accelerator.gather(torch.stack(losses).mean().reshape(1)).mean())
        losses.clear()
        if not math.isfinite(value):
            raise FloatingPointError(f"{stage_name}: loss became {value} at step {step}")
        curve.append(value)
        step += 1
        if step % 10 == 0 or step == total:
            log.info("%s step %d/%d loss %.4f", stage_name, step, total, value)
        if step % save_steps == 0 and step < total:
            _checkpoint(accelerator, part, step, curve, fingerprint)
    loss = pd.DataFrame({"stage": stage_name, "step": np.arange(len(curve)), "loss": curve})
    _save(accelerator, model, processor, out_dir, loss, spec, settings, bf16=bf16)
    if accelerator.is_main_process:
        shutil.rmtree(part, ignore_errors=True)
    accelerator.wait_for_everyone()
    return loss


def _resume(accelerator: Any, part: Path, fingerprint: str) -> tuple[int, list[float]]:
    """The step and loss curve of the last checkpoint under ``part`` (loaded into the prepared
    objects), or ``(0, [])``; another run's checkpoints are discarded."""
    state = part / STATE_FILE
    if state.is_file():
        meta = json.loads(state.read_text(encoding="utf-8"))
        if meta.get("fingerprint") == fingerprint:
            accelerator.load_state(str(part / f"checkpoint-{meta['step']}"))
            log.info("resuming from step %d (%s)", meta["step"], part)
            return int(meta["step"]), list(meta["loss"])
    accelerator.wait_for_everyone()
    if accelerator.is_main_process and part.exists():
        shutil.rmtree(part)  # settings, data or starting weights changed: start over
    accelerator.wait_for_everyone()
    return 0, []


def _checkpoint(
    accelerator: Any, part: Path, step: int, curve: list[float], fingerprint: str
) -> None:
    """Save the full training state as ``checkpoint-<step>``; ``latest.json`` (written last,
    atomically) names it, and older checkpoints are removed only after that."""
    target = part / f"checkpoint-{step}"
    accelerator.save_state(str(target))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json({"step": step, "loss": curve, "fingerprint": fingerprint}, part / STATE_FILE)
        for old in part.glob("checkpoint-*"):
            if old != target:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _save(
    accelerator: Any,
    model: Any,
    processor: Any,
    out_dir: Path,
    loss: pd.DataFrame,
    spec: StageSpec,
    settings: Mapping[str, Any],
    *,
    bf16: bool,
) -> None:
    """Write the trained checkpoint atomically (main process; ZeRO-3 shards gathered first)."""
    accelerator.wait_for_everyone()
    state = accelerator.get_state_dict(model)  # collective under ZeRO-3: every rank calls it
    if not accelerator.is_main_process:
        return
    unwrapped = accelerator.unwrap_model(model)
    if bf16:  # LLaVA's released checkpoints are bf16; halves the disk and the load time
        state = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in state.items()}
        unwrapped.config.dtype = torch.bfloat16
    unwrapped.config.use_cache = True
    processor.tokenizer.padding_side = "left"  # generation pads on the left
    with atomic_dir(out_dir) as tmp:
        unwrapped.save_pretrained(tmp, state_dict=state)
        processor.save_pretrained(tmp)
        loss.to_csv(tmp / "loss.csv", index=False)
        (tmp / "train_state.json").write_text(
            json.dumps({**asdict(spec), **settings, "steps": len(loss)}, indent=2, sort_keys=True)
            + "\n",
            encoding="utf-8",
        )
