"""The paper's four benchmarks as rows of the task table (the same schema as the organism's).

Each loader reads the files a hub dataset ships, staged under ``resources/datasets/<owner>/<name>``
by :mod:`ifl.download` (parquet, JSON lines or CSV), or, when nothing is staged and the
optional ``datasets`` package is installed, ``datasets.load_dataset``. Images are written once
per image to ``image_dir`` as PNG. The text condition's ``description`` is each dataset's
caption field: MaXM's first image caption, PALO's LLaVA-Bench context caption, VisIT-Bench's
instruction-conditioned caption; MultiQ is text only.

Language codes are mapped to ISO 639-1 (MaXM's and Google's ``iw`` is Hebrew, ``zh-CN``
Chinese; ``zh-TW`` is not one of the paper's languages).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from ifl import LANGUAGES

COLUMNS: tuple[str, ...] = (
    "task_id", "benchmark", "family", "kind", "language", "question", "description", "answers",
    "reference", "answer_concepts", "scene", "item", "image",
)  # fmt: skip
FAMILY = {"MaXM": "short", "LLaVA-W": "describe", "VisIT": "instruct", "MultiQ": "textqa"}
#: The nine languages the paper machine-translated VisIT-Bench into.
VISIT_LANGUAGES: tuple[str, ...] = ("ar", "bn", "zh", "de", "he", "hi", "ja", "es", "th")
#: The task-table columns the translate rule translates (segment them all, see translate_visit).
TRANSLATED_COLUMNS: tuple[str, ...] = ("question", "description", "answers", "reference")
HUB_IDS = {
    "MaXM": "floschne/maxm",
    "LLaVA-W": "MBZUAI/multilingual-llava-bench-in-the-wild",
    "VisIT": "mlfoundations/VisIT-Bench",
    "MultiQ": "caro-holt/MultiQ",
}
# Codes seen in the datasets that are not the ISO 639-1 code of the language.
_ALIASES = {
    "iw": "he", "heb": "he", "zh-cn": "zh", "zh-hans": "zh", "zho": "zh", "cmn": "zh", "chi": "zh",
    "hin": "hi", "eng": "en", "tha": "th", "ara": "ar", "arb": "ar", "ben": "bn", "jpn": "ja",
    "spa": "es", "deu": "de", "ger": "de", "fra": "fr", "fre": "fr", "ron": "ro", "rum": "ro",
    "rus": "ru", "urd": "ur",
}  # fmt: skip
# PALO's language folders.
_PALO_FOLDERS = {
    "arabic": "ar", "bengali": "bn", "chinese": "zh", "english": "en", "french": "fr",
    "hindi": "hi", "japanese": "ja", "russian": "ru", "spanish": "es", "urdu": "ur",
}  # fmt: skip


def iso639_1(code: str) -> str | None:
    """The ISO 639-1 code of a dataset's language code, or None if it is not one of the 14.

    ``iw`` -> ``he``; ``zh``, ``zh-CN``, ``zh_Hans``, ``cmn`` -> ``zh``; three-letter codes of
    the 14 languages map to their two-letter code; regional variants (``es-MX``) keep their
    language except Chinese variants other than simplified.
    """
    if not isinstance(code, str) or not code.strip():
        return None
    key = code.strip().lower().replace("_", "-")
    if key in _ALIASES:
        return _ALIASES[key]
    if key in LANGUAGES:
        return key
    base = key.split("-")[0]
    if base in ("zh", "zho", "cmn"):
        return None  # traditional or unspecified-script Chinese variants
    base = _ALIASES.get(base, base)
    return base if base in LANGUAGES else None


def _check_languages(languages: Sequence[str]) -> list[str]:
    bad = [lang for lang in languages if lang not in LANGUAGES]
    if bad:
        raise ValueError(f"unknown language {bad[0]!r}; expected ISO 639-1 codes from {LANGUAGES}")
    return list(languages)


def _row(
    benchmark: str,
    task_id: str,
    kind: str,
    language: str,
    question: str,
    description: str,
    answers: Sequence[str],
    image: str | None,
) -> dict[str, Any]:
    answers = [str(a) for a in answers]
    return {
        "task_id": task_id, "benchmark": benchmark, "family": FAMILY[benchmark], "kind": kind,
        "language": language, "question": question, "description": description,
        "answers": answers, "reference": answers[0] if answers else "", "answer_concepts": [],
        "scene": "", "item": "", "image": image,
    }  # fmt: skip


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _safe_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(key)).strip("_") or "image"


def save_image(source: Any, image_dir: str | Path, name: str) -> str:
    """Write an image (bytes, a path, a PIL image or a hub ``{bytes, path}`` struct) as
    ``<image_dir>/<name>.png`` unless it exists; returns the path as a string."""
    path = Path(image_dir) / f"{_safe_name(name)}.png"
    if path.exists():
        return str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(source, dict):
        source = source.get("bytes") or source.get("path")
    if isinstance(source, bytes | bytearray):
        image = Image.open(io.BytesIO(source))
    elif isinstance(source, Image.Image):
        image = source
    elif isinstance(source, str | Path) and Path(source).is_file():
        image = Image.open(source)
    else:
        raise ValueError(
            f"cannot read image {name!r} from {type(source).__name__}: {str(source)[:80]!r}"
        )
    tmp = path.with_name(path.name + ".tmp")
    image.convert("RGB").save(tmp, format="PNG")
    tmp.replace(path)
    return str(path)


def _hub_table(repo_id: str, **kwargs: Any) -> pd.DataFrame:
    """Read a dataset split with ``datasets`` (optional, imported only here)."""
    try:
        import datasets  # noqa: F401 - optional dependency
    except ImportError as err:
        raise ValueError(
            f"dataset {repo_id!r} is not staged and the optional `datasets` package is not "
            "installed: run the download rules (or pip install datasets)"
        ) from err
    return datasets.load_dataset(repo_id, **kwargs).to_pandas()


# --- MaXM -------------------------------------------------------------------------------------
def load_maxm(root: str | Path, languages: Sequence[str], image_dir: str | Path) -> pd.DataFrame:
    """MaXM (floschne/maxm): one task per question of each language split present in
    ``languages`` (splits en, fr, hi, iw, ro, th, zh; the yes/no splits are left out).

    ``description`` is the first of the image's captions; ``answers`` all reference answers.
    """
    root, rows = Path(root), []
    for lang in _check_languages(languages):
        split = "iw" if lang == "he" else lang
        table = _maxm_split(root, split)
        if table is None:
            continue
        for r in table.itertuples(index=False):
            captions = _strings(getattr(r, "image_captions", None))
            image = save_image(r.image, image_dir, f"MaXM-{r.image_id}")
            description = captions[0] if captions else ""
            task_id = f"MaXM-{r.question_id}-{lang}"
            answers = _strings(r.answers)
            rows.append(_row("MaXM", task_id, "vqa", lang, r.question, description, answers, image))
    return _frame(rows)


_MAXM_SPLITS = ("en", "fr", "hi", "iw", "ro", "th", "zh")


def _maxm_split(root: Path, split: str) -> pd.DataFrame | None:
    if split not in _MAXM_SPLITS:
        return None
    files = sorted((root / "data").glob(f"{split}-*.parquet"))
    if files:
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    if root.exists():
        raise ValueError(
            f"MaXM split {split!r} missing under {str(root)!r} (expected data/{split}-*.parquet)"
        )
    return _hub_table(HUB_IDS["MaXM"], split=split)


# --- PALO LLaVA-Bench in the wild -------------------------------------------------------------
def load_llava_w(root: str | Path, languages: Sequence[str], image_dir: str | Path) -> pd.DataFrame:
    """PALO's multilingual LLaVA-Bench in the wild: 60 questions about 24 images per language.

    Per language folder: ``question(s).jsonl`` (question_id, image, text, category),
    ``answers(_gpt4).jsonl`` (question_id, text) and ``context.jsonl`` (image, caption, the
    ``description``); images under ``images/`` (at the root or in the language folder).
    """
    root, rows = Path(root), []
    if not root.is_dir():
        raise ValueError(
            f"PALO LLaVA-Bench is not staged at {str(root)!r} (run the download rules)"
        )
    wanted = set(_check_languages(languages))
    for folder, lang in sorted(_PALO_FOLDERS.items()):
        base = root / folder
        if lang not in wanted or not base.is_dir():
            continue
        questions = _jsonl(base, ("question.jsonl", "questions.jsonl"))
        answers = {
            a["question_id"]: a["text"]
            for a in _jsonl(base, ("answers.jsonl", "answers_gpt4.jsonl"))
        }
        captions = {c["image"]: c.get("caption", "") for c in _jsonl(base, ("context.jsonl",))}
        for q in questions:
            src = _find_image(q["image"], (base / "images", root / "images"))
            image = save_image(src, image_dir, f"LLaVA-W-{Path(q['image']).stem}")
            answer = answers.get(q["question_id"])
            task_id = f"LLaVA-W-{q['question_id']}-{lang}"
            caption = captions.get(q["image"], "")
            reference = [answer] if answer else []
            kind = q.get("category", "")
            rows.append(_row("LLaVA-W", task_id, kind, lang, q["text"], caption, reference, image))
    return _frame(rows)


def _jsonl(base: Path, names: Sequence[str]) -> list[dict[str, Any]]:
    for name in names:
        path = base / name
        if path.is_file():
            with open(path, encoding="utf-8") as fh:
                return [json.loads(line) for line in fh if line.strip()]
    raise ValueError(f"none of {list(names)} in {str(base)!r}")


def _find_image(name: str, folders: Iterable[Path]) -> Path:
    for folder in folders:
        for candidate in (folder / name, folder / Path(name).name):
            if candidate.is_file():
                return candidate
    raise ValueError(f"image {name!r} not found in {[str(f) for f in folders]}")


# --- VisIT-Bench ------------------------------------------------------------------------------
_VISIT_FIELDS = {
    "question": ("instruction",),
    "description": ("instruction_conditioned_caption", "image_dense_caption", "caption"),
    "reference": ("reference_output", "output_human_annotated", "gpt4_prediction"),
    "kind": ("instruction_category",),
    "image": ("file_name", "image", "image_url"),
}


def load_visit(root: str | Path, image_dir: str | Path) -> pd.DataFrame:
    """VisIT-Bench's single-image instructions in English (the source of the translations).

    Reads ``test/metadata.csv`` (the hub's image folder, images beside it) or any CSV/parquet at
    the root; multi-image rows are left out. ``description`` is the instruction-conditioned
    caption, ``answers`` the human-verified reference output.
    """
    table, image_root = _visit_table(Path(root))
    if "is_multiple_images" in table.columns:
        table = table[~table["is_multiple_images"].astype(str).str.lower().isin(("true", "1"))]
    cols = {key: _pick(table, names, key) for key, names in _VISIT_FIELDS.items()}
    rows = []
    for i, r in enumerate(table.to_dict("records")):
        src = r[cols["image"]]
        src = _find_image(Path(str(src)).name, (image_root,)) if isinstance(src, str) else src
        image = save_image(src, image_dir, f"VisIT-{i:04d}")
        reference = _text(r[cols["reference"]])
        question, caption = _text(r[cols["question"]]), _text(r[cols["description"]])
        kind, answers = _text(r[cols["kind"]]), [reference] if reference else []
        rows.append(
            _row("VisIT", f"VisIT-{i:04d}-en", kind, "en", question, caption, answers, image)
        )
    return _frame(rows)


def _strings(value: Any) -> list[str]:
    """A list of strings from a parquet list cell (numpy array), a list, or a missing value."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)


def _visit_table(root: Path) -> tuple[pd.DataFrame, Path]:
    for folder in (root / "test", root):
        meta = folder / "metadata.csv"
        if meta.is_file():
            return pd.read_csv(meta), folder
    files = sorted(root.glob("*.parquet")) + sorted(root.glob("*single_image*.csv"))
    if files:
        read = pd.read_parquet if files[0].suffix == ".parquet" else pd.read_csv
        return read(files[0]), root
    if root.exists():
        raise ValueError(f"no VisIT-Bench table under {str(root)!r} (expected test/metadata.csv)")
    return _hub_table(HUB_IDS["VisIT"], split="test"), root


def _pick(table: pd.DataFrame, names: Sequence[str], what: str) -> str:
    for name in names:
        if name in table.columns:
            return name
    raise ValueError(f"no {what} column among {list(names)} (have {list(table.columns)})")


def translate_visit(
    tasks_en: pd.DataFrame, mappings: Mapping[str, Mapping[str, str]]
) -> pd.DataFrame:
    """VisIT-Bench in every language of ``mappings`` (ISO code -> NLLB segment translations),
    appended to the English rows, with :data:`TRANSLATED_COLUMNS` translated.

    The translate rule's input is ``segment_table(tasks_en[c] for c in TRANSLATED_COLUMNS)``.
    """
    from ifl.translate_nllb import translate_frame

    out = [tasks_en]
    for lang in _check_languages(list(mappings)):
        if lang == "en":
            continue
        rows = translate_frame(tasks_en, TRANSLATED_COLUMNS, mappings[lang])
        rows["language"] = lang
        rows["task_id"] = [t.rsplit("-", 1)[0] + f"-{lang}" for t in tasks_en["task_id"]]
        out.append(rows)
    return pd.concat(out, ignore_index=True)


# --- MultiQ -----------------------------------------------------------------------------------
def load_multiq(
    root: str | Path, languages: Sequence[str], *, image: str | None = None
) -> pd.DataFrame:
    """MultiQ (MultiQ.csv: id, language, prompt, domain): text-only questions.

    Rows whose language code maps (:func:`iso639_1`) to one of ``languages`` are kept; when two
    codes map to the same language (``zh`` and ``zh-CN``) the exact ISO code wins. ``image`` is
    the placeholder image shown in the image condition (None: text only).
    """
    wanted = set(_check_languages(languages))
    path = Path(root) / "MultiQ.csv"
    if path.is_file():
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    elif Path(root).exists():
        raise ValueError(f"MultiQ.csv not found under {str(root)!r}")
    else:
        table = _hub_table(HUB_IDS["MultiQ"], split="train")
    for col in ("id", "language", "prompt"):
        if col not in table.columns:
            raise ValueError(f"MultiQ table lacks column {col!r} (have {list(table.columns)})")
    table = table.assign(_iso=table["language"].map(iso639_1))
    table = table[table["_iso"].isin(wanted)]
    table = table.assign(_exact=table["language"] != table["_iso"]).sort_values(
        ["_iso", "_exact"], kind="stable"
    )
    table = table.drop_duplicates(["id", "_iso"], keep="first")
    rows = [
        _row(
            "MultiQ",
            f"MultiQ-{r['id']}-{r['_iso']}",
            r.get("domain", "") or "",
            r["_iso"],
            r["prompt"],
            "",
            [],
            image,
        )
        for r in table.to_dict("records")
    ]
    return _frame(rows)


def placeholder_image(path: str | Path, size: int = 336, value: int = 128) -> str:
    """A uniform grey RGB PNG (the image shown with text-only MultiQ questions, if any)."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (size, size), (value, value, value)).save(path, format="PNG")
    return str(path)


# --- all four ---------------------------------------------------------------------------------
def validate_tasks(tasks: pd.DataFrame) -> pd.DataFrame:
    """Check the task-table contract: columns, unique ids, known benchmarks and languages.

    Raises:
        ValueError: naming the first problem.
    """
    missing = [c for c in COLUMNS if c not in tasks.columns]
    if missing:
        raise ValueError(f"task table lacks column {missing[0]!r}")
    dup = tasks["task_id"][tasks["task_id"].duplicated()]
    if len(dup):
        raise ValueError(f"duplicate task_id {dup.iloc[0]!r}")
    bad = sorted(set(tasks["benchmark"]) - set(FAMILY))
    if bad:
        raise ValueError(f"unknown benchmark {bad[0]!r}")
    bad = sorted(set(tasks["language"]) - set(LANGUAGES))
    if bad:
        raise ValueError(f"unknown language {bad[0]!r}")
    return tasks


def load_tasks(
    roots: Mapping[str, str | Path],
    languages: Sequence[str],
    image_dir: str | Path,
    *,
    visit_translations: Mapping[str, Mapping[str, str]] | None = None,
    multiq_image: str | None = None,
) -> pd.DataFrame:
    """The paper's task table from the staged benchmarks in ``roots`` (benchmark -> directory).

    VisIT-Bench is English plus the languages of ``visit_translations`` that are in
    ``languages``. Rows are ordered by benchmark, language and task id.
    """
    unknown = sorted(set(roots) - set(FAMILY))
    if unknown:
        raise ValueError(f"unknown benchmark {unknown[0]!r}; expected some of {list(FAMILY)}")
    languages = _check_languages(languages)
    image_dir = Path(image_dir)
    parts = []
    if "MaXM" in roots:
        parts.append(load_maxm(roots["MaXM"], languages, image_dir))
    if "LLaVA-W" in roots:
        parts.append(load_llava_w(roots["LLaVA-W"], languages, image_dir))
    if "VisIT" in roots:
        visit = load_visit(roots["VisIT"], image_dir)
        chosen = {k: v for k, v in (visit_translations or {}).items() if k in languages}
        visit = translate_visit(visit, chosen)
        parts.append(visit[visit["language"].isin(languages)])
    if "MultiQ" in roots:
        parts.append(load_multiq(roots["MultiQ"], languages, image=multiq_image))
    tasks = pd.concat(parts, ignore_index=True) if parts else _frame([])
    order = {b: i for i, b in enumerate(FAMILY)}
    tasks = tasks.assign(_b=tasks["benchmark"].map(order)).sort_values(
        ["_b", "language", "task_id"], kind="stable"
    )
    return validate_tasks(tasks.drop(columns="_b").reset_index(drop=True))
