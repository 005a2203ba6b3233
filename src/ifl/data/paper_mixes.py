"""Stage-2 mixes of the remedies in the paper preset, built from the real training data.

The organism's builder (:mod:`ifl.data.mixes`) renders its rows from the synthetic world; this
one assembles them from LLaVA-1.5's ``llava_v1_5_mix665k`` (as read by
:func:`ifl.data.llava_data.read_llava_json`), its NLLB translations (the ``instruct`` rule's
``instruct-<lang>.json``, same examples in the same order) and a text-only multilingual
instruction data set staged from the hub (``remedies.text_data``, by default
``CohereForAI/aya_dataset``). The proportions are the organism's, with ``V`` = the image rows
of the base's stage-2 data:

* **the base's data**: every example the base VLM trained on in stage 2, image rows
  (``source`` ``visual``) and mix665k's text-only ShareGPT rows (``text_en``) alike;
* **task instructions** (LRM-LLaVA, Li et al. 2025): ``round(non_english_share * |V|)`` rows
  split evenly over the enabled tasks (earlier tasks take the remainder). Each is one image
  conversation of mix665k rewritten round by round from its English original and its
  translation into a language drawn uniformly from ``languages``; conversations are drawn
  without replacement until every image conversation was used once per task, then again;
* **multilingual text-only instructions** (Pikabea et al. 2025): a share ``text_ratio`` of the
  rows trained on while they are in play (the whole mix, or the final phase's pool with
  ``text_phase="final"``), languages drawn uniformly, examples of a language without
  replacement until the language's examples run out, then again (a small data set such as
  aya_dataset repeats its rows at high ratios; the mix command reports how often).

Task formats, per round ``(q, a)`` of the conversation (``q_L``/``a_L`` its translation), with
the organism's English cues (:data:`ifl.data.mixes.EP_CUE`, :data:`ifl.data.mixes.BI_CUE`):

* ``mvqa``: ``q_L`` -> ``a_L``;
* ``epvqa``: ``q_L`` + the translate-then-answer cue -> ``q`` (English), a newline, ``a_L``;
* ``bvqa``: per conversation either ``q`` + ``Answer in <L>.`` -> ``a_L`` or ``q_L`` +
  ``Answer in English.`` -> ``a`` (half each).

``<image>`` opens the first question of a task row, as LLaVA's trainer expects. A mix is written
in LLaVA's JSON format (any LLaVA trainer reads it) with three extra keys per example,
``source``, ``phase`` and ``language``, which :func:`read_mix` keeps.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ifl.data.llava_data import IMAGE_TOKEN, read_llava_json
from ifl.data.mixes import (
    BI_CUE,
    EP_CUE,
    PHASES,
    TASKS,
    checked_share,
    even_split,
    language_name,
    non_english_languages,
)
from ifl.io import atomic_file

log = logging.getLogger(__name__)

MIX_COLUMNS = ["id", "image", "conversations", "source", "phase", "language"]
TEXT_COLUMNS = ("prompt", "response", "language")
#: The data set's language codes of each query language when ``language_codes`` does not say:
#: ISO 639-3 (aya_dataset's ``language_code``) and the ISO 639-1 code itself.
DEFAULT_CODES: dict[str, tuple[str, ...]] = {
    "zh": ("zho", "cmn"), "hi": ("hin",), "en": ("eng",), "he": ("heb",), "th": ("tha",),
    "ar": ("arb", "ara"), "bn": ("ben",), "ja": ("jpn",), "es": ("spa",), "de": ("deu",),
    "fr": ("fra",), "ro": ("ron",), "ru": ("rus",), "ur": ("urd",),
}  # fmt: skip
_READERS = {".parquet": pd.read_parquet, ".csv": pd.read_csv, ".jsonl": None, ".json": None}


# --- text-only multilingual instructions -----------------------------------------------------
def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise ValueError(f"cannot read {str(path)!r}: expected one of {', '.join(_READERS)}")
    if suffix in (".jsonl", ".json"):
        with open(path, encoding="utf-8") as fh:  # a .json file may hold JSON lines too
            first = fh.read(64).lstrip()[:1]
        return pd.read_json(path, lines=suffix == ".jsonl" or first != "[", dtype=False)
    return _READERS[suffix](path)


def language_lookup(
    languages: Sequence[str], codes: Mapping[str, Sequence[str]] | None = None
) -> dict[str, str]:
    """The data set's language code -> query language (ISO 639-1) for ``languages``.

    ``codes`` (config ``remedies.text_data.language_codes``) overrides :data:`DEFAULT_CODES`
    per language; the ISO 639-1 code itself always matches. Codes compare case-insensitively.
    """
    out: dict[str, str] = {}
    for lang in languages:
        own = (codes or {}).get(lang)
        for code in (lang, *(DEFAULT_CODES.get(lang, ()) if own is None else own)):
            out[str(code).lower()] = lang
    return out


def read_text_data(
    paths: Sequence[str | Path],
    columns: Mapping[str, str],
    languages: Sequence[str],
    *,
    language_codes: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """The rows of ``languages`` of a text-only instruction data set, as ``prompt``,
    ``response`` and ``language`` (ISO 639-1).

    ``paths`` are its staged files (parquet, csv, json or jsonl); ``columns`` maps ``prompt``,
    ``response`` and ``language`` to the data set's column names (aya_dataset: ``inputs``,
    ``targets``, ``language_code``). Rows with an empty prompt or response are dropped;
    ``<image>`` is removed from the text (these rows have no image).

    Raises:
        ValueError: if a file or a configured column is missing, or a language has no row.
    """
    missing = [k for k in TEXT_COLUMNS if k not in columns]
    if missing:
        raise ValueError(f"remedies.text_data.columns lacks {missing[0]!r}")
    if not paths:
        raise ValueError("remedies.text_data: no data file to read")
    lookup = language_lookup(languages, language_codes)
    parts = []
    for path in map(Path, paths):
        if not path.is_file():
            raise ValueError(f"text data file not found: {str(path)!r}")
        table = _read_table(path)
        for key in TEXT_COLUMNS:
            if columns[key] not in table.columns:
                raise ValueError(
                    f"remedies.text_data.columns.{key}: {columns[key]!r} is not a column of "
                    f"{path.name} ({', '.join(map(str, table.columns))})"
                )
        parts.append(pd.DataFrame({k: table[columns[k]].astype("string") for k in TEXT_COLUMNS}))
    df = pd.concat(parts, ignore_index=True).dropna().astype(str)
    df["language"] = df["language"].str.strip().str.lower().map(lookup)
    for col in ("prompt", "response"):
        df[col] = df[col].str.replace(IMAGE_TOKEN, "", regex=False).str.strip()
    df = df[df["language"].notna() & (df["prompt"] != "") & (df["response"] != "")]
    df = df.reset_index(drop=True)
    absent = [lang for lang in languages if lang not in set(df["language"])]
    if absent:
        raise ValueError(
            f"the text data has no row in language {absent[0]!r} (column "
            f"{columns['language']!r}; set remedies.text_data.language_codes.{absent[0]})"
        )
    return df


def _cycle(pool: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws from ``range(pool)``: seeded permutations one after another (each index
    is used once before any is used again)."""
    if n == 0:
        return np.zeros(0, dtype=int)
    if pool == 0:
        raise ValueError("nothing to draw from")
    rounds = -(-n // pool)
    return np.concatenate([rng.permutation(pool) for _ in range(rounds)])[:n]


def text_rows(
    text: pd.DataFrame, n: int, languages: Sequence[str], *, phase: str, seed: int
) -> pd.DataFrame:
    """``n`` text-only examples (mix columns), languages drawn uniformly from ``languages``."""
    langs = non_english_languages(languages)
    if n and not langs:
        raise ValueError("textual regularisation needs at least one non-English language")
    rng = np.random.default_rng(seed)
    drawn = np.asarray(langs)[rng.integers(len(langs), size=n)] if n else np.asarray([], str)
    rows = []
    for lang in langs:
        pool = text.index[text["language"] == lang]
        want = int((drawn == lang).sum())
        if want > len(pool):
            log.info("text data: %d rows of %s drawn from its %d examples", want, lang, len(pool))
        for k, i in enumerate(pool[_cycle(len(pool), want, rng)]):
            rows.append(
                {
                    "id": f"text-{lang}-{k}",
                    "image": None,
                    "conversations": [
                        {"from": "human", "value": text.at[i, "prompt"]},
                        {"from": "gpt", "value": text.at[i, "response"]},
                    ],
                    "source": "text_ml",
                    "phase": phase,
                    "language": lang,
                }
            )
    return pd.DataFrame(rows, columns=MIX_COLUMNS)


# --- task instructions ---------------------------------------------------------------------
def _rounds(conv: Sequence[Mapping[str, str]]) -> list[tuple[str, str]]:
    """``(question, answer)`` pairs of a conversation, ``<image>`` removed."""
    values = [t["value"].replace(IMAGE_TOKEN, "").strip() for t in conv]
    return list(zip(values[0::2], values[1::2], strict=False))


def task_conversation(
    task: str,
    english: Sequence[Mapping[str, str]],
    translated: Sequence[Mapping[str, str]],
    lang: str,
    *,
    to_target: bool = True,
) -> list[dict[str, str]]:
    """One LRM-LLaVA task conversation from an English image conversation and its translation
    into ``lang`` (see the module docstring); ``to_target`` picks BVQA's direction (English
    question, answer in ``lang``) or the reverse. ``<image>`` opens the first question.

    Raises:
        ValueError: on an unknown task, or when the two conversations differ in rounds.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    en, tr = _rounds(english), _rounds(translated)
    if len(en) != len(tr) or not en:
        raise ValueError(f"a conversation and its {lang} translation differ in rounds")
    name = language_name(lang)
    conv: list[dict[str, str]] = []
    for (q, a), (q_l, a_l) in zip(en, tr, strict=True):
        if task == "mvqa":
            question, answer = q_l, a_l
        elif task == "epvqa":
            question, answer = f"{q_l}\n{EP_CUE.format(name=name)}", f"{q}\n{a_l}"
        elif to_target:
            question, answer = f"{q}\n{BI_CUE.format(name=name)}", a_l
        else:
            question, answer = f"{q_l}\n{BI_CUE.format(name='English')}", a
        conv += [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]
    conv[0]["value"] = f"{IMAGE_TOKEN}\n{conv[0]['value']}"
    return conv


def plan_tasks(
    n_visual: int, tasks: Sequence[str], n: int, languages: Sequence[str], *, seed: int
) -> pd.DataFrame:
    """Which task rows to build: ``task``, ``source`` (position among the ``n_visual`` image
    conversations), ``language`` and BVQA's ``to_target`` direction."""
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise ValueError(f"unknown task {bad[0]!r}; expected one of {TASKS}")
    langs = non_english_languages(languages)
    if n and not langs:
        raise ValueError("task instructions need at least one non-English language")
    if n and not n_visual:
        raise ValueError("no image conversation to build task instructions from")
    rng = np.random.default_rng(seed)
    parts = []
    for task, count in zip(tasks, even_split(n, len(tasks)) if tasks else [], strict=True):
        parts.append(
            pd.DataFrame(
                {
                    "task": task,
                    "source": _cycle(n_visual, count, rng),
                    "language": np.asarray(langs, dtype=object)[
                        rng.integers(len(langs), size=count)
                    ],
                    "to_target": rng.random(count) < 0.5,
                }
            )
        )
    cols = ["task", "source", "language", "to_target"]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def _aligned(english: pd.DataFrame, translated: pd.DataFrame, lang: str) -> None:
    same = (
        len(english) == len(translated)
        and (english["id"].to_numpy() == translated["id"].to_numpy()).all()
    )
    if not same:
        raise ValueError(
            f"the {lang} instructions are not a translation of the English ones (ids differ)"
        )


def task_rows(
    english: pd.DataFrame,
    translations: Mapping[str, str | Path | pd.DataFrame],
    plan: pd.DataFrame,
) -> pd.DataFrame:
    """The planned task rows (mix columns). ``english`` is mix665k as read (image paths
    relative to its image root); ``translations`` maps each planned language to its
    translated data (a table or the path of an ``instruct-<lang>.json``), loaded one at a
    time so that only one translation is in memory."""
    visual = np.flatnonzero(english["image"].notna().to_numpy())
    rows = []
    for lang, group in plan.groupby("language", sort=True):
        if lang not in translations:
            raise ValueError(f"no translation of the instructions into {lang!r}")
        tr = translations[lang]
        tr = tr if isinstance(tr, pd.DataFrame) else read_llava_json(tr, None)
        _aligned(english, tr, lang)
        for k, r in enumerate(group.itertuples(index=False)):
            i = int(visual[r.source])
            rows.append(
                {
                    "id": f"{r.task}-{lang}-{english['id'].iat[i]}-{k}",
                    "image": english["image"].iat[i],
                    "conversations": task_conversation(
                        r.task,
                        english["conversations"].iat[i],
                        tr["conversations"].iat[i],
                        lang,
                        to_target=bool(r.to_target),
                    ),
                    "source": r.task,
                    "phase": "all",
                    "language": lang,
                }
            )
        del tr
    out = pd.DataFrame(rows, columns=MIX_COLUMNS)
    order = {t: i for i, t in enumerate(TASKS)}  # the plan's task order, then language
    return out.sort_values("source", key=lambda s: s.map(order), kind="stable").reset_index(
        drop=True
    )


# --- the mix ---------------------------------------------------------------------------------
def build_paper_mix(
    base: pd.DataFrame,
    english: pd.DataFrame,
    translations: Mapping[str, str | Path | pd.DataFrame],
    text: pd.DataFrame | None = None,
    *,
    base_language: str = "en",
    text_ratio: float = 0.0,
    text_phase: str = "throughout",
    tasks: Sequence[str] = (),
    non_english_share: float = 1.0,
    languages: Sequence[str] = (),
    seed: int = 0,
) -> pd.DataFrame:
    """The stage-2 data of one remedy variant of the paper preset (module docstring).

    ``base`` is the base VLM's stage-2 data and ``english`` mix665k (the same table when the
    base trained on English), both as read by :func:`read_llava_json` without an image root;
    ``translations`` the translated data per language of the task rows; ``text`` the table of
    :func:`read_text_data` (needed when ``text_ratio`` > 0).
    Rows: the base's data, task rows, then multilingual text (phase ``final`` last).
    """
    text_ratio = checked_share(text_ratio, "text_ratio", 1.0)
    non_english_share = checked_share(non_english_share, "non_english_share", float("inf"))
    if text_phase not in PHASES:
        raise ValueError(f"text_phase must be one of {PHASES}, got {text_phase!r}")
    langs = non_english_languages(languages)
    has_image = base["image"].notna()
    data = base.assign(
        source=np.where(has_image, "visual", "text_en"),
        phase="all",
        language=base_language,
    )[MIX_COLUMNS]
    n_visual = int(has_image.sum())
    n_tasks = int(round(non_english_share * n_visual)) if tasks else 0
    n_english = int(english["image"].notna().sum())
    plan = plan_tasks(n_english, tasks, n_tasks, langs, seed=seed + 3)
    taught = task_rows(english, translations, plan)
    pool = len(data) + len(taught)
    n_ml = int(round(pool * text_ratio / (1 - text_ratio)))
    if n_ml and text is None:
        raise ValueError("textual regularisation needs the text data (remedies.text_data)")
    phase = "all" if text_phase == "throughout" else "final"
    multi = text_rows(text, n_ml, langs, phase=phase, seed=seed + 2) if n_ml else None
    parts = [p for p in (data, taught, multi) if p is not None and len(p)]
    return pd.concat(parts, ignore_index=True)[MIX_COLUMNS]


def write_mix(mix: pd.DataFrame, path: str | Path) -> None:
    """Write a mix in LLaVA's JSON format plus ``source``, ``phase`` and ``language``, atomically."""
    records = []
    for r in mix.itertuples(index=False):
        ex: dict[str, Any] = {"id": r.id}
        if isinstance(r.image, str):
            ex["image"] = r.image
        ex["conversations"] = [{"from": t["from"], "value": t["value"]} for t in r.conversations]
        ex.update(source=r.source, phase=r.phase, language=r.language)
        records.append(ex)
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(records, ensure_ascii=False) + "\n", encoding="utf-8")


def read_mix(
    path: str | Path, image_root: str | Path | None = None, *, check_images: bool = False
) -> pd.DataFrame:
    """A mix written by :func:`write_mix`: the columns of :func:`read_llava_json` plus
    ``source``, ``phase`` and ``language``, images resolved against ``image_root``.

    Raises:
        ValueError: on a malformed example (naming its id) or, with ``check_images``, on the
            first missing image.
    """
    mix = read_llava_json(
        path,
        image_root,
        check_images=check_images,
        fields={"source": "visual", "phase": "all", "language": ""},
    )
    bad = mix.loc[~mix["phase"].isin(["all", "final"])]
    if len(bad):
        ex = bad.iloc[0]
        raise ValueError(f"example {ex['id']!r} has unknown phase {ex['phase']!r}")
    return mix
