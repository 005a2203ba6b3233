"""The synthetic tasks of the recipe search (benchmarks/recipe_search.py) say what they claim."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ifl.world.items import describe
from ifl.world.scenes import sample_scene

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "recipe_search.py"
_SPEC = importlib.util.spec_from_file_location("recipe_search", _PATH)
recipe_search = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(recipe_search)

VOCAB = (10, 80)


def test_presence_batch_labels_say_whether_the_asked_pair_is_in_the_context() -> None:
    x, y = recipe_search.presence_batch(np.random.default_rng(0), 400, VOCAB, bos_id=1)
    yes, no = VOCAB[0], VOCAB[0] + 1
    assert x.shape == (400, 11) and (x[:, 0] == 1).all() and set(y.tolist()) == {yes, no}
    crossed = 0
    for row, label in zip(x.numpy(), y.numpy(), strict=True):
        pairs = set(zip(row[1:-2:2], row[2:-2:2], strict=True))
        qa, qb = row[-2:]
        assert (label == yes) == ((qa, qb) in pairs)
        assert yes not in row and no not in row  # the answer tokens never sit in the context
        keys, values = {a for a, _ in pairs}, {b for _, b in pairs}
        crossed += label == no and qa in keys and qb in values
    assert 0.4 < (y == yes).float().mean() < 0.6 and crossed > 50  # hard negatives are asked


def test_key_first_description_keeps_the_description_and_restates_every_object() -> None:
    scene = sample_scene(np.random.default_rng(3))
    for lang in ("en", "fr", "zh"):
        text = recipe_search.key_first_describe(scene, lang)
        assert text.startswith(describe(scene, lang))
        assert text.count(":") == 2 * len(scene.objects)
    english = recipe_search.key_first_describe(scene, "en")
    obj = scene.objects[0]
    assert f"the {obj.size} {obj.shape}: {obj.colour}." in english
    assert f"the {obj.size} {obj.colour} object: {obj.shape}." in english
