"""The audit preset's library: the model list, the chapter's statistics (heterogeneity tested on
simulated languages with known truth), the paper's reference rows, CKA at matched depth, and the
prompts of the organism's checkpoints (its chat template renders the organism's format exactly,
so steering and representations read the same prompts as before)."""

from __future__ import annotations

import copy
import re

import numpy as np
import pandas as pd
import pytest
import yaml

from ifl.audit.inside import matched_depth
from ifl.audit.report import heterogeneity, model_table, paper_reference
from ifl.config import REPO_ROOT, ConfigError, validate
from ifl.models.audited import audit_models, model_resources
from ifl.steering.plan import steer_models

PAPER_DIR = REPO_ROOT / "book" / "data" / "paper"


@pytest.fixture(scope="module")
def audit_cfg() -> dict:
    merged = yaml.safe_load((REPO_ROOT / "config.yaml").read_text(encoding="utf-8"))
    merged.update(yaml.safe_load((REPO_ROOT / "config" / "audit.yaml").read_text(encoding="utf-8")))
    return validate(merged)


def test_models_are_one_line_each(audit_cfg):
    models = audit_models(audit_cfg)
    assert [m.name for m in models][:2] == ["llava-1.5-7b-hf", "llava-v1.6-mistral-7b-hf"]
    assert all(not m.local for m in models)
    big = models[-1]
    assert big.source == "mistralai/Mistral-Small-3.1-24B-Instruct-2503"
    assert model_resources(big, audit_cfg["resources"]) == {
        "gpu": 2,
        "mem_mb": 128000,
        "runtime": 720,
    }
    assert model_resources(models[0], audit_cfg["resources"])["gpu"] == 1
    assert steer_models(audit_cfg) == [m.name for m in models]  # every model is steered


def test_local_folders_and_names(audit_cfg, tmp_path, monkeypatch):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text("{}", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    cfg = copy.deepcopy(audit_cfg)
    cfg["models"] = ["./ckpt", {"id": "org/ckpt", "name": "hub-ckpt", "revision": "v1"}]
    local, hub = audit_models(validate(cfg))
    assert (local.name, local.local, str(local.path("res"))) == ("ckpt", True, "ckpt")
    assert (hub.name, hub.revision, str(hub.path("res"))) == (
        "hub-ckpt",
        "v1",
        "res/models/org/ckpt",
    )


@pytest.mark.parametrize(
    ("models", "expected"),
    [
        (["org/a", "other/a"], "models[1]: 'other/a' and 'org/a' are both named 'a'"),
        (["a b c"], "models[0]: 'a b c' is neither a hub id"),
        (["~/nowhere-at-all"], "models[0]: no checkpoint (config.json) in folder"),
        ([{"id": "org/a", "gpus": "two"}], "should be of type integer"),
        ([], "is a list of hub ids or local checkpoint folders"),
    ],
)
def test_bad_model_lists_are_one_line_errors(audit_cfg, models, expected):
    cfg = copy.deepcopy(audit_cfg)
    cfg["models"] = models
    with pytest.raises(ConfigError, match=re.escape(expected)) as info:
        validate(cfg)
    assert "\n" not in str(info.value)


def test_heterogeneity_closed_form():
    out = heterogeneity([0.1, -0.1, 0.3], [0.1, 0.1, 0.1])
    # equal weights 100: mean 0.1, Q = 100 * (0 + 0.04 + 0.04) = 8 on 2 df
    assert out["q"] == pytest.approx(8.0) and out["q_k"] == 3
    assert out["q_p"] == pytest.approx(np.exp(-4.0))  # chi2 with 2 df: sf(x) = exp(-x / 2)
    assert out["i2"] == pytest.approx(0.75) and out["languages_sd"] == pytest.approx(0.2)
    spread = heterogeneity([0.2, 0.4], [0.0, np.nan])  # no sampling error to weight: no Q
    assert np.isnan(spread["q"]) and spread["languages_min"] == 0.2


def test_heterogeneity_test_holds_its_level_on_simulated_languages():
    """14 languages with the same true IFL, estimated with known SEs: Q's p-value falls below
    0.05 in about 5% of 4,000 simulated audits; with a true spread it is found nearly always,
    and I2 recovers the share of the variance that the spread makes up."""
    rng = np.random.default_rng(0)
    se = rng.uniform(0.02, 0.08, 14)
    null = [heterogeneity(-0.1 + rng.normal(0, se), se)["q_p"] for _ in range(4000)]
    assert 0.04 <= np.mean(np.array(null) < 0.05) <= 0.06
    tau = 0.1  # true between-language SD
    alt = [heterogeneity(-0.1 + rng.normal(0, tau, 14) + rng.normal(0, se), se) for _ in range(500)]
    assert np.mean([a["q_p"] < 0.05 for a in alt]) > 0.95
    # Higgins and Thompson's I2 = tau^2 / (tau^2 + s^2), s^2 the "typical" sampling variance
    w = 1 / se**2
    typical = (len(se) - 1) * w.sum() / (w.sum() ** 2 - (w**2).sum())
    assert np.median([a["i2"] for a in alt]) == pytest.approx(tau**2 / (tau**2 + typical), abs=0.05)


def test_paper_reference_rows_are_the_papers_tables():
    rows, langs = paper_reference(PAPER_DIR)
    t5 = pd.read_csv(PAPER_DIR / "hinck2024_table5_steering.csv").set_index("model")
    seven = rows.set_index("model").loc["LLaVA-1.5-7B (paper)"]
    assert (
        seven["ifl_cells"] == t5.loc["llava7b", "ifl"]
        and seven["steer_diff"] == t5.loc["llava7b", "diff"]
    )
    cells = pd.read_csv(PAPER_DIR / "hinck2024_tables6to9_steering_by_language.csv")
    ar = cells[(cells.model == "llava7b") & (cells.language == "ar")]["ifl"].mean()
    got = langs[(langs.model == "LLaVA-1.5-7B (paper)") & (langs.language == "ar")]["estimate"]
    assert got.item() == pytest.approx(ar)


def _labelled(n_tasks: int = 60, seed: int = 0) -> pd.DataFrame:
    """Replies of two models to tasks in two languages: model ``a`` loses fidelity with the
    image in German (0.9 -> 0.5) but not in Chinese, model ``b`` nowhere; the proxy equals the
    truth; a third of the rows are annotated."""
    rng = np.random.default_rng(seed)
    rows = []
    for model in ("a", "b"):
        for lang in ("de", "zh"):
            for t in range(n_tasks):
                for cond in ("image", "text"):
                    p = 0.5 if (model, lang, cond) == ("a", "de", "image") else 0.9
                    f = float(rng.random() < p)
                    rows.append({"model": model, "task_id": f"{lang}{t}", "language": lang,
                                 "benchmark": "MaXM", "condition": cond, "fidelity_proxy": f,
                                 "fidelity_gold": f if rng.random() < 1 / 3 else np.nan,
                                 "accuracy_proxy": 1.0, "accuracy_gold": np.nan, "pi": 1 / 3})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.mark.parametrize("debias", [True, False])
def test_model_table_rows_and_languages(debias):
    facts = {m: {"family": "llava", "processor": "official", "layers": 2} for m in ("a", "b")}
    dsl = {"folds": 2, "splits": 1, "learner": "logistic", "seed": 0}
    table, langs = model_table(
        _labelled(), pd.DataFrame(), facts, PAPER_DIR, debias=debias, dsl=dsl
    )
    ours = table[table.source == "this run"].set_index("model")
    assert list(ours.index) == ["a", "b"] and set(ours.method) == {
        "dsl" if debias else "naive_proxy"
    }
    assert ours.loc["a", "ifl"] < -0.1 and abs(ours.loc["b", "ifl"]) < 0.1
    assert ours.loc["a", "ifl_ci_low"] < ours.loc["a", "ifl"] < ours.loc["a", "ifl_ci_high"]
    a = langs[(langs.model == "a")].set_index("language")["estimate"]
    assert a["de"] < a["zh"] - 0.2  # the loss is German's
    assert ours.loc["a", "languages_max"] - ours.loc["a", "languages_min"] > 0.2
    assert len(table) == 4  # two models and the paper's two LLaVA-1.5 rows


def test_matched_depth_pairs_layers_at_the_same_relative_depth():
    # model a: 3 states, model b: 5; the matched cells are (0, 0), (1, 2), (2, 4)
    cells = [{"model_a": "a", "model_b": "b", "positions": "image", "layer_a": i, "layer_b": j,
              "linear": 1.0 if (i, j) in {(0, 0), (1, 2), (2, 4)} else 0.0}
             for i in range(3) for j in range(5)]  # fmt: skip
    out = matched_depth(pd.DataFrame(cells))
    assert out[["model_a", "model_b", "positions"]].values.tolist() == [["a", "b", "image"]]
    assert out["cka"].item() == 1.0


def test_organism_chat_template_renders_the_organism_format():
    """The organism's checkpoints ship CHAT_TEMPLATE; prompted through it (as steering and the
    representation analyses now are for every checkpoint), they read exactly the organism's
    LLaVA-1.5 prompts."""
    from _tiny_llava import build_tiny_processor

    from ifl.models.prompts import CHAT_TEMPLATE, render
    from ifl.models.registry import ModelEntry, make_prompter

    processor = build_tiny_processor()
    processor.chat_template = CHAT_TEMPLATE
    prompter = make_prompter(ModelEntry("organism", "local/organism", "vlm", "llama"), processor)
    for question, description in [("What colour is the circle?", "A red circle."),
                                  ("这个图形是什么颜色？", "一个红色的圆。"), ("Wie viele?", None)]:  # fmt: skip
        for image in (True, False):
            assert prompter(question, image, description) == render(question, image, description)


def test_without_gold_the_tables_are_the_proxys_own(tmp_path, audit_cfg):
    """``gold.enabled: false``: the labelled table has no annotated row and the prevalence
    tables hold the naive LID-proxy estimates only (no DSL rows, no design effects)."""
    from ifl.cli import main
    from ifl.labels import with_row_ids

    cfg = copy.deepcopy(audit_cfg)
    cfg["gold"]["enabled"] = False
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    rows = _labelled(20).drop(columns=["fidelity_gold", "accuracy_gold", "pi"])
    measured = rows.assign(reply="x", intervention="none")
    measured.to_parquet(tmp_path / "measured.parquet")
    tasks = rows[["task_id"]].drop_duplicates().assign(question="q", reference="r")
    tasks.to_parquet(tmp_path / "tasks.parquet")
    judged = with_row_ids(measured)[["row_id", "accuracy_proxy"]]
    judged.to_parquet(tmp_path / "judged.parquet")
    args = ["--config", str(tmp_path / "config.yaml")]
    files = [f"--{k}={tmp_path / k}.parquet" for k in ("measured", "judged", "tasks")]
    assert main([*args, "labelled", *files, f"--out={tmp_path / 'labelled.parquet'}"]) == 0
    labelled = pd.read_parquet(tmp_path / "labelled.parquet")
    assert labelled["fidelity_gold"].isna().all() and len(labelled) == len(measured)
    assert main([*args, "prevalence", f"--labelled={tmp_path / 'labelled.parquet'}",
                 f"--out-dir={tmp_path}"]) == 0  # fmt: skip
    ifl = pd.read_csv(tmp_path / "ifl.csv")
    assert set(ifl["method"]) == {"naive_proxy"} and len(ifl) == 2
    assert pd.read_csv(tmp_path / "design_effects.csv").empty
