"""The paper preset's data plumbing: staged assets, translation inputs, the task table.

Every function reads files staged by the download rules (:mod:`ifl.download`) under the
config's ``resources_dir`` and never touches the network; the rules of
``workflow/rules/paper*.smk`` call them through the ``ifl.cli.paper_*`` subcommands.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from ifl.download import Asset, local_dir, paper_assets, require_staged

#: Config ``datasets`` key -> :data:`ifl.download.DATASET_ASSETS` key (and loader benchmark).
BENCHMARK_ASSETS = {"MaXM": "maxm", "LLaVA-W": "llava-w", "VisIT": "visit", "MultiQ": "multiq"}
TRAINING_ASSETS = {"pretrain": "llava-pretrain", "instruct": "llava-instruct"}
CKA_IMAGE_SIZE = 336  # the images CKA compares are stored once, square, at CLIP-336's size


#: Short name of the text-only multilingual instruction data of the remedies (``remedies.text_data``).
REMEDY_TEXT = "dataset:remedy-text"


def assets(cfg: Mapping[str, Any]) -> dict[str, Asset]:
    """The config's hub assets by short name (``model:<name>``, ``dataset:<key>``, ``lid``),
    with the remedies' text data (:data:`REMEDY_TEXT`) when ``remedies.text_data`` is set."""
    out = paper_assets(cfg)
    text = remedy_text(cfg) if cfg.get("preset") != "audit" else None  # the audit trains nothing
    if text is not None:
        out[REMEDY_TEXT] = Asset(
            text["hub_id"], "dataset", (*text["files"], "README.md"), text.get("revision")
        )
    return out


def remedy_text(cfg: Mapping[str, Any]) -> dict[str, Any] | None:
    """``remedies.text_data`` (schema defaults filled), or None when the config has none."""
    return (cfg.get("remedies") or {}).get("text_data")


def remedy_text_files(cfg: Mapping[str, Any]) -> list[Path]:
    """The staged files of the remedies' text data that match ``remedies.text_data.files``.

    Raises:
        ValueError: if it is not configured, not staged, or no staged file matches.
    """
    spec = remedy_text(cfg)
    if spec is None:
        raise ValueError("remedies.text_data is not set: the text-only multilingual data")
    root = staged(cfg, REMEDY_TEXT)
    files = sorted({p for pattern in spec["files"] for p in root.glob(pattern) if p.is_file()})
    if not files:
        raise ValueError(
            f"remedies.text_data.files {spec['files']} match no file under {str(root)!r}"
        )
    return files


def check_remedies(cfg: Mapping[str, Any], variants: Sequence[Mapping[str, Any]]) -> None:
    """What the paper preset's remedy variants need from the config, checked before any job.

    Raises:
        ValueError: one line naming the variant and the missing setting.
    """
    from ifl.remedies import remedy_languages

    langs = remedy_languages(cfg)
    for v in variants:
        if v["kind"] != "trained":
            continue
        if v["text_ratio"] > 0 and remedy_text(cfg) is None:
            raise ValueError(
                f"remedy variant {v['name']!r} mixes in text-only multilingual data: set "
                "remedies.text_data (e.g. {hub_id: CohereForAI/aya_dataset})"
            )
        if not langs:
            raise ValueError(
                f"remedy variant {v['name']!r} needs a non-English language in remedies.languages"
            )


def asset(cfg: Mapping[str, Any], key: str) -> Asset:
    """One asset of the config by its short name.

    Raises:
        ValueError: if the config has no such asset (naming the known ones).
    """
    found = assets(cfg)
    if key not in found:
        raise ValueError(f"no asset {key!r} in the config; known: {', '.join(sorted(found))}")
    return found[key]


def find_asset(cfg: Mapping[str, Any], repo_type: str, repo_id: str) -> Asset:
    """The config's asset of a repository (what the download rule stages).

    Raises:
        ValueError: if no asset of the config is that repository.
    """
    for a in assets(cfg).values():
        if a.repo_type == repo_type and a.repo_id == repo_id:
            return a
    raise ValueError(f"{repo_type} {repo_id!r} is not an asset of this config")


def check_names(cfg: Mapping[str, Any]) -> None:
    """Released VLMs (``models``), backbones and encoders share the ``model:<name>`` asset names
    and, with the grid VLMs, the generation folders: each name may be used once.

    Raises:
        ValueError: naming the first name used twice.
    """
    from ifl.config import vlm_name

    if cfg.get("preset") == "audit":  # no grid: ifl.models.audited.audit_models checks the names
        return
    seen: dict[str, str] = {}
    sections = {
        "models": list(cfg.get("models") or {}),
        "backbones": list(cfg["backbones"]),
        "vision_encoders": list(cfg["vision_encoders"]),
        "grid": [vlm_name(e) for e in cfg["grid"]],
    }
    for section, names in sections.items():
        for name in names:
            if name in seen:
                raise ValueError(f"name {name!r} is used in both {seen[name]} and {section}")
            seen[name] = section


def staged(cfg: Mapping[str, Any], key: str) -> Path:
    """The staged directory of an asset; a one-line error when it was not staged."""
    return require_staged(asset(cfg, key), cfg["resources_dir"])


def marker(cfg: Mapping[str, Any], key: str) -> str:
    """The marker file whose existence says that the asset is staged (a rule input)."""
    from ifl.download import MARKER

    return str(local_dir(asset(cfg, key), cfg["resources_dir"]) / MARKER)


def training_json(cfg: Mapping[str, Any], part: str) -> tuple[Path, Path, int | None]:
    """``(json file, image root, limit)`` of ``training_data.<part>`` (pretrain or instruct)."""
    spec = cfg["training_data"][part]
    root = staged(cfg, f"dataset:{TRAINING_ASSETS[part]}")
    image_root = Path(spec["image_root"]) if spec.get("image_root") else root
    return root / spec["json"], image_root, spec.get("limit")


def read_training(cfg: Mapping[str, Any], part: str, path: str | Path | None = None, **kw: Any):
    """The examples of ``training_data.<part>`` (or of ``path``, a translation of them), images
    resolved against the part's image root."""
    from ifl.data.llava_data import read_llava_json

    default, image_root, limit = training_json(cfg, part)
    return read_llava_json(path or default, image_root, limit=limit, **kw)


# --- translation inputs ----------------------------------------------------------------------
def visit_segments(visit_en: pd.DataFrame) -> pd.DataFrame:
    """The unique translatable segments of English VisIT-Bench (every translated column)."""
    from ifl.data.loaders import TRANSLATED_COLUMNS
    from ifl.translate_nllb import segment_table

    return segment_table(v for col in TRANSLATED_COLUMNS for v in visit_en[col])


def instruct_segments(data: pd.DataFrame) -> pd.DataFrame:
    """The unique translatable segments of every turn of the stage-2 instructions."""
    from ifl.data.llava_data import turns
    from ifl.translate_nllb import segment_table

    return segment_table(turns(data)["text"])


def visit_languages(cfg: Mapping[str, Any]) -> list[str]:
    """Languages VisIT-Bench is translated into: ``datasets.VisIT.translate_to`` in ``languages``."""
    visit = (cfg.get("datasets") or {}).get("VisIT")
    if not visit:
        return []
    return [lang for lang in visit["translate_to"] if lang in cfg["languages"] and lang != "en"]


# --- the task table --------------------------------------------------------------------------
def build_tasks(
    cfg: Mapping[str, Any],
    image_dir: str | Path,
    *,
    visit_en: pd.DataFrame | None = None,
    visit_shards: Mapping[str, Sequence[str | Path]] | None = None,
) -> pd.DataFrame:
    """The paper's task table from the staged benchmarks of ``cfg['datasets']``.

    VisIT-Bench is ``visit_en`` (English, read once by the visit rule) plus its NLLB
    translations assembled from ``visit_shards`` (language -> shard tables). MultiQ's image in
    the image condition is ``datasets.MultiQ.image`` (``placeholder``: a grey square).
    """
    from ifl.data.loaders import FAMILY, load_tasks, placeholder_image, translate_visit
    from ifl.data.loaders import validate_tasks as _validate
    from ifl.translate_nllb import load_mapping

    datasets = cfg.get("datasets") or {}
    roots = {
        name: staged(cfg, f"dataset:{key}")
        for name, key in BENCHMARK_ASSETS.items()
        if name in datasets and name != "VisIT"
    }
    image = (datasets.get("MultiQ") or {}).get("image")
    if image == "placeholder":
        image = placeholder_image(Path(image_dir) / "multiq-placeholder.png")
    parts = [load_tasks(roots, cfg["languages"], image_dir, multiq_image=image)]
    if "VisIT" in datasets:
        if visit_en is None:
            raise ValueError("datasets.VisIT is configured but no English VisIT table was given")
        mappings = {lang: load_mapping(paths) for lang, paths in (visit_shards or {}).items()}
        visit = translate_visit(visit_en, mappings)
        parts.append(visit[visit["language"].isin(cfg["languages"])])
    tasks = pd.concat(parts, ignore_index=True)
    order = {b: i for i, b in enumerate(FAMILY)}
    tasks = tasks.assign(_b=tasks["benchmark"].map(order)).sort_values(
        ["_b", "language", "task_id"], kind="stable"
    )
    return _validate(tasks.drop(columns="_b").reset_index(drop=True))


# --- generation --------------------------------------------------------------------------------
def generation_queries(tasks: pd.DataFrame, prompter: Any) -> pd.DataFrame:
    """Both conditions of every task in the checkpoint's prompt format; tasks without an image
    (MultiQ with ``image: null``) are asked in the text condition only."""
    from ifl.generate import queries

    q = queries(tasks, prompter=prompter)
    keep = (q["condition"] != "image") | q["image"].notna()
    return q[keep].reset_index(drop=True)


# --- CKA images ---------------------------------------------------------------------------------
def square(image: Image.Image, size: int = CKA_IMAGE_SIZE) -> np.ndarray:
    """``image`` padded to a square with its mean colour (LLaVA-1.5's pad), resized, uint8 HWC."""
    image = image.convert("RGB")
    side = max(image.size)
    mean = tuple(int(c) for c in np.asarray(image).reshape(-1, 3).mean(0))
    canvas = Image.new("RGB", (side, side), mean)
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return np.asarray(canvas.resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)


def cka_images(paths: Iterable[str], n: int, seed: int, size: int = CKA_IMAGE_SIZE) -> np.ndarray:
    """``n`` images drawn without replacement (seeded) from ``paths``, as one uint8 array
    ``(n, size, size, 3)``: the organism corpus's ``images.npy`` contract, which the CKA rule reads."""
    paths = sorted(set(paths))
    if len(paths) < 4:
        raise ValueError(f"CKA needs at least 4 training images, found {len(paths)}")
    chosen = np.random.default_rng(seed).choice(len(paths), size=min(n, len(paths)), replace=False)
    return np.stack([square(Image.open(paths[i]), size) for i in sorted(chosen)])
