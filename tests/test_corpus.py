"""The organism's corpus directory (ifl.data.corpus): what write_corpus draws is what the readers
give back, the same for a seed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ifl.data.corpus import (
    read_captions,
    read_images,
    read_scenes,
    read_visual_items,
    tokenizer_texts,
    write_corpus,
)
from ifl.data.organism import captions, render_scenes, sample_scenes, visual_items


def test_the_corpus_reads_back_as_drawn_and_is_the_same_for_a_seed(tmp_path):
    kw = {"n_scenes": 6, "n_items": 5, "image_size": 16, "seed": 3}
    write_corpus(tmp_path / "a", **kw)
    write_corpus(tmp_path / "b", **kw)
    scenes = sample_scenes(6, 4)  # scenes from seed + 1
    assert read_scenes(tmp_path / "a") == scenes
    np.testing.assert_array_equal(read_images(tmp_path / "a"), render_scenes(scenes, 16))
    pd.testing.assert_frame_equal(read_captions(tmp_path / "a"), captions(scenes))
    assert read_visual_items(tmp_path / "a") == visual_items(scenes, 5, 5)  # items: seed + 2
    for name in ("scenes.json", "images.npy", "visual_items.parquet", "instruct-en.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_tokenizer_texts_cover_the_backbones_languages_and_the_captions(tmp_path):
    write_corpus(tmp_path, n_scenes=4, n_items=2, image_size=16, seed=0)
    texts = tokenizer_texts(tmp_path, ["fr"], seed=1)
    assert len(texts) == 20_000 + 4 and texts[-4:] == read_captions(tmp_path)["target"].tolist()
    assert texts == tokenizer_texts(tmp_path, ["fr"], seed=1)
    assert any("Farbe" in t or "farbe" in t for t in texts[:20_000])  # German is always in
