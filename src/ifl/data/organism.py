"""Training corpora of the model organism, drawn from the synthetic world.

Everything is a pure function of (scenes, seed): the same config gives the same corpora.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ifl.models.prompts import followup, prompt, target
from ifl.world.items import Item, caption, describe, make_item, realise
from ifl.world.render import render
from ifl.world.scenes import Scene, sample_scene
from ifl.world.translate import translate

# Family mix of the text-only pretraining dialogues and of the visual instructions.
TEXT_FAMILIES = {"short": 0.45, "instruct": 0.2, "describe": 0.1, "textqa": 0.25}
VISUAL_FAMILIES = {"short": 0.6, "instruct": 0.25, "describe": 0.15}
KINDS = {
    "short": ("colour", "count", "shape", "yesno"),
    "describe": ("detail",),
    "instruct": ("order", "compare"),
    "textqa": ("sides", "arithmetic"),
}
# LLaVA's stage 1 pairs each image with a short caption behind a brief instruction.
CAPTION_INSTRUCTION = "Describe the image briefly."


def sample_scenes(n: int, seed: int) -> list[Scene]:
    """``n`` training scenes from a seeded generator."""
    rng = np.random.default_rng(seed)
    return [sample_scene(rng) for _ in range(n)]


def render_scenes(scenes: Sequence[Scene], size: int) -> np.ndarray:
    """Stack the rendered scenes into an (n, size, size, 3) uint8 array."""
    return np.stack([render(s, size) for s in scenes])


def _draw_items(
    scenes: Sequence[Scene], families: Mapping[str, float], n: int, rng: np.random.Generator
) -> list[tuple[int, Item]]:
    names = list(families)
    weights = np.asarray([families[f] for f in names], dtype=float)
    fam = rng.choice(len(names), size=n, p=weights / weights.sum())
    out = []
    for f in fam:
        family = names[f]
        # Items that need special scenes (e.g. a comparison needs two sizes) may be refused.
        for _ in range(50):
            s = int(rng.integers(len(scenes)))
            kind = KINDS[family][int(rng.integers(len(KINDS[family])))]
            try:
                out.append((s, make_item(scenes[s], family, kind, rng)))
                break
            except ValueError:
                continue
    return out


def text_dialogues(
    scenes: Sequence[Scene], mix: Mapping[str, float], n: int, seed: int, *, turns: int = 1
) -> pd.DataFrame:
    """Text-only pretraining dialogues (description + question -> answer, one language each).

    The language of each dialogue is drawn from the backbone's ``mix`` weights. With ``turns``
    > 1 the user asks that many questions about the scene, one per turn, and ``target`` holds the
    continuation as segments (reply, user turn, reply, ...): more answers per description read.
    """
    if turns < 1:
        raise ValueError(f"a dialogue needs at least one turn, got turns={turns}")
    rng = np.random.default_rng(seed)
    langs = list(mix)
    w = np.asarray([mix[lang] for lang in langs], dtype=float)
    rows = []
    for s, item in _draw_items(scenes, TEXT_FAMILIES, n, rng):
        lang = langs[int(rng.choice(len(langs), p=w / w.sum()))]
        question, answer = realise(item, lang)
        tail: list[str] = [target(answer)]
        if turns > 1:
            for _, extra in _draw_items([scenes[s]], TEXT_FAMILIES, turns - 1, rng):
                q, a = realise(extra, lang)
                tail += [followup(q), target(a)]
        rows.append(
            {
                "scene": s,
                "language": lang,
                "family": item.family,
                "prompt": prompt(question, image=False, description=describe(scenes[s], lang)),
                "target": tail[0] if turns == 1 else tail,
            }
        )
    return pd.DataFrame(rows)


def captions(scenes: Sequence[Scene]) -> pd.DataFrame:
    """Stage-1 pairs: every scene with its English caption."""
    return pd.DataFrame(
        {
            "scene": np.arange(len(scenes)),
            "prompt": [prompt(CAPTION_INSTRUCTION, image=True)] * len(scenes),
            "target": [target(caption(s, "en")) for s in scenes],
        }
    )


def visual_items(scenes: Sequence[Scene], n: int, seed: int) -> list[tuple[int, Item]]:
    """The language-independent stage-2 visual instructions (the analogue of LLaVA's mix)."""
    return _draw_items(scenes, VISUAL_FAMILIES, n, np.random.default_rng(seed))


def visual_instructions(
    items: Sequence[tuple[int, Item]], lang: str, *, error_rate: float, seed: int
) -> pd.DataFrame:
    """Render the stage-2 items in ``lang``: English as written, others through the toy translator."""
    rng = np.random.default_rng(seed)
    rows = []
    for s, item in items:
        if lang == "en":
            question, answer = realise(item, "en")
        else:
            question, answer = translate(item, lang, error_rate=error_rate, rng=rng)
        rows.append(
            {
                "scene": s,
                "language": lang,
                "family": item.family,
                "prompt": prompt(question, image=True),
                "target": target(answer),
            }
        )
    return pd.DataFrame(rows)
