"""A tiny model organism built end to end with the project's own code, in a few seconds.

Scenes from ``ifl.data.organism``, a BPE tokenizer trained on the world's text dialogues, a
Llama-architecture LLM and a CLIP-architecture ViT from ``ifl.models.tiny``, composed into a
LLaVA that is saved with ``save_pretrained`` (weights random and deliberately large, see
:func:`_roughen`: the tests exercise plumbing and determinism, not quality), plus a small task
table from ``ifl.world.tasks``.

Test modules wrap :func:`organism` in a session-scoped fixture; the build is cached per process,
so the modules that share it pay for it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch

from ifl.data.organism import sample_scenes, text_dialogues
from ifl.models.tiny import build_llm, build_vision, build_vlm, train_tokenizer
from ifl.world.scenes import Scene
from ifl.world.tasks import BENCHMARKS, build_tasks

SEED = 0
LANGUAGES = ("en", "de")
ITEMS_PER_BENCHMARK = 2
IMAGE_SIZE = 32
PATCH_SIZE = 8
N_IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2
VOCAB = 600
# The smoke config's sizes: big enough for every code path, small enough for milliseconds.
LLM_ARCH = {"hidden": 32, "layers": 2, "heads": 2, "intermediate": 64}
VISION_ARCH = {"hidden": 16, "layers": 2, "heads": 2, "intermediate": 32}
ROUGH_STD = 0.2


@dataclass(frozen=True)
class Organism:
    """Paths and tables of one built organism."""

    root: Path
    tokenizer_dir: Path  # the trained tokenizer alone (input of pretrain_llm)
    vlm_dir: Path  # LlavaForConditionalGeneration + LlavaProcessor (a stand-in stage-1 output)
    scenes: list[Scene]
    tasks: pd.DataFrame


def build_organism(root: Path, *, seed: int = SEED) -> Organism:
    """Build scenes, tokenizer, LLM, ViT, the composed VLM and a task table under ``root``."""
    root = Path(root)
    scenes = sample_scenes(64, seed + 1)
    mix = {lang: 1.0 for lang in LANGUAGES}
    dialogues = text_dialogues(scenes, mix, 400, seed + 3)
    tokenizer = train_tokenizer((dialogues["prompt"] + dialogues["target"]).tolist(), VOCAB)
    tokenizer_dir = root / "tokenizer"
    tokenizer.save_pretrained(tokenizer_dir)
    llm = build_llm(tokenizer, LLM_ARCH, seed + 10)
    vision = build_vision(VISION_ARCH, IMAGE_SIZE, PATCH_SIZE, seed + 20)
    model, processor = build_vlm(llm, vision, tokenizer, seed + 30)
    _roughen(model, seed + 40)
    vlm_dir = root / "vlm"
    model.save_pretrained(vlm_dir)
    processor.save_pretrained(vlm_dir)
    tasks = build_tasks(
        dict.fromkeys(BENCHMARKS, ITEMS_PER_BENCHMARK),
        list(LANGUAGES),
        seed=seed,
        image_dir=root / "images",
        image_size=IMAGE_SIZE,
    )
    return Organism(root, tokenizer_dir, vlm_dir, scenes, tasks)


def _roughen(model: torch.nn.Module, seed: int, std: float = ROUGH_STD) -> None:
    """Redraw every weight matrix with a large spread.

    At the default init (std 0.02) the logits are nearly flat and every greedy reply is the same
    repeated token, so an equality test could not fail; with std 0.2 replies differ by prompt and
    image, and any change of the numbers (padding, batching, seeding) shows up in the text.
    """
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * std)


_BUILT: dict[str, Organism] = {}


def organism(tmp_path_factory: pytest.TempPathFactory) -> Organism:
    """The session's organism, built on first use under pytest's temporary directory."""
    if "organism" not in _BUILT:
        _BUILT["organism"] = build_organism(tmp_path_factory.mktemp("organism"))
    return _BUILT["organism"]
