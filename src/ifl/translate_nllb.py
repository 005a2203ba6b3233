"""Machine translation with NLLB: batched, sharded and resumable, as the paper's translate rule.

Texts are cut into translatable segments (lines, then sentences; ``<image>`` and pieces
without letters are kept verbatim), and only *unique* segments are translated: LLaVA's data
repeats its prompts hundreds of thousands of times. Segments are keyed by a content hash, so
shard ``i`` of ``n`` (rows ``i::n`` of the hash-sorted table) is stable across runs. Each
shard checkpoints finished batches under ``<out>.part/`` exactly like :mod:`ifl.generate`, so
an interrupted GPU job resumes where it stopped; a change of settings discards the partial
work instead of mixing it in. :func:`assemble` puts translated segments back together.

The model is any ``AutoModelForSeq2SeqLM`` with a tokenizer that knows NLLB's language codes
(``deu_Latn``, ``zho_Hans``): the source language is set on the tokenizer and the target forced
as the first generated token (``forced_bos_token_id``).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ifl.io import write_json, write_parquet

#: ISO 639-1 -> NLLB-200 (FLORES-200) code for the paper's 14 languages.
NLLB_CODES: Mapping[str, str] = {
    "zh": "zho_Hans", "hi": "hin_Deva", "en": "eng_Latn", "he": "heb_Hebr", "th": "tha_Thai",
    "ar": "arb_Arab", "bn": "ben_Beng", "ja": "jpn_Jpan", "es": "spa_Latn", "de": "deu_Latn",
    "fr": "fra_Latn", "ro": "ron_Latn", "ru": "rus_Cyrl", "ur": "urd_Arab",
}  # fmt: skip
_NLLB_RE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")
# Never translated: LLaVA's image placeholder (with the whitespace around it).
_PROTECTED_RE = re.compile(r"(\s*<image>\s*)")
_LINE_RE = re.compile(r"(\n+)")
# Sentence ends of the English source: split after . ! ? followed by whitespace.
_SENTENCE_RE = re.compile(r"(?<=[.!?])(\s+)")
COLUMNS = ("segment_id", "source", "translation")
CHECKPOINT_EVERY = 4  # batches per checkpoint file


def nllb_code(lang: str) -> str:
    """The NLLB code of an ISO 639-1 code (or an NLLB code, returned unchanged).

    Raises:
        ValueError: for a code that is neither.
    """
    if lang in NLLB_CODES:
        return NLLB_CODES[lang]
    if isinstance(lang, str) and _NLLB_RE.match(lang):
        return lang
    raise ValueError(
        f"unknown language {lang!r}: expected ISO 639-1 ({', '.join(NLLB_CODES)}) or an NLLB code like 'deu_Latn'"
    )


def split_segments(text: str) -> list[tuple[str, bool]]:
    """``text`` as ``(piece, translatable)`` pairs whose pieces concatenate back to ``text``.

    Lines and sentences become separate translatable pieces; ``<image>``, line breaks, the
    whitespace between sentences and pieces without a letter (numbers, punctuation, box
    coordinates) are kept as they are.
    """
    if not isinstance(text, str):
        raise ValueError(f"text to translate must be str, got {type(text).__name__}: {text!r}")
    out: list[tuple[str, bool]] = []
    for i, block in enumerate(_PROTECTED_RE.split(text)):
        if i % 2:
            out.append((block, False))
            continue
        for j, line in enumerate(_LINE_RE.split(block)):
            if j % 2:
                out.append((line, False))
                continue
            for k, piece in enumerate(_SENTENCE_RE.split(line)):
                if not piece:
                    continue
                out.append((piece, bool(k % 2 == 0 and _has_letter(piece))))
    return _strip_edges(out)


def _has_letter(piece: str) -> bool:
    return any(ch.isalpha() for ch in piece)


def _strip_edges(pieces: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    # Leading/trailing spaces of a translatable piece are kept verbatim, not sent to the model.
    out: list[tuple[str, bool]] = []
    for piece, translatable in pieces:
        core = piece.strip()
        if not translatable or core == piece:
            out.append((piece, translatable))
            continue
        lead, trail = piece[: len(piece) - len(piece.lstrip())], piece[len(piece.rstrip()) :]
        out += [(lead, False)] if lead else []
        out.append((core, True))
        out += [(trail, False)] if trail else []
    return out


def segment_id(text: str) -> str:
    """A stable key of a segment's text (16 hex digits of its SHA-1)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def segment_table(texts: Iterable[str]) -> pd.DataFrame:
    """The unique translatable segments of ``texts``, sorted by :func:`segment_id`.

    Missing values (None/NaN) are skipped; lists of strings are flattened.
    """
    seen: dict[str, str] = {}
    for text in _flatten(texts):
        for piece, translatable in split_segments(text):
            if translatable and piece not in seen:
                seen[piece] = segment_id(piece)
    df = pd.DataFrame({"segment_id": list(seen.values()), "source": list(seen)})
    return df.sort_values("segment_id", kind="stable").reset_index(drop=True)


def _flatten(texts: Iterable[Any]) -> Iterable[str]:
    for text in texts:
        if text is None or (isinstance(text, float) and pd.isna(text)):
            continue
        if isinstance(text, str):
            yield text
        else:
            yield from _flatten(list(text))


def shard(segments: pd.DataFrame, index: int, n_shards: int) -> pd.DataFrame:
    """Rows ``index::n_shards`` of the segment table (stable: the table is sorted by hash)."""
    if not 0 <= index < n_shards:
        raise ValueError(f"shard index {index} outside 0..{n_shards - 1}")
    return segments.iloc[index::n_shards].reset_index(drop=True)


def translate_batch(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    src: str,
    tgt: str,
    max_length: int = 512,
    num_beams: int = 1,
) -> list[str]:
    """Translate one batch from ``src`` to ``tgt`` (NLLB codes); greedy unless ``num_beams`` > 1.

    Inputs are truncated to ``max_length`` tokens. Each output is cut to twice its own input
    length plus 16 tokens (capped at ``max_length``), so a translation that never reaches EOS
    does not depend on the other texts of its batch.

    Raises:
        ValueError: if the tokenizer does not know ``tgt``.
    """
    import torch

    target_id = tokenizer.convert_tokens_to_ids(tgt)
    if target_id is None or target_id == tokenizer.unk_token_id:
        raise ValueError(f"the tokenizer has no language token {tgt!r}")
    if hasattr(tokenizer, "src_lang"):
        tokenizer.src_lang = src
    enc = tokenizer(
        list(texts), return_tensors="pt", padding=True, truncation=True, max_length=max_length
    )
    enc = enc.to(model.device)
    budgets = (2 * enc["attention_mask"].sum(dim=1) + 16).clamp(max=max_length).tolist()
    with torch.inference_mode():
        out = model.generate(
            **enc,
            forced_bos_token_id=target_id,
            max_new_tokens=max(budgets),
            num_beams=num_beams,
            do_sample=False,
        )
    # position 0 is the decoder start token; a row keeps at most its own budget after it
    rows = [row[: 1 + int(budget)] for row, budget in zip(out, budgets, strict=True)]
    return [t.strip() for t in tokenizer.batch_decode(rows, skip_special_tokens=True)]


def translate_shard(
    segments: pd.DataFrame,
    out_path: str | Path,
    model: Any,
    tokenizer: Any,
    *,
    tgt: str,
    src: str = "en",
    shard_index: int = 0,
    n_shards: int = 1,
    batch_size: int = 32,
    max_length: int = 512,
    num_beams: int = 1,
) -> pd.DataFrame:
    """Translate shard ``shard_index`` of ``segments`` and write ``out_path`` (parquet) atomically.

    Segments are batched longest first (little padding); every :data:`CHECKPOINT_EVERY` batches
    are written under ``<out_path>.part/`` and skipped on a rerun. The partial work is
    discarded when the settings or the shard's segments differ from the interrupted run's.

    Returns:
        The table ``segment_id, source, translation`` of the shard, sorted by ``segment_id``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    src, tgt = nllb_code(src), nllb_code(tgt)
    out_path = Path(out_path)
    rows = shard(segments, shard_index, n_shards)
    order = rows.assign(_len=rows["source"].str.len()).sort_values(
        ["_len", "segment_id"], ascending=[False, True]
    )
    batches = [order.iloc[i : i + batch_size] for i in range(0, len(order), batch_size)]
    part = _prepare_part(
        out_path,
        rows,
        src=src,
        tgt=tgt,
        batch_size=batch_size,
        max_length=max_length,
        num_beams=num_beams,
    )
    for c in range(0, len(batches), CHECKPOINT_EVERY):
        path = part / f"chunk-{c // CHECKPOINT_EVERY:05d}.parquet"
        if path.exists():
            continue
        done = []
        for batch in batches[c : c + CHECKPOINT_EVERY]:
            texts = batch["source"].tolist()
            translated = translate_batch(
                model,
                tokenizer,
                texts,
                src=src,
                tgt=tgt,
                max_length=max_length,
                num_beams=num_beams,
            )
            done.append(batch[["segment_id", "source"]].assign(translation=translated))
        write_parquet(pd.concat(done, ignore_index=True), path)
    parts = [pd.read_parquet(p) for p in sorted(part.glob("chunk-*.parquet"))]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(COLUMNS))
    table = table.sort_values("segment_id", kind="stable").reset_index(drop=True)[list(COLUMNS)]
    write_parquet(table, out_path)
    shutil.rmtree(part, ignore_errors=True)
    return table


def _prepare_part(out_path: Path, rows: pd.DataFrame, **settings: Any) -> Path:
    part = out_path.with_name(out_path.name + ".part")
    ids = hashlib.sha1("\n".join(rows["segment_id"]).encode()).hexdigest()
    meta = {**settings, "segments": ids}
    meta_path = part / "meta.json"
    if part.exists() and (
        not meta_path.is_file() or json.loads(meta_path.read_text(encoding="utf-8")) != meta
    ):
        shutil.rmtree(part)  # another run's work: chunk boundaries would not line up
    part.mkdir(parents=True, exist_ok=True)
    if not meta_path.is_file():
        write_json(meta, meta_path)
    return part


def load_mapping(paths: Iterable[str | Path]) -> dict[str, str]:
    """``source -> translation`` from the shard tables written by :func:`translate_shard`."""
    mapping: dict[str, str] = {}
    for path in paths:
        table = pd.read_parquet(path, columns=["source", "translation"])
        mapping.update(zip(table["source"], table["translation"], strict=True))
    return mapping


def assemble(text: str, mapping: Mapping[str, str]) -> str:
    """``text`` with every translatable segment replaced by its translation.

    Raises:
        ValueError: if a segment has no translation (a shard is missing).
    """
    out = []
    for piece, translatable in split_segments(text):
        if not translatable:
            out.append(piece)
        elif piece in mapping:
            out.append(mapping[piece])
        else:
            raise ValueError(
                f"no translation for segment {piece[:60]!r} (is a translation shard missing?)"
            )
    return "".join(out)


def translate_value(value: Any, mapping: Mapping[str, str]) -> Any:
    """:func:`assemble` applied to a string, or to each string of a list; None/NaN unchanged."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return value
    if isinstance(value, str):
        return assemble(value, mapping)
    return [translate_value(v, mapping) for v in value]


def translate_frame(
    df: pd.DataFrame, columns: Sequence[str], mapping: Mapping[str, str]
) -> pd.DataFrame:
    """A copy of ``df`` whose ``columns`` (strings or lists of strings) are translated."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"column {missing[0]!r} not in the table (have {list(df.columns)})")
    out = df.copy()
    for col in columns:
        out[col] = [translate_value(v, mapping) for v in df[col]]
    return out


def translate_texts(
    texts: Sequence[str],
    model: Any,
    tokenizer: Any,
    *,
    tgt: str,
    src: str = "en",
    batch_size: int = 32,
    max_length: int = 512,
    num_beams: int = 1,
) -> list[str]:
    """Translate a small list in memory (segment, translate unique segments, assemble)."""
    segments = segment_table(texts)
    src, tgt = nllb_code(src), nllb_code(tgt)
    mapping: dict[str, str] = {}
    sources = segments["source"].tolist()
    for i in range(0, len(sources), batch_size):
        batch = sources[i : i + batch_size]
        done = translate_batch(
            model, tokenizer, batch, src=src, tgt=tgt, max_length=max_length, num_beams=num_beams
        )
        mapping.update(zip(batch, done, strict=True))
    return [assemble(t, mapping) for t in texts]


def load_translator(path: str | Path, device: Any, dtype: Any = None) -> tuple[Any, Any]:
    """A staged seq2seq translator and its tokenizer: bf16 on CUDA, fp32 on the CPU, eval mode."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    device = torch.device(device)
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if not (Path(path) / "config.json").is_file():
        raise ValueError(
            f"no translation model at {str(path)!r} (stage it with the download rules)"
        )
    model = AutoModelForSeq2SeqLM.from_pretrained(path, dtype=dtype).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer
