"""Language-independent task items and their realisation in any language of the lexicon.

An :class:`Item` is a scene plus a question kind and the slots that pin the question down
(which object, which reference, which operands). :func:`realise` renders its question and
answer in a language; :func:`describe` renders the scene description that replaces the image
in the text condition.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from ifl import LANGUAGES
from ifl.world.grammar import Renderer
from ifl.world.lexicon import concept_id, number_concept
from ifl.world.scenes import COLOURS, SHAPES, Obj, Scene

FAMILIES: dict[str, tuple[str, ...]] = {
    "short": ("colour", "count", "shape", "yesno"),
    "describe": ("detail",),
    "instruct": ("order", "compare"),
    "textqa": ("sides", "arithmetic"),
    "caption": ("caption",),
}
BENCHMARK_OF: dict[str, str] = {
    "short": "MaXM",
    "describe": "LLaVA-W",
    "instruct": "VisIT",
    "textqa": "MultiQ",
}
FAMILY_OF: Mapping[str, str] = MappingProxyType(
    {kind: family for family, kinds in FAMILIES.items() for kind in kinds}
)
# Slot keys each kind carries (values are JSON scalars).
_SLOT_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "colour": ("target", "ref"),
        "shape": ("target", "ref"),
        "yesno": ("colour", "shape", "answer"),
        "count": (),
        "detail": (),
        "order": (),
        "compare": ("a", "b"),
        "sides": ("shape",),
        "arithmetic": ("a", "b"),
        "caption": (),
    }
)
_SIDES = {"triangle": 3, "square": 4}
_SUMS = ((1, 1), (1, 2), (2, 1), (1, 3), (3, 1), (2, 2))


@dataclass(frozen=True)
class Item:
    """A task item: everything needed to render its question and answer in any language."""

    scene: Scene
    family: str
    kind: str
    slots: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r}; expected one of {tuple(FAMILIES)}")
        if self.kind not in FAMILIES[self.family]:
            raise ValueError(f"kind {self.kind!r} is not in family {self.family!r}")
        slots = tuple((str(k), v) for k, v in self.slots)
        if tuple(k for k, _ in slots) != _SLOT_KEYS[self.kind]:
            raise ValueError(f"kind {self.kind!r} needs slots {_SLOT_KEYS[self.kind]}, got {slots}")
        object.__setattr__(self, "slots", slots)

    def slot(self, key: str) -> Any:
        """Value of one slot."""
        return dict(self.slots)[key]


# ---- choosing items ---------------------------------------------------------------------


def _unique(objects: tuple[Obj, ...], obj: Obj, attrs: tuple[str, ...]) -> bool:
    key = tuple(getattr(obj, a) for a in attrs)
    return sum(tuple(getattr(o, a) for a in attrs) == key for o in objects) == 1


def _colour_refs(scene: Scene, obj: Obj) -> list[str]:
    if _unique(scene.objects, obj, ("shape",)):
        return ["shape", "pos"]
    if _unique(scene.objects, obj, ("size", "shape")):
        return ["size_shape", "pos"]
    return ["pos"]


def _shape_refs(scene: Scene, obj: Obj) -> list[str]:
    if _unique(scene.objects, obj, ("colour",)):
        return ["colour", "pos"]
    if _unique(scene.objects, obj, ("size", "colour")):
        return ["size_colour", "pos"]
    return ["pos"]


def _compare_pairs(scene: Scene) -> list[tuple[int, int]]:
    """Ordered pairs of objects that differ in size and colour (so "the red one" is clear)."""
    objs = scene.objects
    return [
        (i, j)
        for i in range(len(objs))
        for j in range(len(objs))
        if i != j and objs[i].size != objs[j].size and objs[i].colour != objs[j].colour
    ]


def askable(scene: Scene, kind: str) -> bool:
    """Whether a question of ``kind`` can be asked about ``scene``."""
    if kind not in FAMILY_OF:
        raise ValueError(f"unknown kind {kind!r}; expected one of {tuple(FAMILY_OF)}")
    return kind != "compare" or bool(_compare_pairs(scene))


def make_item(scene: Scene, family: str, kind: str, rng: np.random.Generator) -> Item:
    """Draw an item of ``kind`` about ``scene``; ValueError if the scene cannot support it."""
    if family not in FAMILIES or kind not in FAMILIES[family]:
        raise ValueError(f"kind {kind!r} is not in family {family!r}")
    if not askable(scene, kind):
        raise ValueError(f"cannot ask a {kind!r} question about this scene")
    objs = scene.objects
    slots: tuple[tuple[str, Any], ...] = ()
    if kind in ("colour", "shape"):
        target = int(rng.integers(len(objs)))
        refs = (_colour_refs if kind == "colour" else _shape_refs)(scene, objs[target])
        slots = (("target", target), ("ref", refs[int(rng.integers(len(refs)))]))
    elif kind == "yesno":
        present = {(o.colour, o.shape) for o in objs}
        if rng.random() < 0.5:
            colour, shape = sorted(present)[int(rng.integers(len(present)))]
            answer = True
        else:
            absent = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in present]
            colour, shape = absent[int(rng.integers(len(absent)))]
            answer = False
        slots = (("colour", colour), ("shape", shape), ("answer", answer))
    elif kind == "compare":
        pairs = _compare_pairs(scene)
        a, b = pairs[int(rng.integers(len(pairs)))]
        slots = (("a", a), ("b", b))
    elif kind == "sides":
        slots = (("shape", ("triangle", "square")[int(rng.integers(2))]),)
    elif kind == "arithmetic":
        a, b = _SUMS[int(rng.integers(len(_SUMS)))]
        slots = (("a", a), ("b", b))
    return Item(scene, family, kind, slots)


def sample_item(rng: np.random.Generator, family: str, kind: str, *, max_tries: int = 1000) -> Item:
    """Draw scenes from ``rng`` until one supports ``kind``, and return an item about it."""
    from ifl.world.scenes import sample_scene

    for _ in range(max_tries):
        scene = sample_scene(rng)
        if askable(scene, kind):
            return make_item(scene, family, kind, rng)
    raise ValueError(f"no scene supported kind {kind!r} in {max_tries} draws")


# ---- concepts -----------------------------------------------------------------------------


def _c(obj: Obj, attr: str) -> str:
    return concept_id(attr, getattr(obj, attr))


def _larger(item: Item) -> Obj:
    a, b = (item.scene.objects[item.slot(k)] for k in ("a", "b"))
    return a if a.size == "large" else b


def answer_concepts(item: Item) -> tuple[str, ...]:
    """Language-independent concept ids of the right answer (in answer order)."""
    objs, kind = item.scene.objects, item.kind
    if kind == "colour":
        return (_c(objs[item.slot("target")], "colour"),)
    if kind == "shape":
        return (_c(objs[item.slot("target")], "shape"),)
    if kind == "yesno":
        return ("ans.yes" if item.slot("answer") else "ans.no",)
    if kind == "count":
        return (number_concept(len(objs)),)
    if kind == "order":
        return tuple(_c(o, "colour") for o in objs)
    if kind == "compare":
        return (_c(_larger(item), "colour"),)
    if kind == "sides":
        return (number_concept(_SIDES[item.slot("shape")]),)
    if kind == "arithmetic":
        return (number_concept(item.slot("a") + item.slot("b")),)
    # detail, caption: every object's colour and shape
    return tuple(c for o in objs for c in (_c(o, "colour"), _c(o, "shape")))


def question_concepts(item: Item) -> tuple[str, ...]:
    """Concept ids named in the question itself (a reply may echo them)."""
    objs, kind = item.scene.objects, item.kind
    if kind in ("colour", "shape"):
        obj, ref = objs[item.slot("target")], item.slot("ref")
        named = {
            "shape": ("shape",), "size_shape": ("size", "shape"), "colour": ("colour",),
            "size_colour": ("size", "colour"), "pos": (),
        }[ref]  # fmt: skip
        return tuple(_c(obj, a) for a in named) + ((_pos(obj),) if ref == "pos" else ())
    if kind == "yesno":
        return (concept_id("colour", item.slot("colour")), concept_id("shape", item.slot("shape")))
    if kind == "compare":
        return tuple(_c(objs[item.slot(k)], "colour") for k in ("a", "b"))
    if kind == "sides":
        return (concept_id("shape", item.slot("shape")),)
    if kind == "arithmetic":
        return (number_concept(item.slot("a")), number_concept(item.slot("b")))
    return ()


def _pos(obj: Obj) -> str:
    return concept_id("pos", obj.position)


# ---- realisation --------------------------------------------------------------------------


def _describe(r: Renderer, scene: Scene) -> str:
    lang = r.lang
    parts = [
        r.sentence(
            lang.count_sentence(len(scene.objects)),
            slots={"num": number_concept(len(scene.objects))},
            g=lang.gender("noun.object"),
        )
    ]
    for o in scene.objects:
        shape = _c(o, "shape")
        np_ = r.np("indef", shape=shape, colour=_c(o, "colour"), size=_c(o, "size"))
        parts.append(
            r.sentence(
                lang.object_sentence,
                slots={"pos": _pos(o)},
                phrases={"np": np_},
                g=lang.gender(shape),
            )
        )
    return lang.sentence_sep.join(parts)


def _caption(r: Renderer, scene: Scene) -> str:
    nps = [
        r.np("indef", shape=_c(o, "shape"), colour=_c(o, "colour"), size=_c(o, "size"))
        for o in scene.objects
    ]
    return r.join_list(nps)


def realise_with(r: Renderer, item: Item) -> tuple[str, str]:
    """(question, answer) of ``item`` rendered by ``r`` (whose log records the content words)."""
    lang, kind, objs = r.lang, item.kind, item.scene.objects
    q, a = lang.questions[kind], lang.answers.get(kind, "")
    obj_g = lang.gender("noun.object")
    if kind in ("colour", "shape"):
        o, ref = objs[item.slot("target")], item.slot("ref")
        if ref == "pos":
            phrase, g = r.np("obj_pos", pos=_pos(o)), obj_g
        elif kind == "colour":
            size = _c(o, "size") if ref == "size_shape" else None
            phrase, g = r.np("def", shape=_c(o, "shape"), size=size), lang.gender(_c(o, "shape"))
        else:
            size = _c(o, "size") if ref == "size_colour" else None
            phrase, g = r.np("obj_def", colour=_c(o, "colour"), size=size), obj_g
        question = r.sentence(q, phrases={"ref": phrase}, g=g)
        return question, r.phrase(a, slots={kind: _c(o, kind)}, g=g)
    if kind == "yesno":
        shape = concept_id("shape", item.slot("shape"))
        g = lang.gender(shape)
        np_ = r.np("exist", shape=shape, colour=concept_id("colour", item.slot("colour")))
        question = r.sentence(q, phrases={"np": np_}, g=g)
        ans = "ans.yes" if item.slot("answer") else "ans.no"
        return question, r.phrase(a, slots={"ans": ans}, g=g)
    if kind == "count":
        return r.sentence(q), r.phrase(a, slots={"num": number_concept(len(objs))}, g=obj_g)
    if kind == "detail":
        return r.sentence(q), _describe(r, item.scene)
    if kind == "caption":
        return r.sentence(q), _caption(r, item.scene)
    if kind == "order":
        colours = [r.phrase(a, slots={"colour": _c(o, "colour")}, g=obj_g) for o in objs]
        return r.sentence(q), lang.answer_sep.join(colours)
    if kind == "compare":
        ones = {k: r.np("one", colour=_c(objs[item.slot(k)], "colour")) for k in ("a", "b")}
        question = r.sentence(q, phrases={"one_a": ones["a"], "one_b": ones["b"]}, g=obj_g)
        answer = r.np("one", colour=_c(_larger(item), "colour"))
        return question, r.phrase(a, phrases={"one": answer}, g=obj_g)
    if kind == "sides":
        shape = concept_id("shape", item.slot("shape"))
        question = r.sentence(q, phrases={"generic": r.np("generic", shape=shape)})
        return question, r.phrase(a, slots={"num": answer_concepts(item)[0]})
    # arithmetic
    nums = {"num_a": number_concept(item.slot("a")), "num_b": number_concept(item.slot("b"))}
    return r.sentence(q, slots=nums), r.phrase(a, slots={"num": answer_concepts(item)[0]})


def realise(
    item: Item, lang: str, *, error_rate: float = 0.0, rng: np.random.Generator | None = None
) -> tuple[str, str]:
    """(question, answer) of ``item`` in ``lang``; ``error_rate`` > 0 adds translation noise."""
    return realise_with(Renderer(lang, error_rate=error_rate, rng=rng), item)


def describe(
    scene: Scene, lang: str, *, error_rate: float = 0.0, rng: np.random.Generator | None = None
) -> str:
    """The text description of ``scene`` in ``lang`` (stands in for the image)."""
    return _describe(Renderer(lang, error_rate=error_rate, rng=rng), scene)


@functools.cache
def detail_instruction(lang: str) -> str:
    """The paper's instruction "Describe this image in detail." in ``lang`` (the lexicon's)."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}; expected one of {LANGUAGES}")
    item = sample_item(np.random.default_rng(0), "describe", "detail")
    return realise(item, lang)[0]


def caption(scene: Scene, lang: str = "en") -> str:
    """A short caption listing the objects, e.g. "a small red circle and a large blue square"."""
    return _caption(Renderer(lang), scene)


def reference_answers(item: Item, lang: str) -> list[str]:
    """Acceptable answers in ``lang``: the realised answer, then citation forms of its concept."""
    answers = [realise(item, lang)[1]]
    if item.kind in ("colour", "shape", "yesno", "count", "compare", "sides", "arithmetic"):
        r = Renderer(lang)
        cite = r.lang.form(answer_concepts(item)[0])
        if cite not in answers:
            answers.append(cite)
    return answers


# ---- serialisation ------------------------------------------------------------------------


def item_to_json(item: Item) -> str:
    """A JSON string that :func:`item_from_json` reverses."""
    return json.dumps(
        {
            "scene": item.scene.to_dict(),
            "family": item.family,
            "kind": item.kind,
            "slots": [[k, v] for k, v in item.slots],
        },
        sort_keys=True,
    )


def item_from_json(text: str) -> Item:
    """Rebuild an :class:`Item` from :func:`item_to_json` output."""
    try:
        data = json.loads(text)
        return Item(
            Scene.from_dict(data["scene"]),
            data["family"],
            data["kind"],
            tuple((k, v) for k, v in data["slots"]),
        )
    except (KeyError, TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"not an item JSON string: {text[:80]!r}") from err
