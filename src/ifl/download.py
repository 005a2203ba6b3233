"""Stage hub checkpoints and datasets under ``resources/`` for compute nodes without internet.

The paper preset's download rules run on the login node (Snakemake ``localrules``) and call
:func:`stage` once per asset; the GPU jobs then read the staged copies only
(:func:`require_staged`). A staged asset is a plain directory
``resources/<models|datasets>/<owner>/<name>`` plus a marker file written last, so an
interrupted download is never mistaken for a finished one.

Every failure to reach the hub is one line naming the repository and what to do: offline
(``HF_HUB_OFFLINE=1`` or no network), gated (accept the licence, set ``HF_TOKEN``), not found.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

MARKER = ".ifl-staged.json"
REPO_TYPES = ("model", "dataset")
# Formats transformers never needs here; *.bin weights are kept only without safetensors.
_IGNORE = ("*.msgpack", "*.h5", "*.onnx", "*.ot", "*.tflite", "flax_model*", "tf_model*", "*.gguf")
_TRUE = {"1", "on", "yes", "true"}


class HubError(RuntimeError):
    """The hub could not deliver an asset; the message is one line naming the repository."""


@dataclass(frozen=True)
class Asset:
    """One hub repository (or a few of its files) to stage.

    Attributes:
        repo_id: Hub repository id, e.g. ``llava-hf/llava-1.5-7b-hf``.
        repo_type: ``model`` or ``dataset``.
        allow_patterns: Files to fetch (glob patterns); all files when empty.
        revision: Branch, tag or commit; the default branch when None.
        weights: Whether the repository holds model weights (safetensors preferred over *.bin).
        extract: Zip archives (paths inside the repository) to unpack after the download.
    """

    repo_id: str
    repo_type: str = "model"
    allow_patterns: tuple[str, ...] = ()
    revision: str | None = None
    weights: bool = False
    extract: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.repo_type not in REPO_TYPES:
            raise ValueError(f"repo_type {self.repo_type!r} is not one of {REPO_TYPES}")
        if self.repo_id.count("/") != 1 or any(not part for part in self.repo_id.split("/")):
            raise ValueError(f"repo_id {self.repo_id!r} is not of the form 'owner/name'")


def local_dir(asset: Asset, root: str | Path = "resources") -> Path:
    """``<root>/models/<owner>/<name>`` or ``<root>/datasets/<owner>/<name>``."""
    return Path(root) / f"{asset.repo_type}s" / asset.repo_id


def is_staged(asset: Asset, root: str | Path = "resources") -> bool:
    """Whether the asset's download finished (its marker file exists)."""
    return (local_dir(asset, root) / MARKER).is_file()


def mark_staged(asset: Asset, root: str | Path = "resources", files: Iterable[str] = ()) -> Path:
    """Write the marker that declares ``asset`` staged (the last step of :func:`stage`)."""
    path = local_dir(asset, root) / MARKER
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {**asdict(asset), "files": sorted(files)}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def require_staged(asset: Asset, root: str | Path = "resources") -> Path:
    """The staged directory of ``asset`` on a compute node (never downloads).

    Raises:
        ValueError: if the asset was not staged, naming it and the rule that stages it.
    """
    if not is_staged(asset, root):
        raise ValueError(
            f"{asset.repo_type} {asset.repo_id!r} is not staged under {str(local_dir(asset, root))!r}: "
            "run the download rules on the login node first (they need internet)"
        )
    return local_dir(asset, root)


def offline() -> bool:
    """Whether hub access is switched off (``HF_HUB_OFFLINE``, read now, not at import)."""
    from huggingface_hub import constants

    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE or bool(
        constants.HF_HUB_OFFLINE
    )


def stage(
    asset: Asset,
    root: str | Path = "resources",
    *,
    token: str | None = None,
    endpoint: str | None = None,
    force: bool = False,
) -> Path:
    """Download ``asset`` into ``local_dir(asset, root)`` unless it is staged already.

    The token defaults to ``HF_TOKEN`` and the endpoint to ``HF_ENDPOINT`` (huggingface_hub's
    own lookups; pass ``endpoint`` for a mirror). Archives listed in ``asset.extract`` are
    unpacked next to themselves and deleted (LLaVA-Pretrain's images.zip is large); the marker
    is written last.

    Raises:
        HubError: one line naming the repository when the hub is unreachable or offline, the
            repository is gated or does not exist, or the revision is unknown.
    """
    target = local_dir(asset, root)
    if is_staged(asset, root) and not force:
        return target
    what = f"{asset.repo_type} {asset.repo_id!r}"
    if offline():
        raise HubError(
            f"cannot download {what}: HF_HUB_OFFLINE is set; stage it on a machine with internet "
            f"(the login node) into {str(target)!r}"
        )
    try:
        files = _download(asset, target, token, endpoint)
    except Exception as err:  # mapped to one line below; anything unknown is re-raised
        raise _hub_error(err, asset, target) from err
    for archive in asset.extract:
        extract_zip(target / archive, target)
        (target / archive).unlink()
    mark_staged(asset, root, files)
    return target


def _download(asset: Asset, target: Path, token: str | None, endpoint: str | None) -> list[str]:
    from huggingface_hub import HfApi, snapshot_download

    patterns = list(asset.allow_patterns) or None
    ignore = list(_IGNORE)
    if asset.weights:
        files = HfApi(endpoint=endpoint).list_repo_files(
            asset.repo_id, repo_type=asset.repo_type, revision=asset.revision, token=token
        )
        if any(f.endswith(".safetensors") for f in files):
            ignore += ["*.bin", "*.pt", "*.pth"]
    snapshot_download(
        asset.repo_id,
        repo_type=asset.repo_type,
        revision=asset.revision,
        local_dir=target,
        allow_patterns=patterns,
        ignore_patterns=ignore,
        token=token,
        endpoint=endpoint,
    )
    return sorted(
        str(p.relative_to(target))
        for p in target.rglob("*")
        if p.is_file() and ".cache" not in p.parts
    )


def _hub_error(err: Exception, asset: Asset, target: Path) -> Exception:
    """Translate huggingface_hub/httpx failures into one-line :class:`HubError` messages."""
    from huggingface_hub import errors

    what = f"{asset.repo_type} {asset.repo_id!r}"
    if isinstance(err, errors.GatedRepoError):
        return HubError(
            f"cannot download {what}: the repository is gated; accept its licence on "
            f"huggingface.co/{asset.repo_id} and set HF_TOKEN to a token of that account"
        )
    if isinstance(err, errors.RevisionNotFoundError):
        return HubError(f"cannot download {what}: revision {asset.revision!r} does not exist")
    if isinstance(err, errors.RepositoryNotFoundError):
        return HubError(
            f"cannot download {what}: not found on the hub (misspelt, or private: set HF_TOKEN)"
        )
    if isinstance(err, errors.OfflineModeIsEnabled | errors.LocalEntryNotFoundError) or _is_network(
        err
    ):
        return HubError(
            f"cannot download {what}: the Hugging Face hub is unreachable (no network or "
            f"HF_HUB_OFFLINE=1); stage it on the login node into {str(target)!r}"
        )
    if isinstance(err, errors.HfHubHTTPError):
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return HubError(f"cannot download {what}: {first}")
    return err


def _is_network(err: BaseException) -> bool:
    names = {"ConnectError", "ConnectTimeout", "ReadTimeout", "ConnectionError", "Timeout"}
    while err is not None:
        if type(err).__name__ in names or isinstance(err, ConnectionError | TimeoutError):
            return True
        err = err.__cause__ or err.__context__
    return False


def extract_zip(archive: str | Path, dest: str | Path) -> None:
    """Unpack ``archive`` into ``dest``, refusing members that would land outside ``dest``."""
    dest = Path(dest).resolve()
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            if not (dest / member).resolve().is_relative_to(dest):
                raise ValueError(f"zip member {member!r} of {str(archive)!r} escapes {str(dest)!r}")
        zf.extractall(dest)


# The paper preset's assets, by a short name used in rule and file names.
_MODEL_FILES = ("*.json", "*.safetensors", "*.bin", "*.model", "*.txt", "*.jinja", "*.py")


def model_asset(hub_id: str, revision: str | None = None) -> Asset:
    """A transformers checkpoint: configs, tokenizer files and weights (safetensors preferred)."""
    return Asset(hub_id, "model", _MODEL_FILES, revision, weights=True)


DATASET_ASSETS: Mapping[str, Asset] = {
    "maxm": Asset("floschne/maxm", "dataset", ("data/*.parquet", "README.md")),
    "llava-w": Asset("MBZUAI/multilingual-llava-bench-in-the-wild", "dataset"),
    "visit": Asset("mlfoundations/VisIT-Bench", "dataset"),
    "multiq": Asset("caro-holt/MultiQ", "dataset", ("MultiQ.csv", "README.md")),
    "llava-pretrain": Asset(
        "liuhaotian/LLaVA-Pretrain", "dataset", ("blip_laion_cc_sbu_558k.json", "images.zip"),
        extract=("images.zip",),
    ),
    "llava-instruct": Asset("liuhaotian/LLaVA-Instruct-150K", "dataset", ("llava_v1_5_mix665k.json",)),
}  # fmt: skip
GLOTLID = Asset("cis-lmu/glotlid", "model", ("model_v3.bin", "README.md"))


def paper_assets(cfg: Mapping[str, Any]) -> dict[str, Asset]:
    """Every asset a paper- or audit-preset config needs, by short name (``model:<name>``,
    ``dataset:<name>``, ``lid``), from its ``models`` (audit: the hub ids of the list),
    ``backbones``, ``vision_encoders``, ``translation``, ``datasets``, ``training_data`` and
    ``lid`` sections (absent sections add nothing)."""
    from ifl.models.audited import audit_models
    from ifl.models.registry import get

    out: dict[str, Asset] = {}
    if isinstance(cfg.get("models"), list):  # the audit preset: hub ids or local folders
        for m in audit_models(cfg):
            if not m.local:
                out[f"model:{m.name}"] = model_asset(m.source, m.revision)
    else:
        for name, spec in (cfg.get("models") or {}).items():
            out[f"model:{name}"] = model_asset(
                get(spec.get("registry", name)).hub_id, spec.get("revision")
            )
    for section in ("backbones", "vision_encoders"):
        for name, spec in (cfg.get(section) or {}).items():
            if spec.get("hub_id"):
                out[f"model:{name}"] = model_asset(spec["hub_id"], spec.get("revision"))
    translator = (cfg.get("translation") or {}).get("hub_id")
    if translator:
        out["model:translator"] = model_asset(translator)
    sections = (("datasets", "{}", "dataset"), ("training_data", "llava-{}", "training_data part"))
    for section, pattern, what in sections:
        for name, spec in (cfg.get(section) or {}).items():
            key = pattern.format(name.lower())
            if key not in DATASET_ASSETS:
                raise ValueError(f"unknown {what} {name!r}; known: {', '.join(DATASET_ASSETS)}")
            asset = DATASET_ASSETS[key]
            spec = spec or {}
            out[f"dataset:{key}"] = replace(
                asset, repo_id=spec.get("hub_id", asset.repo_id), revision=spec.get("revision")
            )
    if (cfg.get("lid") or {}).get("kind") == "glotlid":
        out["lid"] = GLOTLID
    return out
