"""The audit preset's models: a list of hub ids or local checkpoint folders, nothing trained.

``models:`` in an audit config (config/audit.yaml) is a list. Each entry is a hub id
(``owner/name``, staged under ``<resources_dir>/models/owner/name`` by the download rules) or a
local folder (a path starting with ``/``, ``./``, ``../`` or ``~``), as a plain string or as a
mapping that also sets the model's ``name`` (its folder under results/ and its label in the
book; default: the last part of the id), hub ``revision``, or the cluster resources of its GPU
jobs (``gpus``, ``mem_mb``, ``runtime``; default: the config's ``resources:``). Adding a model
is one line; no code knows the models.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_LOCAL = ("/", "./", "../", "~")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
#: Resources of its GPU jobs a model entry may set (else the config's generation resources).
RESOURCE_KEYS = ("gpus", "mem_mb", "runtime")


@dataclass(frozen=True)
class AuditModel:
    """One audited checkpoint.

    Attributes:
        name: Its name in the run (results folder, tables, book).
        source: The config's id: a hub id or a local folder.
        local: Whether ``source`` is a local folder (nothing to download).
        revision: Hub branch, tag or commit (None: the default branch).
        resources: GPU-job resources that differ from the config's (``gpus``, ``mem_mb``,
            ``runtime``).
    """

    name: str
    source: str
    local: bool
    revision: str | None = None
    resources: Mapping[str, int] | None = None

    def path(self, resources_dir: str | Path) -> Path:
        """Where the checkpoint is read: the local folder, or its staged copy."""
        if self.local:
            return Path(self.source).expanduser()
        return Path(resources_dir) / "models" / self.source


def _entry(raw: Any, index: int) -> AuditModel:
    spec = {"id": raw} if isinstance(raw, str) else dict(raw)
    source = str(spec["id"]).strip()
    local = source.startswith(_LOCAL)
    if not local and not _HUB_ID.match(source):
        raise ValueError(
            f"models[{index}]: {source!r} is neither a hub id (owner/name) nor a local folder "
            "(a path starting with /, ./, ../ or ~)"
        )
    default = Path(source.rstrip("/")).name
    name = str(spec.get("name") or _UNSAFE.sub("-", default))
    resources = {k: int(spec[k]) for k in RESOURCE_KEYS if k in spec}
    return AuditModel(name, source, local, spec.get("revision"), resources or None)


def audit_models(cfg: Mapping[str, Any]) -> list[AuditModel]:
    """The audited models of an audit config, in the config's order.

    Raises:
        ValueError: one line naming the entry: ``models`` not a list, an id that is neither a
            hub id nor a local folder, a local folder without config.json, a name used twice.
    """
    raw = cfg.get("models")
    if not isinstance(raw, list) or not raw:
        raise ValueError(
            "the audit preset's `models:` is a list of hub ids or local checkpoint folders, "
            f"got {type(raw).__name__}"
        )
    models = [_entry(item, i) for i, item in enumerate(raw)]
    seen: dict[str, str] = {}
    for i, m in enumerate(models):
        if m.name in seen:
            raise ValueError(
                f"models[{i}]: {m.source!r} and {seen[m.name]!r} are both named {m.name!r}; "
                "give one its own name ({id: ..., name: ...})"
            )
        seen[m.name] = m.source
        if m.local and not (m.path(".") / "config.json").is_file():
            raise ValueError(f"models[{i}]: no checkpoint (config.json) in folder {m.source!r}")
    return models


def check_models_key(cfg: Mapping[str, Any]) -> None:
    """``models`` is a list exactly in the audit preset (a mapping of registry names in the
    paper preset).

    Raises:
        ValueError: one line naming the preset and the form it needs.
    """
    is_list = isinstance(cfg.get("models"), list)
    if cfg.get("preset") == "audit":
        audit_models(cfg)
    elif is_list:
        raise ValueError(
            f"models: a list of checkpoints belongs to the audit preset (preset: audit); the "
            f"{cfg.get('preset')} preset names models as a mapping name -> {{registry: ...}}"
        )


def model_resources(model: AuditModel | None, resources: Mapping[str, int]) -> dict[str, int]:
    """``gpu``, ``mem_mb`` and ``runtime`` of a model's GPU jobs: an audited model's own, else
    (also for ``model`` None) the config's generation resources."""
    own = dict((model.resources if model else None) or {})
    return {
        "gpu": own.get("gpus", resources["gpu_generate"]),
        "mem_mb": own.get("mem_mb", resources["mem_mb_generate"]),
        "runtime": own.get("runtime", resources["runtime_generate"]),
    }
