"""The paper preset's LLaVA-1.5 training, from the config's ``training`` section: a VLM composed
of a staged LLM and vision encoder with a fresh projector (Table 3's start), and the recipe's
two stages (:func:`ifl.train.hf_trainer.train`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ifl.io import atomic_dir
from ifl.models.prompts import CHAT_TEMPLATE
from ifl.models.registry import compose_llava
from ifl.train.hf_trainer import StageSpec, train


def compose(
    llm_dir: str | Path,
    vision_dir: str | Path,
    out_dir: str | Path,
    training: Mapping[str, Any],
    *,
    seed: int,
) -> None:
    """Compose a LLaVA-1.5 from a staged backbone and encoder and save it to ``out_dir``."""
    model, processor = compose_llava(
        llm_dir,
        vision_dir,
        seed=seed,
        dtype=torch.bfloat16 if training["bf16"] else torch.float32,
        vision_feature_layer=training["vision_feature_layer"],
        # the format the trainer writes, so that generation prompts match training
        chat_template=CHAT_TEMPLATE,
    )
    processor.image_processor.do_pad = training["image_aspect_ratio"] == "pad"
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)


def fit_stage(
    model_dir: str | Path,
    data: pd.DataFrame,
    out_dir: str | Path,
    training: Mapping[str, Any],
    *,
    stage: int,
    stage_name: str,
    seed: int,
    device: torch.device,
    threads: int,
    final_fraction: float = 0.0,
) -> pd.DataFrame:
    """The recipe's stage ``stage`` on ``data``. The seed (``seed + 30 + stage``) depends on the
    stage only, so that a remedy variant trains exactly like its base but for the data."""
    return train(
        model_dir,
        data,
        out_dir,
        StageSpec.from_config(training[f"stage{stage}"]),
        mode="plain" if stage == 1 else "chat",
        max_length=training["max_length"],
        bf16=training["bf16"] and device.type == "cuda",
        gradient_checkpointing=training["gradient_checkpointing"],
        save_steps=training["save_steps"],
        seed=seed + 30 + stage,
        cpu=device.type == "cpu",
        workers=max(0, threads - 1),
        stage_name=stage_name,
        final_fraction=final_fraction,
    )
