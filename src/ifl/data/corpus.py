"""The organism's training corpus on disk (the ``corpus`` rule's directory) and its readers.

One directory holds everything the training rules draw from: the training scenes
(``scenes.json``), their renderings (``images.npy``), the stage-1 captions
(``captions.parquet``), the language-independent stage-2 items (``visual_items.parquet``) and
their English rendering (``instruct-en.parquet``). Other languages are rendered from the items
by the ``translate`` rule.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ifl.data.organism import (
    captions,
    render_scenes,
    sample_scenes,
    text_dialogues,
    visual_instructions,
    visual_items,
)
from ifl.io import atomic_dir
from ifl.world.items import Item, item_from_json, item_to_json
from ifl.world.scenes import Scene


def write_corpus(
    out_dir: str | Path, *, n_scenes: int, n_items: int, image_size: int, seed: int
) -> None:
    """Draw the corpus from ``seed`` (scenes ``seed + 1``, items ``seed + 2``) and write it."""
    scenes = sample_scenes(n_scenes, seed + 1)
    items = visual_items(scenes, n_items, seed + 2)
    with atomic_dir(out_dir) as tmp:
        (tmp / "scenes.json").write_text(
            json.dumps([s.to_dict() for s in scenes]), encoding="utf-8"
        )
        np.save(tmp / "images.npy", render_scenes(scenes, image_size))
        captions(scenes).to_parquet(tmp / "captions.parquet", index=False)
        pd.DataFrame(
            {"scene": [s for s, _ in items], "item": [item_to_json(i) for _, i in items]}
        ).to_parquet(tmp / "visual_items.parquet", index=False)
        visual_instructions(items, "en", error_rate=0.0, seed=seed).to_parquet(
            tmp / "instruct-en.parquet", index=False
        )


def read_scenes(corpus: str | Path) -> list[Scene]:
    """The training scenes of a corpus."""
    data = json.loads((Path(corpus) / "scenes.json").read_text(encoding="utf-8"))
    return [Scene.from_dict(d) for d in data]


def read_images(corpus: str | Path) -> np.ndarray:
    """The rendered scenes, ``(n, size, size, 3)`` uint8."""
    return np.load(Path(corpus) / "images.npy")


def read_captions(corpus: str | Path) -> pd.DataFrame:
    """The stage-1 caption pairs (``scene, prompt, target``)."""
    return pd.read_parquet(Path(corpus) / "captions.parquet")


def read_visual_items(corpus: str | Path) -> list[tuple[int, Item]]:
    """The (scene, item) pairs of the stage-2 visual instructions."""
    items = pd.read_parquet(Path(corpus) / "visual_items.parquet")
    return [(int(s), item_from_json(i)) for s, i in zip(items["scene"], items["item"], strict=True)]


def tokenizer_texts(corpus: str | Path, languages: Sequence[str], *, seed: int) -> list[str]:
    """What the tokenizer learns from: 20,000 text dialogues about the corpus's scenes, evenly
    in ``languages`` and the backbones' en, zh and de (drawn from ``seed``), and the captions."""
    langs = {lang: 1.0 for lang in sorted(set(languages) | {"en", "zh", "de"})}
    texts = text_dialogues(read_scenes(corpus), langs, 20_000, seed)
    return (texts["prompt"] + texts["target"]).tolist() + read_captions(corpus)["target"].tolist()
