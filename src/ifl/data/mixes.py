"""Stage-2 mixes of the remedies: textual regularisation and multilingual task instructions.

:func:`build_mix` returns the whole stage-2 stream of one remedy variant as the instructions
table that :func:`ifl.train.organism.stage2` takes (``scene`` -1 = text-only), plus ``source``
and ``phase`` columns. Proportions, with ``V`` = the base's visual instructions:

* **task instructions** (LRM-LLaVA, Li et al. 2025): ``round(non_english_share * |V|)`` rows,
  split evenly over the enabled tasks (earlier tasks take the remainder);
* **English text-only dialogues** (LLaVA's ShareGPT part): ``text_only_share`` of everything
  except the multilingual text, exactly as ``stage2`` adds them (same count and seed), so the
  mix is trained with ``text_only_share=0``;
* **multilingual text-only dialogues** (textual regularisation, Pikabea et al. 2025): a share
  ``text_ratio`` of the rows the model trains on while they are in play -- of the whole mix
  with ``text_phase="throughout"``, of the final phase's pool with ``text_phase="final"``.
  Languages are drawn uniformly from ``languages``.

Task formats (questions and answers come from :func:`ifl.world.items.realise`; the non-English
side goes through the toy translator, as LRM-LLaVA machine-translated its English data):

* ``mvqa``: question and answer in the same non-English language L, no cue.
* ``epvqa`` (English pivot): the question in L followed by the English cue
  ``(Translate the question into English, then answer in <L name>.)``; the target is the
  English question, a newline, then the answer in L.
* ``bvqa`` (bilingual): half the rows ask in English and answer in L, half ask in L and answer
  in English; the question is followed by ``Answer in <language name>.``

Cues are English so that a plain question (the evaluation) never asks for a translation:
without a cue the model should keep answering directly in the question's language.

A mix with a final phase is trained by :func:`ifl.train.organism.stage2_phased`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ifl import LANGUAGES
from ifl.data.organism import text_dialogues
from ifl.lid import ISO_TO_NAME
from ifl.models.prompts import prompt, target
from ifl.world.items import Item, realise
from ifl.world.translate import translate

TASKS = ("mvqa", "epvqa", "bvqa")
PHASES = ("throughout", "final")
SOURCES = ("visual", "mvqa", "epvqa", "bvqa", "text_en", "text_ml")
COLUMNS = ["scene", "language", "family", "prompt", "target", "source", "phase"]
EP_CUE = "(Translate the question into English, then answer in {name}.)"
BI_CUE = "Answer in {name}."


def language_name(iso: str) -> str:
    """English name of a language, e.g. ``de`` -> ``German``."""
    if iso not in ISO_TO_NAME:
        raise ValueError(f"unknown language {iso!r}; expected one of {LANGUAGES}")
    return ISO_TO_NAME[iso].capitalize()


def checked_share(value: float, name: str, upper: float) -> float:
    """``value`` as a float when it is a number in ``[0, upper)``; else a one-line error."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < upper:
        raise ValueError(f"{name} must be a number in [0, {upper}), got {value!r}")
    return float(value)


def non_english_languages(languages: Sequence[str]) -> list[str]:
    """The remedy languages, deduplicated in order; each must be known and non-English."""
    langs = list(dict.fromkeys(languages))
    for lang in langs:
        language_name(lang)
    if "en" in langs:
        raise ValueError("remedy languages must be non-English; got 'en'")
    return langs


def even_split(n: int, k: int) -> list[int]:
    """``n`` rows over ``k`` tasks as evenly as possible, earlier tasks first."""
    return [n // k + (i < n % k) for i in range(k)]


def task_row(
    task: str,
    scene: int,
    item: Item,
    lang: str,
    rng: np.random.Generator,
    *,
    error_rate: float = 0.0,
) -> dict[str, Any]:
    """One LRM-LLaVA task-instruction example about ``item`` with non-English language ``lang``."""
    q_l, a_l = translate(item, lang, error_rate=error_rate, rng=rng)
    q_en, a_en = realise(item, "en")
    if task == "mvqa":
        question, answer = q_l, a_l
    elif task == "epvqa":
        question, answer = f"{q_l}\n{EP_CUE.format(name=language_name(lang))}", f"{q_en}\n{a_l}"
    elif task == "bvqa":
        if rng.random() < 0.5:
            question, answer = f"{q_en}\n{BI_CUE.format(name=language_name(lang))}", a_l
        else:
            question, answer = f"{q_l}\n{BI_CUE.format(name='English')}", a_en
    else:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    return {
        "scene": scene,
        "language": lang,
        "family": item.family,
        "prompt": prompt(question, image=True),
        "target": target(answer),
        "source": task,
        "phase": "all",
    }


def task_rows(
    items: Sequence[tuple[int, Item]],
    tasks: Sequence[str],
    n: int,
    languages: Sequence[str],
    *,
    error_rate: float,
    seed: int,
) -> pd.DataFrame:
    """``n`` task-instruction rows split evenly over ``tasks``, items and languages drawn uniformly."""
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise ValueError(f"unknown task {bad[0]!r}; expected one of {TASKS}")
    if n and not items:
        raise ValueError("no visual items to build task instructions from")
    langs = non_english_languages(languages)
    if n and not langs:
        raise ValueError("task instructions need at least one non-English language")
    rng = np.random.default_rng(seed)
    rows = []
    for task, count in zip(tasks, even_split(n, len(tasks)) if tasks else [], strict=True):
        for _ in range(count):
            scene, item = items[int(rng.integers(len(items)))]
            lang = langs[int(rng.integers(len(langs)))]
            rows.append(task_row(task, scene, item, lang, rng, error_rate=error_rate))
    return pd.DataFrame(rows, columns=COLUMNS)


def _text(
    scenes: Sequence, mix: Mapping[str, float], n: int, seed: int, source: str, phase: str
) -> pd.DataFrame:
    if n == 0:
        return pd.DataFrame(columns=COLUMNS)
    df = text_dialogues(scenes, mix, n, seed)
    return df.assign(scene=-1, source=source, phase=phase)[COLUMNS]


def build_mix(
    instructions: pd.DataFrame,
    items: Sequence[tuple[int, Item]],
    scenes: Sequence,
    *,
    text_only_share: float,
    text_ratio: float = 0.0,
    text_phase: str = "throughout",
    tasks: Sequence[str] = (),
    non_english_share: float = 1.0,
    languages: Sequence[str] = (),
    error_rate: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """The stage-2 stream of one remedy variant (see the module docstring for the proportions).

    ``instructions`` are the base's visual instructions (scene, prompt, target, ...); ``items``
    the language-independent (scene, item) pairs they were rendered from; ``scenes`` the
    training scenes (text dialogues describe them). ``seed`` is the stage-2 seed: the English
    text dialogues use ``seed + 1`` as :func:`ifl.train.organism.stage2` does.
    Rows: visual, task rows, English text, then multilingual text (phase ``final`` last).
    """
    missing = [c for c in ("scene", "prompt", "target") if c not in instructions.columns]
    if missing:
        raise ValueError(f"instructions lack column {missing[0]!r}")
    text_only_share = checked_share(text_only_share, "text_only_share", 1.0)
    text_ratio = checked_share(text_ratio, "text_ratio", 1.0)
    non_english_share = checked_share(non_english_share, "non_english_share", float("inf"))
    if text_phase not in PHASES:
        raise ValueError(f"text_phase must be one of {PHASES}, got {text_phase!r}")
    langs = non_english_languages(languages)
    if text_ratio > 0 and not langs:
        raise ValueError("textual regularisation needs at least one non-English language")
    visual = instructions.assign(
        language=instructions.get("language", "en"),
        family=instructions.get("family", ""),
        source="visual",
        phase="all",
    )[COLUMNS]
    n_tasks = int(round(non_english_share * len(visual))) if tasks else 0
    taught = task_rows(items, tasks, n_tasks, langs, error_rate=error_rate, seed=seed + 3)
    n_main = len(visual) + len(taught)
    n_en = int(round(n_main * text_only_share / max(1e-9, 1 - text_only_share)))
    english = _text(scenes, {"en": 1.0}, n_en, seed + 1, "text_en", "all")
    pool = n_main + len(english)
    n_ml = int(round(pool * text_ratio / (1 - text_ratio)))
    phase = "all" if text_phase == "throughout" else "final"
    multi = _text(scenes, dict.fromkeys(langs, 1.0), n_ml, seed + 2, "text_ml", phase)
    parts = [p for p in (visual, taught, english, multi) if len(p)]
    return pd.concat(parts, ignore_index=True)[COLUMNS]


def proportions(mix: pd.DataFrame) -> dict[str, float]:
    """The shares a mix was built to have (what :func:`build_mix`'s arguments promise).

    ``text_ml``: multilingual text rows over all rows (both phases sample every row once they
    are in play); ``text_en``: English text rows over the rows that are not multilingual text;
    ``non_english`` and each task: task rows over visual rows; ``final_rows``: rows held back
    for the final phase.
    """
    counts = mix["source"].value_counts()
    n = {s: int(counts.get(s, 0)) for s in SOURCES}
    rest = len(mix) - n["text_ml"]
    out = {
        "text_ml": n["text_ml"] / len(mix) if len(mix) else 0.0,
        "text_en": n["text_en"] / rest if rest else 0.0,
        "non_english": sum(n[t] for t in TASKS) / n["visual"] if n["visual"] else 0.0,
        "final_rows": float((mix["phase"] == "final").sum()),
    }
    out.update({t: n[t] / n["visual"] if n["visual"] else 0.0 for t in TASKS})
    return out
