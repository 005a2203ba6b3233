"""Gold sample of Hinck et al. 2024, appendix B: stratified sampling and annotation sheets.

Sampling: strata are benchmark x language cells. Each row carries the weight
``1 / (its benchmark's share of rows) x language multiplier`` (German x4, Chinese and Hindi x2,
Romanian, Russian and Urdu x1/2 by default). The sample size is allocated across strata in
proportion to ``stratum rows x stratum weight`` and drawn by simple random sampling without
replacement within each stratum, so every row's inclusion probability is exactly
``pi = n_h / N_h``, known for sampled and unsampled rows alike (as DSL needs).

Annotation: each sampled row answers three questions -- the language of the answer
(``answer_language``), whether it matches the query language (``matches_gold``) and whether it
is correct (``correct``), the last two true/false/NA. Sheets are CSV files for human annotators;
:func:`fill_sheet` lets an automatic (oracle) annotator answer instead.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ifl.lid import LANGUAGE_NAMES

DEFAULT_LANGUAGE_MULTIPLIERS: dict[str, float] = {
    "de": 4,
    "zh": 2,
    "hi": 2,
    "ro": 0.5,
    "ru": 0.5,
    "ur": 0.5,
}

SHEET_COLUMNS: list[str] = [
    "id",
    "model",
    "task_id",
    "benchmark",
    "language",
    "condition",
    "question",
    "reference",
    "reply",
    "answer_language",
    "matches_gold",
    "correct",
]
ANSWER_COLUMNS: list[str] = ["answer_language", "matches_gold", "correct"]
_CONTENT_COLUMNS = [c for c in SHEET_COLUMNS if c not in ANSWER_COLUMNS and c != "id"]
_BOOL_VALUES = {"true": True, "false": False, "na": None, "": None}


# ----------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------


def _require_columns(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing} (have {list(df.columns)})")


def gold_weights(
    df: pd.DataFrame,
    *,
    benchmark_col: str = "benchmark",
    language_col: str = "language",
    multipliers: Mapping[str, float] = DEFAULT_LANGUAGE_MULTIPLIERS,
) -> np.ndarray:
    """Per-row sampling weight: 1 / (benchmark's share of rows) x language multiplier.

    Languages absent from ``multipliers`` get multiplier 1.
    """
    _require_columns(df, [benchmark_col, language_col], "data frame")
    for lang, mult in multipliers.items():
        if not (isinstance(mult, int | float) and math.isfinite(mult) and mult >= 0):
            raise ValueError(f"multiplier for {lang!r} must be a finite number >= 0, got {mult!r}")
    for col in (benchmark_col, language_col):
        if df[col].isna().any():
            bad = df.index[df[col].isna().to_numpy()][0]
            raise ValueError(f"column {col!r} is missing a value in row {bad!r}")
    if len(df) == 0:
        return np.zeros(0)
    share = df[benchmark_col].map(df[benchmark_col].value_counts(normalize=True))
    mult = df[language_col].map(lambda lang: float(multipliers.get(lang, 1.0)))
    return (1.0 / share.to_numpy(dtype=float)) * mult.to_numpy(dtype=float)


def _allocate(sizes: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Split ``size`` across strata in proportion to ``sizes x weights``, capped at ``sizes``.

    Strata whose proportional share exceeds their size are taken whole and the rest is
    re-split among the others until no share exceeds its cap; the real-valued shares are then
    rounded by largest remainder (ties to the earlier stratum), which keeps every count within
    its cap because caps are integers.
    """
    target = sizes * weights
    capped = np.zeros(len(sizes), dtype=bool)
    while True:
        free = ~capped & (target > 0)
        remaining = size - sizes[capped].sum()
        total = target[free].sum()
        quota = np.where(capped, sizes, 0.0).astype(float)
        if remaining > 0 and total > 0:
            quota[free] = remaining * target[free] / total
        over = free & (quota > sizes)
        if not over.any():
            break
        capped |= over
    counts = np.floor(quota + 1e-9).astype(int)
    short = size - counts.sum()
    if short > 0:
        # Only strata with room and positive weight may take a rounded-up row.
        eligible = (counts < sizes) & (target > 0)
        remainder = np.where(eligible, quota - counts, -np.inf)
        order = np.argsort(-remainder, kind="stable")[: min(short, int(eligible.sum()))]
        counts[order] += 1
    if counts.sum() != size:
        raise ValueError(
            f"cannot draw {size} rows: only {int(sizes[target > 0].sum())} rows have positive weight"
        )
    return counts


def _strata(df: pd.DataFrame, benchmark_col: str, language_col: str) -> tuple[np.ndarray, int]:
    """Stratum code per row (cells sorted by benchmark, then language) and the stratum count."""
    _require_columns(df, [benchmark_col, language_col], "data frame")
    keys = df[benchmark_col].astype(str) + "\x00" + df[language_col].astype(str)
    codes, uniques = pd.factorize(keys, sort=True)
    return codes, len(uniques)


def _stratum_allocation(
    df: pd.DataFrame,
    size: int,
    multipliers: Mapping[str, float],
    benchmark_col: str,
    language_col: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratum code per row, rows per stratum N_h and sample size per stratum n_h."""
    if not isinstance(size, int | np.integer) or isinstance(size, bool) or size < 0:
        raise ValueError(f"sample size must be a non-negative integer, got {size!r}")
    if size > len(df):
        raise ValueError(f"sample size {size} exceeds the number of rows {len(df)}")
    weights = gold_weights(
        df, benchmark_col=benchmark_col, language_col=language_col, multipliers=multipliers
    )
    codes, n_strata = _strata(df, benchmark_col, language_col)
    sizes = np.bincount(codes, minlength=n_strata)
    # Weights are constant within a stratum (a benchmark x language cell).
    stratum_weight = np.zeros(n_strata)
    stratum_weight[codes] = weights
    counts = _allocate(sizes, stratum_weight, int(size))
    return codes, sizes, counts


def inclusion_probabilities(
    df: pd.DataFrame,
    size: int,
    *,
    multipliers: Mapping[str, float] = DEFAULT_LANGUAGE_MULTIPLIERS,
    benchmark_col: str = "benchmark",
    language_col: str = "language",
) -> np.ndarray:
    """Exact inclusion probability ``n_h / N_h`` of every row under :func:`sample_gold`."""
    codes, sizes, counts = _stratum_allocation(df, size, multipliers, benchmark_col, language_col)
    if len(df) == 0:
        return np.zeros(0)
    return (counts / sizes)[codes]


def sample_gold(
    df: pd.DataFrame,
    size: int,
    *,
    seed: int,
    multipliers: Mapping[str, float] = DEFAULT_LANGUAGE_MULTIPLIERS,
    benchmark_col: str = "benchmark",
    language_col: str = "language",
) -> pd.DataFrame:
    """Stratified sample of ``size`` rows without replacement (appendix B).

    Returns the sampled rows in their original order, with the original index kept as the
    index and as column ``row_id``, and their inclusion probability in column ``pi``.
    Deterministic for a given ``seed``.

    Raises:
        ValueError: if ``size`` exceeds the rows (with positive weight) or a column is missing.
    """
    for col in ("pi", "row_id"):
        if col in df.columns:
            raise ValueError(f"data frame already has a column {col!r}")
    codes, sizes, counts = _stratum_allocation(df, size, multipliers, benchmark_col, language_col)
    rng = np.random.default_rng(seed)
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    chosen = [
        order[starts[h] + rng.choice(sizes[h], size=counts[h], replace=False)]
        for h in range(len(sizes))
        if counts[h] > 0
    ]
    positions = np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=int)
    out = df.iloc[positions].copy()
    out["row_id"] = out.index
    out["pi"] = (counts / sizes)[codes[positions]] if len(positions) else np.zeros(0)
    return out


# ----------------------------------------------------------------------------------------------
# Annotation sheets
# ----------------------------------------------------------------------------------------------


def to_sheet(gold: pd.DataFrame) -> pd.DataFrame:
    """Annotation sheet for a gold sample: :data:`SHEET_COLUMNS`, answer columns empty.

    The ``id`` is taken from a column ``id`` if present, else ``row_id``, else the index.
    """
    _require_columns(gold, _CONTENT_COLUMNS, "gold sample")
    if "id" in gold.columns:
        ids = gold["id"]
    elif "row_id" in gold.columns:
        ids = gold["row_id"]
    else:
        ids = pd.Series(gold.index, index=gold.index)
    ids = ids.astype(str)
    dup = ids[ids.duplicated()]
    if len(dup):
        raise ValueError(f"duplicate sheet id {dup.iloc[0]!r}")
    sheet = gold[_CONTENT_COLUMNS].copy()
    sheet.insert(0, "id", ids.to_numpy())
    sheet["answer_language"] = ""
    sheet["matches_gold"] = pd.array([pd.NA] * len(sheet), dtype="boolean")
    sheet["correct"] = pd.array([pd.NA] * len(sheet), dtype="boolean")
    return sheet.reset_index(drop=True)[SHEET_COLUMNS]


def _format_bool(value: object) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "NA"
    return "true" if bool(value) else "false"


def write_sheet(sheet: pd.DataFrame, path: str | Path) -> None:
    """Write a (possibly filled) sheet as UTF-8 CSV, atomically (temporary file + rename).

    Answers are written as ``true``/``false``/``NA`` so that :func:`import_sheet` reads them
    back; empty answers stay empty.
    """
    _require_columns(sheet, SHEET_COLUMNS, "sheet")
    out = sheet[SHEET_COLUMNS].copy()
    out["answer_language"] = out["answer_language"].fillna("").astype(str)
    # Rows not yet annotated stay blank; in annotated rows a missing answer is written NA.
    annotated = out["answer_language"] != ""
    for col in ("matches_gold", "correct"):
        out[col] = [
            _format_bool(v) if done else "" for v, done in zip(out[col], annotated, strict=True)
        ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            out.to_csv(fh, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export_sheet(gold: pd.DataFrame, path: str | Path) -> None:
    """Write the blank annotation sheet of a gold sample to ``path`` (UTF-8 CSV, atomic)."""
    write_sheet(to_sheet(gold), path)


def _parse_bool(value: str, row_id: str, column: str) -> bool | None:
    key = value.strip().lower()
    if key not in _BOOL_VALUES:
        raise ValueError(f"row {row_id!r}: {column} must be true/false/NA, got {value!r}")
    return _BOOL_VALUES[key]


def _parse_language(value: str, row_id: str) -> str:
    name = value.strip().lower()
    if not name:
        raise ValueError(f"row {row_id!r}: answer_language is empty (write 'none' if no answer)")
    if name not in LANGUAGE_NAMES:
        raise ValueError(
            f"row {row_id!r}: unknown answer_language {value!r} (expected one of {LANGUAGE_NAMES})"
        )
    return name


def import_sheet(path: str | Path, *, expected_ids: Iterable[str]) -> pd.DataFrame:
    """Read and validate an annotated sheet.

    ``answer_language`` must be a canonical name (the 14 languages, ``other_latin``, ``other``
    or ``none``; case-insensitive); ``matches_gold`` and ``correct`` must be true, false or NA
    (case-insensitive, empty = NA). The ids must be exactly ``expected_ids``, each once.

    Returns:
        The sheet with ``answer_language`` as str and ``matches_gold``/``correct`` as pandas
        nullable booleans, rows in file order.

    Raises:
        ValueError: naming the offending row id and value.
    """
    sheet = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    _require_columns(sheet, SHEET_COLUMNS, f"sheet {str(path)!r}")
    ids = sheet["id"].str.strip()
    dup = ids[ids.duplicated()]
    if len(dup):
        raise ValueError(f"row {dup.iloc[0]!r}: duplicate id in sheet")
    expected = [str(i) for i in expected_ids]
    expected_set = set(expected)
    unexpected = [i for i in ids if i not in expected_set]
    if unexpected:
        raise ValueError(f"row {unexpected[0]!r}: unexpected id (not in the gold sample)")
    present = set(ids)
    missing = [i for i in expected if i not in present]
    if missing:
        raise ValueError(f"row {missing[0]!r}: missing from sheet ({len(missing)} ids missing)")
    sheet["id"] = ids
    sheet["answer_language"] = [
        _parse_language(v, i) for v, i in zip(sheet["answer_language"], ids, strict=True)
    ]
    for col in ("matches_gold", "correct"):
        values = [_parse_bool(v, i, col) for v, i in zip(sheet[col], ids, strict=True)]
        sheet[col] = pd.array([pd.NA if v is None else v for v in values], dtype="boolean")
    return sheet[SHEET_COLUMNS]


def read_annotated(path: str | Path) -> pd.DataFrame:
    """An annotated sheet as the gold-annotate rules write it, validated on its own ids."""
    ids = pd.read_csv(path, dtype=str, keep_default_na=False)["id"]
    return import_sheet(path, expected_ids=ids)


Annotator = Callable[[pd.Series], tuple[str, bool | None, bool | None]]


def fill_sheet(sheet: pd.DataFrame, annotator: Annotator) -> pd.DataFrame:
    """Answer every row of a sheet with ``annotator(row) -> (language, matches, correct)``.

    The annotator returns a canonical language name and two booleans or ``None`` (NA); the
    result has the same types as :func:`import_sheet`.

    Raises:
        ValueError: if the annotator returns an unknown language or a non-boolean answer.
    """
    _require_columns(sheet, SHEET_COLUMNS, "sheet")
    languages, matches, correct = [], [], []
    for _, row in sheet.iterrows():
        row_id = str(row["id"])
        answer = annotator(row)
        if not (isinstance(answer, tuple) and len(answer) == 3):
            raise ValueError(f"row {row_id!r}: annotator must return a 3-tuple, got {answer!r}")
        lang, match, corr = answer
        if not isinstance(lang, str):
            raise ValueError(f"row {row_id!r}: unknown answer_language {lang!r}")
        languages.append(_parse_language(lang, row_id))
        for value, col, store in ((match, "matches_gold", matches), (corr, "correct", correct)):
            if value is not None and not isinstance(value, bool | np.bool_):
                raise ValueError(f"row {row_id!r}: {col} must be True/False/None, got {value!r}")
            store.append(pd.NA if value is None else bool(value))
    out = sheet[SHEET_COLUMNS].copy()
    out["answer_language"] = languages
    out["matches_gold"] = pd.array(matches, dtype="boolean")
    out["correct"] = pd.array(correct, dtype="boolean")
    return out
