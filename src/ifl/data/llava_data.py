"""LLaVA's training data (LLaVA-Pretrain 558k, llava_v1_5_mix665k) as tables, and back.

Both files are JSON lists of ``{"id", "image"?, "conversations": [{"from", "value"}, ...]}``
with alternating ``human``/``gpt`` turns and ``<image>`` in the first human turn of image
rows; mix665k's text-only (ShareGPT) rows have no ``image``. :func:`read_llava_json` gives one
row per example with the image resolved against an image root, :func:`turns` one row per turn
(what the translate rule translates), and :func:`translate_conversations` /
:func:`write_llava_json` produce the translated data set in the same format, so any
LLaVA-compatible trainer reads it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ifl.io import atomic_file

ROLES = ("human", "gpt")
IMAGE_TOKEN = "<image>"


def read_llava_json(
    path: str | Path,
    image_root: str | Path | None = None,
    *,
    check_images: bool = False,
    limit: int | None = None,
    fields: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """One row per example: ``id``, ``image`` (path under ``image_root``, None if text only),
    ``conversations`` (list of ``{"from", "value"}``), ``n_turns``, and a column per key of
    ``fields`` (the example's value, else the given default).

    Raises:
        ValueError: on a malformed example (naming its id), or, with ``check_images``, on the
            first missing image file.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"LLaVA data file not found: {str(path)!r}")
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, list):
        raise ValueError(f"{str(path)!r} must hold a JSON list of examples")
    rows = []
    for ex in data[:limit] if limit is not None else data:
        conv = validate_example(ex)
        image = ex.get("image")
        if image is not None and image_root is not None:
            image = str(Path(image_root) / image)
        if check_images and image is not None and not Path(image).is_file():
            raise ValueError(f"image of example {ex.get('id')!r} not found: {image!r}")
        rows.append(
            {
                "id": str(ex.get("id", len(rows))),
                "image": image,
                "conversations": conv,
                "n_turns": len(conv),
                **{k: ex.get(k, default) for k, default in (fields or {}).items()},
            }
        )
    return pd.DataFrame(rows, columns=["id", "image", "conversations", "n_turns", *(fields or {})])


def validate_example(ex: Mapping[str, Any]) -> list[dict[str, str]]:
    """The example's conversation as a list of ``{"from", "value"}`` after checking it.

    Raises:
        ValueError: if turns do not alternate human/gpt starting with human, a value is not a
            string, or an image example has no ``<image>`` token (or a text-only one has one).
    """
    ident = ex.get("id") if isinstance(ex, Mapping) else None
    conv = ex.get("conversations") if isinstance(ex, Mapping) else None
    if not isinstance(conv, list) or not conv:
        raise ValueError(f"example {ident!r} has no conversations list")
    out = []
    for i, turn in enumerate(conv):
        role, value = turn.get("from"), turn.get("value")
        if role != ROLES[i % 2]:
            raise ValueError(
                f"example {ident!r} turn {i} is from {role!r}, expected {ROLES[i % 2]!r}"
            )
        if not isinstance(value, str):
            raise ValueError(f"example {ident!r} turn {i} value is not a string")
        out.append({"from": role, "value": value})
    has_token = any(IMAGE_TOKEN in t["value"] for t in out)
    if ("image" in ex) != has_token:
        raise ValueError(f"example {ident!r}: image field and {IMAGE_TOKEN} token disagree")
    return out


def turns(data: pd.DataFrame) -> pd.DataFrame:
    """One row per turn: ``id``, ``turn``, ``role``, ``text`` (the translate rule's input)."""
    rows = [
        {"id": ex_id, "turn": i, "role": t["from"], "text": t["value"]}
        for ex_id, conv in zip(data["id"], data["conversations"], strict=True)
        for i, t in enumerate(conv)
    ]
    return pd.DataFrame(rows, columns=["id", "turn", "role", "text"])


def translate_conversations(data: pd.DataFrame, mapping: Mapping[str, str]) -> pd.DataFrame:
    """A copy of ``data`` with every turn translated through ``mapping`` (segment -> translation,
    from :func:`ifl.translate_nllb.load_mapping`); ``<image>`` stays where it was."""
    from ifl.translate_nllb import assemble

    out = data.copy()
    out["conversations"] = [
        [{"from": t["from"], "value": assemble(t["value"], mapping)} for t in conv]
        for conv in data["conversations"]
    ]
    return out


def write_llava_json(
    data: pd.DataFrame, path: str | Path, image_root: str | Path | None = None
) -> None:
    """Write ``data`` (as read by :func:`read_llava_json`) back in LLaVA's JSON format, atomically.

    Image paths are written relative to ``image_root`` when given.
    """
    records = []
    for r in data.itertuples(index=False):
        ex: dict[str, Any] = {"id": r.id}
        if r.image is not None and not (isinstance(r.image, float) and pd.isna(r.image)):
            ex["image"] = (
                str(Path(r.image).relative_to(image_root)) if image_root is not None else r.image
            )
        ex["conversations"] = [{"from": t["from"], "value": t["value"]} for t in r.conversations]
        records.append(ex)
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(records, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
