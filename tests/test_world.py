"""Tests of the model organism's world: scenes, rendering, lexicon, items, translator, oracle."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ifl import LANGUAGES
from ifl.world.grammar import Renderer
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
    sample_item,
)
from ifl.world.lexicon import CONCEPTS, colour_after_shape, language
from ifl.world.oracle import oracle_correct, oracle_language, word_languages
from ifl.world.render import BACKGROUND, RGB, object_side, render, save_png, shape_mask
from ifl.world.scenes import COLOURS, SHAPES, Obj, Scene, sample_scene
from ifl.world.tasks import build_tasks
from ifl.world.translate import translate, translate_with_log

KINDS = [(family, kind) for family, kinds in FAMILIES.items() for kind in kinds]


def _items(n: int, seed: int = 0) -> list[Item]:
    """``n`` items cycling through every (family, kind)."""
    return [sample_item(np.random.default_rng([seed, i]), *KINDS[i % len(KINDS)]) for i in range(n)]


ITEMS = _items(280)


# ---- scenes --------------------------------------------------------------------------------


def test_sample_scene_is_deterministic_and_valid():
    a = [sample_scene(np.random.default_rng(7)) for _ in range(3)]
    b = [sample_scene(np.random.default_rng(7)) for _ in range(3)]
    assert a == b
    scenes = [sample_scene(np.random.default_rng(s)) for s in range(300)]
    counts = Counter(len(s.objects) for s in scenes)
    assert set(counts) == {1, 2, 3, 4}
    for s in scenes:
        cells = [o.cell for o in s.objects]
        assert cells == sorted(set(cells))
        assert Scene.from_dict(json.loads(json.dumps(s.to_dict()))) == s


@pytest.mark.parametrize(
    "make",
    [
        lambda: Obj("hexagon", "red", "small", 0),
        lambda: Obj("circle", "pink", "small", 0),
        lambda: Obj("circle", "red", "huge", 0),
        lambda: Obj("circle", "red", "small", 4),
        lambda: Scene(()),
        lambda: Scene.from_dict({"objects": [{"shape": "circle"}]}),
        lambda: Scene((Obj("circle", "red", "small", 1), Obj("square", "red", "small", 1))),
    ],
)
def test_bad_scenes_raise(make):
    with pytest.raises(ValueError):
        make()


# ---- rendering -----------------------------------------------------------------------------


def _colours_present(image: np.ndarray) -> set[tuple[int, int, int]]:
    return {tuple(int(v) for v in px) for px in image.reshape(-1, 3)}


def test_render_shows_exactly_the_scene_colours_and_shapes():
    for seed in range(50):
        scene = sample_scene(np.random.default_rng(seed))
        for jitter in (None, seed):
            image = render(scene, 32, jitter_seed=jitter)
            assert image.shape == (32, 32, 3) and image.dtype == np.uint8
            expected = {RGB[o.colour] for o in scene.objects} | {BACKGROUND}
            assert _colours_present(image) == expected
            for o in scene.objects:
                y, x = divmod(o.cell, 2)
                cell = image[16 * y : 16 * y + 16, 16 * x : 16 * x + 16]
                lit = np.all(cell == RGB[o.colour], axis=-1)
                # Each cell holds exactly its object's pixels, in its shape.
                assert lit.sum() == shape_mask(o.shape, object_side(o.size, 32)).sum()


def test_shapes_are_distinguishable_at_both_sizes():
    for size in ("small", "large"):
        side = object_side(size, 32)
        areas = {shape: int(shape_mask(shape, side).sum()) for shape in SHAPES}
        assert len(set(areas.values())) == 3
        assert areas["square"] > areas["circle"] > areas["triangle"]


def test_render_and_png_are_deterministic(tmp_path):
    scene = sample_scene(np.random.default_rng(3))
    assert np.array_equal(render(scene, jitter_seed=5), render(scene, jitter_seed=5))
    moved = [render(scene, jitter_seed=s) for s in range(10)]
    assert any(not np.array_equal(moved[0], m) for m in moved[1:])
    a = save_png(render(scene), tmp_path / "a" / "x.png")
    b = save_png(render(scene), tmp_path / "b" / "x.png")
    assert a.read_bytes() == b.read_bytes()
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(a).convert("RGB")), render(scene))
    with pytest.raises(ValueError):
        render(scene, 31)


# ---- lexicon -------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_concept_has_a_surface_form(lang):
    lex = language(lang)
    assert lex.code == lang
    for concept in CONCEPTS:
        assert lex.form(concept).strip(), (lang, concept)
    for concept in [f"shape.{s}" for s in SHAPES] + ["noun.object"]:
        assert lex.gender(concept)


def test_unknown_language_and_concept_raise():
    with pytest.raises(ValueError, match="xx"):
        language("xx")
    with pytest.raises(ValueError, match="colour.pink"):
        language("en").form("colour.pink")


# ---- items ---------------------------------------------------------------------------------


def test_realise_and_describe_cover_every_kind_and_language():
    seen = set()
    for item in ITEMS[: 2 * len(KINDS)]:
        for lang in LANGUAGES:
            question, answer = realise(item, lang)
            assert question.strip() and answer.strip(), (item.kind, lang)
            assert "{" not in question + answer and "  " not in question + answer
            seen.add((item.kind, lang))
    assert len(seen) == len(KINDS) * len(LANGUAGES)
    for lang in LANGUAGES:
        assert describe(ITEMS[0].scene, lang).strip()
        assert caption(ITEMS[0].scene, lang).strip()


def test_known_english_renderings():
    scene = Scene((Obj("circle", "red", "small", 0), Obj("square", "blue", "large", 3)))
    assert describe(scene, "en") == (
        "There are two objects in the image. A small red circle is at the top left. "
        "A large blue square is at the bottom right."
    )
    assert caption(scene) == "a small red circle and a large blue square"
    rng = np.random.default_rng(0)
    detail = make_item(scene, "describe", "detail", rng)
    assert realise(detail, "en") == ("Describe this image in detail.", describe(scene, "en"))
    compare = make_item(scene, "instruct", "compare", rng)
    assert realise(compare, "en")[1] == "the blue one"
    order = make_item(scene, "instruct", "order", rng)
    assert realise(order, "en")[1] == "red, blue"
    colour = Item(scene, "short", "colour", (("target", 0), ("ref", "shape")))
    assert realise(colour, "en") == ("What colour is the circle?", "red")
    assert realise(colour, "de") == ("Welche Farbe hat der Kreis?", "rot")
    yesno = Item(
        scene, "short", "yesno", (("colour", "blue"), ("shape", "square"), ("answer", True))
    )
    assert realise(yesno, "de") == ("Gibt es auf dem Bild ein blaues Quadrat?", "ja")
    sums = Item(scene, "textqa", "arithmetic", (("a", 2), ("b", 1)))
    assert realise(sums, "en") == ("What is two plus one?", "three")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_colour_after_shape_is_the_order_of_the_descriptions(lang):
    scene = Scene((Obj(cell=0, colour="blue", shape="square", size="large"),))
    text = describe(scene, lang).lower()
    forms = set(language(lang).concepts["colour.blue"].values())
    shapes = set(language(lang).concepts["shape.square"].values())
    at = {
        kind: min(text.find(f.lower()) for f in fs if f.lower() in text)
        for kind, fs in (("colour", forms), ("shape", shapes))
    }
    assert (at["colour"] > at["shape"]) == colour_after_shape(lang)


def test_unspaced_scripts_render_without_spaces():
    for item in ITEMS[:40]:
        for lang in ("zh", "ja"):
            question, answer = realise(item, lang)
            assert " " not in question + answer + describe(item.scene, lang)


def test_items_answer_questions_that_can_be_asked():
    for item in ITEMS:
        objs = item.scene.objects
        if item.kind in ("colour", "shape"):
            target = objs[item.slot("target")]
            ref = item.slot("ref")
            attrs = {"shape": ("shape",), "size_shape": ("size", "shape"), "colour": ("colour",),
                     "size_colour": ("size", "colour"), "pos": ("cell",)}[ref]  # fmt: skip
            key = tuple(getattr(target, a) for a in attrs)
            assert sum(tuple(getattr(o, a) for a in attrs) == key for o in objs) == 1
        if item.kind == "compare":
            a, b = (objs[item.slot(k)] for k in ("a", "b"))
            assert a.size != b.size and a.colour != b.colour
    yes = [i.slot("answer") for i in _items(1200, seed=1) if i.kind == "yesno"]
    assert 0.4 < np.mean(yes) < 0.6


def test_make_item_refuses_what_cannot_be_asked():
    one = Scene((Obj("circle", "red", "small", 0),))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="compare"):
        make_item(one, "instruct", "compare", rng)
    with pytest.raises(ValueError):
        make_item(one, "short", "detail", rng)
    with pytest.raises(ValueError):
        Item(one, "short", "colour", (("target", 0),))


def test_item_json_round_trip():
    for item in ITEMS[:50]:
        assert item_from_json(item_to_json(item)) == item
    with pytest.raises(ValueError):
        item_from_json("{}")


# ---- translator ----------------------------------------------------------------------------


def test_translate_without_errors_equals_realise():
    rng = np.random.default_rng(0)
    for item in ITEMS[:60]:
        for lang in ("zh", "de", "ar", "th"):
            assert translate(item, lang, error_rate=0.0, rng=rng) == realise(item, lang)


def test_translate_error_rate_matches_expectation():
    rng = np.random.default_rng(1)
    outcomes = Counter()
    english_words = 0
    for item in ITEMS:
        _, _, log = translate_with_log(item, "ru", error_rate=0.3, rng=rng)
        outcomes.update(w.outcome for w in log)
        english_words += sum(w.form == language("en").form(w.concept) for w in log)
    total = sum(outcomes.values())
    assert total > 800
    # Each content word: English with p = 0.15, wrong word with p = 0.15 (binomial 4-sigma).
    sd = np.sqrt(0.15 * 0.85 / total)
    assert abs(outcomes["english"] / total - 0.15) < 4 * sd
    assert abs(outcomes["wrong"] / total - 0.15) < 4 * sd
    assert english_words >= outcomes["english"]


def test_translate_errors_show_in_the_text():
    rng = np.random.default_rng(2)
    latin = total = 0
    for item in ITEMS:
        question, answer, log = translate_with_log(item, "ru", error_rate=0.3, rng=rng)
        total += len(log)
        # English words are the only Latin-script words in Russian output.
        latin += sum(
            1 for form, langs in word_languages(question + " " + answer) if langs == {"en"}
        )
    assert abs(latin / total - 0.15) < 0.03


def test_translate_needs_a_generator_for_errors():
    with pytest.raises(ValueError, match="rng"):
        translate(ITEMS[0], "de", error_rate=0.2, rng=None)
    with pytest.raises(ValueError, match="error_rate"):
        Renderer("de", error_rate=1.5, rng=np.random.default_rng(0))


# ---- oracle --------------------------------------------------------------------------------


def test_oracle_language_agrees_with_rendered_text():
    for item in ITEMS:
        for lang in LANGUAGES:
            question, answer = realise(item, lang)
            assert oracle_language(question, hint=lang) == lang, (lang, question)
            assert oracle_language(answer, hint=lang) == lang, (lang, answer)


def test_oracle_language_on_descriptions_needs_no_hint():
    for item in ITEMS[::2]:
        for lang in LANGUAGES:
            assert oracle_language(describe(item.scene, lang)) == lang


def test_word_languages_segments_unspaced_text_and_marks_shared_words():
    words = [form for form, _ in word_languages("图中有三个物体。左上方有一个小的红色圆形。")]
    assert "红色" in words and "圆形" in words and "左上方" in words
    shared = dict(word_languages("no"))
    assert shared["no"] == {"en", "es"}
    assert oracle_language("no", hint="es") == "es"
    assert oracle_language("no", hint="en") == "en"
    assert oracle_language("三", hint="ja") == "ja"
    # Shared words count for the hint, and outweigh a shorter word of another language.
    assert oracle_language("三角形 red", hint="ja") == "ja"
    assert oracle_language("三角形 red") == "en"
    assert oracle_language("xyzzy 123") is None
    # Precomposed and decomposed spellings are the same word (Unicode NFC).
    precomposed = "\u0938\u095e\u0947\u0926"  # सफ़ेद with the single code point फ़
    assert [f for f, _ in word_languages(precomposed)] == ["\u0938\u092b\u093c\u0947\u0926"]
    # A word must not be found inside a longer word of a spaced script.
    assert word_languages("bored") == []


def _wrong_answer(item: Item, lang: str) -> str:
    """A fluent but wrong answer to ``item`` in ``lang``."""
    lex = language(lang)
    right = answer_concepts(item)
    if item.kind in ("detail", "caption"):
        absent = [c for c in COLOURS if f"colour.{c}" not in right][0]
        objs = tuple(Obj(o.shape, absent, o.size, o.cell) for o in item.scene.objects)
        return describe(Scene(objs), lang)
    if item.kind == "order":
        wrong = list(right)
        wrong[0] = next(c for c in CONCEPTS if c.startswith("colour.") and c != right[0])
        return lex.answer_sep.join(lex.form(c) for c in wrong)
    if item.kind == "compare":
        a, b = (item.scene.objects[item.slot(k)] for k in ("a", "b"))
        smaller = a if a.size == "small" else b
        return Renderer(lang).np("one", colour=f"colour.{smaller.colour}")
    category = right[0].split(".")[0]
    others = [c for c in CONCEPTS if c.startswith(category + ".") and c != right[0]]
    return lex.form(others[-1])


def test_oracle_correct_accepts_right_answers_in_any_language():
    for item in ITEMS:
        for lang in LANGUAGES:
            _, answer = realise(item, lang)
            assert oracle_correct(answer, item), (item.kind, lang, answer)
            assert oracle_correct("  " + answer[:1].upper() + answer[1:] + " ", item)


def test_oracle_correct_rejects_wrong_answers():
    for item in ITEMS:
        for lang in LANGUAGES:
            wrong = _wrong_answer(item, lang)
            if wrong == realise(item, lang)[1]:
                continue
            assert not oracle_correct(wrong, item), (item.kind, lang, wrong)
    assert not oracle_correct("", ITEMS[0])


def test_oracle_correct_rules():
    scene = Scene((Obj("circle", "red", "small", 0), Obj("square", "blue", "large", 3)))
    sums = Item(scene, "textqa", "arithmetic", (("a", 2), ("b", 1)))
    assert oracle_correct("two plus one is three", sums)
    assert oracle_correct("3", sums)
    assert not oracle_correct("two plus one", sums)
    count = Item(scene, "short", "count", ())
    assert oracle_correct("Auf dem Bild sind zwei Objekte. Ein kleiner roter Kreis.", count)
    assert not oracle_correct("Es gibt drei Objekte.", count)
    detail = Item(scene, "describe", "detail", ())
    assert oracle_correct("Un petit cercle rouge.", detail)  # one of two objects: half
    assert not oracle_correct("a red square and a blue circle", detail)  # colours swapped
    compare = Item(scene, "instruct", "compare", (("a", 0), ("b", 1)))
    assert oracle_correct("الأزرق", compare)
    assert not oracle_correct("the red one", compare)


# ---- task table ----------------------------------------------------------------------------


def test_build_tasks_is_deterministic_and_parallel(tmp_path):
    n = {"MaXM": 8, "LLaVA-W": 2, "VisIT": 4, "MultiQ": 4}
    langs = ["en", "zh", "de", "ar"]
    a = build_tasks(n, langs, seed=3, image_dir=tmp_path / "a")
    b = build_tasks(n, langs, seed=3, image_dir=tmp_path / "b")
    assert len(a) == sum(n.values()) * len(langs)
    pd.testing.assert_frame_equal(a.drop(columns="image"), b.drop(columns="image"))
    for pa, pb in zip(a["image"], b["image"], strict=True):
        assert Path(pa).read_bytes() == Path(pb).read_bytes()
    assert a["task_id"].is_unique and a["task_id"].iloc[0] == "MaXM-0000-en"
    assert set(a["benchmark"]) == set(BENCHMARK_OF.values())
    # The same items, scenes and images in every language.
    per_item = a.assign(stem=a["task_id"].str[:-3]).groupby("stem")
    assert (per_item["item"].nunique() == 1).all() and (per_item["image"].nunique() == 1).all()
    assert (per_item["language"].nunique() == len(langs)).all()
    for _, row in a.iterrows():
        item = item_from_json(row["item"])
        assert json.loads(row["scene"]) == item.scene.to_dict()
        assert (row["question"], row["reference"]) == realise(item, row["language"])
        assert row["answers"][0] == row["reference"]
        assert list(answer_concepts(item)) == list(row["answer_concepts"])
        assert row["description"] == describe(item.scene, row["language"])
    # Prefix-stable: fewer items give the first rows of the larger table.
    small = build_tasks({"MaXM": 3}, langs, seed=3, image_dir=tmp_path / "c")
    pd.testing.assert_frame_equal(
        small.drop(columns="image"),
        a[a["benchmark"] == "MaXM"].head(12).drop(columns="image").reset_index(drop=True),
    )
    other = build_tasks(n, langs, seed=4, image_dir=tmp_path / "d")
    assert not other["item"].equals(a["item"])


def test_build_tasks_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="xx"):
        build_tasks({"MaXM": 1}, ["xx"], seed=0, image_dir=tmp_path)
    with pytest.raises(ValueError, match="Bench"):
        build_tasks({"Bench": 1}, ["en"], seed=0, image_dir=tmp_path)
