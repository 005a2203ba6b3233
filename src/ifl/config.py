"""Load and validate the run configuration against workflow/schemas/config.schema.yaml.

Every error is a single line naming the offending key and what is allowed, raised before any
job starts (the Snakefile calls :func:`validate` at parse time).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration value is invalid; the message is one line naming the key."""


def load_schema() -> dict[str, Any]:
    """Return the JSON schema of the configuration."""
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _fill_defaults(schema: Mapping[str, Any], node: Any, root: Mapping[str, Any]) -> None:
    """Insert schema defaults into ``node`` in place (objects only, recursively)."""
    if not isinstance(node, dict):
        return
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = root["$defs"][name]
    for key, sub in schema.get("properties", {}).items():
        if key not in node and "default" in sub:
            node[key] = copy.deepcopy(sub["default"])
        if key in node:
            _fill_defaults(sub, node[key], root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in node.items():
            if key not in schema.get("properties", {}):
                _fill_defaults(extra, value, root)


def _path(error: jsonschema.ValidationError) -> str:
    parts = []
    for p in error.absolute_path:
        parts.append(f"[{p}]" if isinstance(p, int) else (f".{p}" if parts else str(p)))
    return "".join(parts) or "<top level>"


def _one_line(error: jsonschema.ValidationError) -> str:
    where = _path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"unknown key {extra[0]!r} in {where}; allowed keys: {', '.join(allowed)}"
    if error.validator == "enum":
        return f"{where}: {error.instance!r} is not allowed; allowed values: {', '.join(map(str, error.validator_value))}"
    if error.validator == "propertyNames":
        allowed = error.schema["propertyNames"].get("enum", [])
        return f"{where}: key {error.instance!r} is not allowed; allowed: {', '.join(allowed)}"
    if error.validator == "type":
        return f"{where}: {error.instance!r} should be of type {error.validator_value}"
    if error.validator == "required":
        return f"{where}: {error.message}"
    return f"{where}: {error.message}"


def validate(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return a validated copy of ``config`` with defaults filled in.

    Raises :class:`ConfigError` with a one-line message on the first problem found: unknown
    keys, wrong types, values outside the allowed set, grid entries naming a backbone or
    vision encoder that is not defined, and audited models (:mod:`ifl.models.audited`) that cannot be.
    """
    schema = load_schema()
    cfg = copy.deepcopy(dict(config))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: (len(e.absolute_path), e.path))
    if errors:
        # propertyNames errors point at the parent; prefer the deepest, most specific one.
        raise ConfigError("config error: " + _one_line(_best(errors)))
    _fill_defaults(schema, cfg, schema)
    _check_references(cfg)
    return cfg


def _best(errors: list[jsonschema.ValidationError]) -> jsonschema.ValidationError:
    best = jsonschema.exceptions.best_match(errors)
    # best_match descends into `context`; keep the top-level error if it has no better leaf.
    return best if best is not None else errors[0]


def _check_references(cfg: Mapping[str, Any]) -> None:
    from ifl.models.audited import check_models_key

    try:
        check_models_key(cfg)
    except ValueError as err:
        raise ConfigError(f"config error: {err}") from err
    llms, encoders = sorted(cfg["backbones"]), sorted(cfg["vision_encoders"])
    for i, entry in enumerate(cfg["grid"]):
        if entry["llm"] not in llms:
            raise ConfigError(
                f"config error: grid[{i}].llm: {entry['llm']!r} is not a backbone; allowed values: {', '.join(llms)}"
            )
        if entry["vision"] not in encoders:
            raise ConfigError(
                f"config error: grid[{i}].vision: {entry['vision']!r} is not a vision encoder; allowed values: {', '.join(encoders)}"
            )
    names = [vlm_name(e) for e in cfg["grid"]]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"config error: grid: {dup[0]!r} appears more than once")


def vlm_name(entry: Mapping[str, str]) -> str:
    """Name of a grid VLM, e.g. ``vicuna-clip-en``."""
    return f"{entry['llm']}-{entry['vision']}-{entry['data']}"


def load(path: str | Path) -> dict[str, Any]:
    """Read a YAML config file and validate it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config error: no config file at {str(path)!r}")
    with open(path, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config error: {str(path)!r} must hold a mapping at the top level")
    return validate(raw)
