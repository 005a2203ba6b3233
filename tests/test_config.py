"""Config validation: every bad value stops the run with a one-line error naming the key."""

from __future__ import annotations

import copy

import pytest
import yaml

from ifl.config import REPO_ROOT, ConfigError, load, validate


@pytest.fixture(scope="module")
def default() -> dict:
    return yaml.safe_load((REPO_ROOT / "config.yaml").read_text(encoding="utf-8"))


def test_default_and_smoke_configs_are_valid(default):
    cfg = validate(default)
    assert cfg["generate"]["batch_size"] == 32
    assert len(cfg["grid"]) == 14
    smoke = load(REPO_ROOT / "tests" / "configs" / "smoke.yaml")
    assert smoke["lid"]["kind"] == "lid176"  # filled from the schema's defaults
    assert smoke["gold"]["multipliers"]["de"] == 4


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda c: c.update(colour="red"), "unknown key 'colour'"),
        (lambda c: c["generate"].update(batchsize=3), "unknown key 'batchsize' in generate"),
        (lambda c: c.update(seed="zero"), "seed: 'zero' should be of type integer"),
        (lambda c: c["languages"].append("xx"), "'xx' is not allowed; allowed values: zh, hi, en"),
        (
            lambda c: c["grid"][2].update(llm="vicnua"),
            "grid[2].llm: 'vicnua' is not a backbone; allowed values: leo, vicuna, yi",
        ),
        (
            lambda c: c["grid"][0].update(vision="siglip"),
            "grid[0].vision: 'siglip' is not a vision encoder",
        ),
        (
            lambda c: c["grid"][0].update(data="xx"),
            "grid[0].data: 'xx' is not allowed; allowed values: en, zh, de",
        ),
        (lambda c: c["lid"].update(kind="cld3"), "lid.kind: 'cld3' is not allowed"),
        (
            lambda c: c["backbones"]["yi"]["mix"].update(xx=1),
            "backbones.yi.mix: 'xx' is not allowed",
        ),
    ],
)
def test_bad_values_give_one_line_errors(default, edit, expected):
    cfg = copy.deepcopy(default)
    edit(cfg)
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_missing_file():
    with pytest.raises(ConfigError, match="no config file at 'nope.yaml'"):
        load("nope.yaml")


def test_every_schema_key_is_documented():
    from ifl.config import load_schema

    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            if "$ref" not in sub:
                assert sub.get("description"), f"{path}{key} has no description"
            walk(sub, f"{path}{key}.")

    schema = load_schema()
    walk(schema, "")
    for name, sub in schema["$defs"].items():
        walk(sub, f"$defs.{name}.")
