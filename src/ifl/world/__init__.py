"""The model organism: a synthetic multilingual world of scenes, lexicon and tasks."""

from ifl.world.items import (
    BENCHMARK_OF,
    FAMILIES,
    Item,
    answer_concepts,
    caption,
    describe,
    item_from_json,
    item_to_json,
    make_item,
    realise,
)
from ifl.world.oracle import oracle_correct, oracle_language, word_languages
from ifl.world.render import render, save_png
from ifl.world.scenes import Obj, Scene, sample_scene
from ifl.world.tasks import build_tasks
from ifl.world.translate import translate

__all__ = [
    "BENCHMARK_OF",
    "FAMILIES",
    "Item",
    "Obj",
    "Scene",
    "answer_concepts",
    "build_tasks",
    "caption",
    "describe",
    "item_from_json",
    "item_to_json",
    "make_item",
    "oracle_correct",
    "oracle_language",
    "realise",
    "render",
    "sample_scene",
    "save_png",
    "translate",
    "word_languages",
]
