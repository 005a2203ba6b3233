"""Remedy variants from the config, their estimates against simulated truth, and the views."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from _tiny_llava import build_tiny_llava, prompts, random_images

from ifl.config import REPO_ROOT, validate
from ifl.remedies import (
    METRICS,
    TABLE_COLUMNS,
    base_entry,
    cell_estimates,
    eval_tasks,
    findings,
    frontier,
    gap_features,
    gap_points,
    labelled_table,
    lrm_tables,
    pct,
    remedies_summary,
    remedy_languages,
    remedy_table,
    steering_point,
    sweep,
    variant,
    variants,
    with_lf_plus,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def cfg() -> dict:
    raw = yaml.safe_load((REPO_ROOT / "tests" / "configs" / "smoke.yaml").read_text())
    raw.pop("remedies", None)  # the schema's defaults: every sweep of the issue
    return validate(raw)


def _with(cfg: dict, **remedies) -> dict:
    out = copy.deepcopy(cfg)
    out["remedies"].update(remedies)
    return out


# ---- variants -------------------------------------------------------------------------------


def test_default_variants_skip_zero_points_and_duplicates(cfg):
    names = [v["name"] for v in variants(cfg)]
    assert names[0] == "base"
    assert [n for n in names if n.startswith("text-")] == ["text-5", "text-10", "text-25"]
    assert [n for n in names if n.startswith("merge-")] == [
        "merge-25",
        "merge-50",
        "merge-75",
        "merge-100",
    ]
    tasks = [n for n in names if n.startswith("tasks-")]
    assert tasks == ["tasks-all-100", "tasks-no_mvqa-100", "tasks-no_epvqa-100", "tasks-no_bvqa-100",
                     "tasks-all-40", "tasks-all-70", "tasks-all-150"]  # fmt: skip
    assert len(names) == len(set(names))
    spec = variant(cfg, "tasks-no_epvqa-100")
    assert (
        spec["tasks"] == ["mvqa", "bvqa"]
        and spec["kind"] == "trained"
        and spec["non_english_share"] == 1.0
    )
    assert variant(cfg, "merge-50")["alpha"] == 0.5 and variant(cfg, "merge-50")["kind"] == "merged"
    assert variant(cfg, "base")["kind"] == "grid"


def test_final_phase_variants_are_named_apart(cfg):
    c = _with(
        cfg,
        text_phase="final",
        text_ratios=[0, 0.125],
        merge_alphas=[],
        task_sets={},
        non_english_shares=[],
        gap={"variants": ["base"], "max_points": 10, "method": "tsne"},
    )
    assert [v["name"] for v in variants(c)] == ["base", "text-12.5-final"]
    assert variant(c, "text-12.5-final")["text_phase"] == "final"
    assert variant(c, "text-12.5-final")["final_fraction"] == 0.2
    # Another remedy's settings do not leak into a variant (its jobs would rerun for nothing).
    assert variant(_with(cfg, text_phase="final"), "tasks-all-100") == variant(cfg, "tasks-all-100")


def test_bad_variant_settings_raise(cfg):
    with pytest.raises(ValueError, match="share_sweep_set 'most' is not a task set"):
        variants(_with(cfg, share_sweep_set="most"))
    with pytest.raises(ValueError, match="gap.variants: 'tasks-all-999' is not a variant"):
        variants(
            _with(cfg, gap={"variants": ["tasks-all-999"], "max_points": 10, "method": "tsne"})
        )
    with pytest.raises(ValueError, match="unknown remedy variant 'text-3'"):
        variant(cfg, "text-3")


def test_base_defaults_to_the_reference_class(cfg):
    assert base_entry(cfg) == {"llm": "leo", "vision": "clip", "data": "en", "name": "leo-clip-en"}
    assert base_entry(_with(cfg, base="leo-clip-de"))["data"] == "de"
    with pytest.raises(ValueError, match="remedies.base 'vicuna-clip-en' is not a VLM of the grid"):
        base_entry(_with(cfg, base="vicuna-clip-en"))


def test_languages_and_evaluation_subset(cfg):
    assert remedy_languages(cfg) == ["de"]
    assert remedy_languages(_with(cfg, languages=["zh", "de"])) == ["zh", "de"]
    tasks = pd.DataFrame({"task_id": list("abcd"), "benchmark": ["MaXM", "MultiQ", "VisIT", "MaXM"],
                          "language": ["en", "en", "de", "fr"]})  # fmt: skip
    assert eval_tasks(tasks, cfg)["task_id"].tolist() == ["a", "c"]
    c = _with(cfg, eval={"benchmarks": ["MultiQ"], "languages": ["de"]})
    with pytest.raises(ValueError, match="selects no task"):
        eval_tasks(tasks, c)


def test_pct_formats_shares_as_names():
    assert [pct(x) for x in (0.05, 0.1, 0.125, 1.0, 1.5)] == ["5", "10", "12.5", "100", "150"]


# ---- estimates against simulated truth --------------------------------------------------------

TRUE = {"base": (0.5, 0.9), "text-10": (0.8, 0.9), "merge-50": (0.7, 0.8)}  # (image, text) fidelity


def _simulate(n: int = 3000, seed: int = 0, pi: float = 0.15) -> pd.DataFrame:
    """Replies with known fidelity; the proxy misses right-language replies 30% of the time
    (non-random error), gold labels on a Bernoulli(pi) sample."""
    rng = np.random.default_rng(seed)
    rows = []
    for name, (p_img, p_txt) in TRUE.items():
        for cond, p in (("image", p_img), ("text", p_txt)):
            truth = (rng.random(n) < p).astype(float)
            proxy = truth * (rng.random(n) > 0.3)
            acc = (rng.random(n) < 0.6).astype(float)
            rows.append(pd.DataFrame({
                "model": name, "task_id": [f"t{i}" for i in range(n)], "condition": cond,
                "language": np.where(np.arange(n) % 4 == 0, "en", "de"), "fidelity_oracle": truth,
                "fidelity_proxy": proxy, "accuracy_oracle": acc, "accuracy_proxy": acc,
            }))  # fmt: skip
    df = pd.concat(rows, ignore_index=True)
    sampled = rng.random(len(df)) < pi
    df["pi"] = pi
    df["fidelity_gold"] = np.where(sampled, df["fidelity_oracle"], np.nan)
    df["accuracy_gold"] = np.where(sampled, df["accuracy_oracle"], np.nan)
    return df


def test_cell_estimates_recover_the_truth_where_the_proxy_is_biased():
    df = _simulate().rename(columns={"model": "variant"})
    est = cell_estimates(df, outcome="fidelity", image_effect=True, seed=1).set_index(
        ["variant", "method"]
    )
    for name in TRUE:
        sub = df[df["variant"] == name]
        exact = (sub.loc[sub["condition"] == "image", "fidelity_oracle"].mean()
                 - sub.loc[sub["condition"] == "text", "fidelity_oracle"].mean())  # fmt: skip
        assert est.loc[(name, "oracle"), "estimate"] == pytest.approx(exact, abs=1e-12)
        d = est.loc[(name, "dsl")]
        assert d["ci_low"] <= exact <= d["ci_high"]
        naive = est.loc[(name, "naive_proxy")]
        assert abs(naive["estimate"] - 0.7 * exact) < 0.03  # the proxy shrinks IFL by 30%
    means = cell_estimates(
        df[df["condition"] == "image"], outcome="fidelity", image_effect=False, seed=1
    )
    dsl_base = means[(means["variant"] == "base") & (means["method"] == "dsl")].iloc[0]
    assert dsl_base["ci_low"] <= 0.5 <= dsl_base["ci_high"] and dsl_base["n"] == 3000


def test_cell_estimates_without_gold_labels_give_proxy_and_oracle_only():
    df = _simulate().rename(columns={"model": "variant"}).assign(fidelity_gold=np.nan)
    est = cell_estimates(df, outcome="fidelity", image_effect=False)
    assert set(est["method"]) == {"naive_proxy", "oracle"}


def _specs() -> list[dict]:
    blank = {"set": "", "tasks": [], "text_ratio": 0.0, "text_phase": "throughout", "non_english_share": 0.0,
             "alpha": 0.0}  # fmt: skip
    return [
        {**blank, "name": "base", "axis": "base", "setting": 0.0, "kind": "grid"},
        {**blank, "name": "text-10", "axis": "text", "setting": 0.1, "kind": "trained"},
        {**blank, "name": "merge-50", "axis": "merge", "setting": 0.5, "kind": "merged"},
    ]


def test_remedy_table_has_every_metric_method_and_variant():
    table = remedy_table(_simulate(1000), _specs(), base_model="vicuna-clip-en", seed=0)
    assert list(table.columns) == TABLE_COLUMNS
    assert set(table["metric"]) == set(METRICS)
    assert set(table["method"]) == {"dsl", "naive_proxy", "oracle"}
    assert table["variant"].drop_duplicates().tolist() == ["base", "text-10", "merge-50"]
    assert (table.groupby(["variant", "metric"]).size() == 3).all()
    lf_plus = table[(table["metric"] == "lf_plus") & (table["method"] == "oracle")].set_index(
        "variant"
    )
    sim = with_lf_plus(_simulate(1000))
    keep = (sim["condition"] == "image") & (sim["language"] != "en")
    truth = sim[keep].groupby("model")["lf_plus_oracle"].mean()
    assert lf_plus["estimate"].to_dict() == pytest.approx(truth.to_dict(), abs=1e-12)
    assert table.loc[table["variant"] == "merge-50", "axis"].eq("merge").all()
    with pytest.raises(ValueError, match="'other', which is not a remedy variant"):
        remedy_table(_simulate(50).assign(model="other"), _specs(), base_model="x")


def test_views_of_the_table():
    table = remedy_table(_simulate(1000), _specs(), base_model="vicuna-clip-en", seed=0)
    front = frontier(table, method="oracle")
    assert front["variant"].tolist() == ["base", "text-10", "merge-50"]
    assert (front["y_low"] <= front["y"]).all() and (front["x"] <= front["x_high"]).all()
    assert (
        front.set_index("variant").loc["text-10", "y"] > front.set_index("variant").loc["base", "y"]
    )
    s = sweep(table, "text", metric="ifl", method="dsl")
    assert s["variant"].tolist() == ["base", "text-10"] and s["setting"].tolist() == [0.0, 0.1]
    with pytest.raises(ValueError, match="axis must be one of"):
        sweep(table, "steer", metric="ifl")
    summary = remedies_summary(table)
    assert set(summary) == {"base", "text-10", "merge-50"}
    assert set(summary["base"]) == {"ifl", "lf_plus", "accuracy"}


def test_steering_point_reads_the_steering_table():
    steering = pd.DataFrame(
        {
            "model": ["a", "a", "b"],
            "ifl": [-0.2, -0.4, -0.1],
            "ifl_remedy": [0.0, -0.2, 0.0],
            "ifl_remedy_ci_low": [-0.1, -0.3, -0.1],
            "ifl_remedy_ci_high": [0.1, -0.1, 0.1],
        }
    )
    point = steering_point(steering, "a")
    assert point == pytest.approx({"ifl": -0.3, "ifl_remedy": -0.1, "low": -0.2, "high": 0.0})
    assert steering_point(steering, "c") is None
    se = steering.drop(columns=["ifl_remedy_ci_low", "ifl_remedy_ci_high"]).assign(
        ifl_remedy_se=0.1
    )
    p = steering_point(se, "b")
    assert p["high"] - p["ifl_remedy"] == pytest.approx(1.959964 * 0.1, rel=1e-5)
    with pytest.raises(ValueError, match="lacks column 'ifl_remedy'"):
        steering_point(steering.drop(columns="ifl_remedy"), "a")


# ---- labels ----------------------------------------------------------------------------------


def test_labelled_table_uses_the_oracle_for_gold_and_truth(tmp_path):
    from ifl.world.tasks import build_tasks

    tasks = build_tasks({"MaXM": 6, "LLaVA-W": 2}, ["en", "de"], seed=0, image_dir=tmp_path)
    gens = []
    for name in ("base", "text-10"):
        for cond in ("image", "text"):
            # base answers right in English only (English elsewhere); the remedy always right
            keep = (tasks["language"] == "en") | (name == "text-10")
            replies = tasks["reference"].where(keep, "a red circle")
            gens.append(
                tasks[["task_id", "benchmark", "language"]].assign(
                    model=name, condition=cond, reply=replies.to_numpy(), intervention="none"
                )
            )
    measured = pd.concat(gens, ignore_index=True)

    def judge(questions, references, replies):
        return [r == ref for r, ref in zip(replies, references, strict=True)]

    df = labelled_table(measured, tasks, judge, gold_size=20, multipliers={}, seed=0, oracle=True)
    assert df["fidelity_gold"].notna().sum() == 20 and np.isclose(df["pi"].sum(), 20)
    remedy = df[df["model"] == "text-10"]
    assert remedy["fidelity_oracle"].eq(1).all() and remedy["lf_plus_oracle"].eq(1).all()
    base_de = df[(df["model"] == "base") & (df["language"] == "de")]
    assert base_de["fidelity_oracle"].eq(0).all() and base_de["lf_plus_oracle"].eq(0).all()
    no_gold = labelled_table(
        measured, tasks, judge, gold_size=20, multipliers={}, seed=0, oracle=False
    )
    assert no_gold["fidelity_gold"].isna().all() and "fidelity_oracle" not in no_gold.columns


# ---- modality gap ----------------------------------------------------------------------------


def test_gap_points_measure_the_distance_of_the_means():
    rng = np.random.default_rng(0)
    img = rng.normal(0, 0.1, size=(30, 8))
    txt = rng.normal(0, 0.1, size=(30, 8)) + np.eye(8)[0] * 3.0
    pts = gap_points(img, txt, variant="base", seed=0)
    assert len(pts) == 60 and set(pts["modality"]) == {"image", "text"}
    exact = np.linalg.norm(img.mean(0) - txt.mean(0))
    assert pts["gap"].iloc[0] == pytest.approx(exact) and pts["gap"].nunique() == 1
    again = gap_points(img, txt, variant="base", seed=0)
    pd.testing.assert_frame_equal(pts, again)


def test_gap_features_are_projector_means_and_question_embeddings():
    model, processor = build_tiny_llava("llama", seed=0)
    questions = ["what colour is the circle ?", "how many objects are there ?"]
    images = random_images(2)
    img, txt = gap_features(model, processor, prompts(questions), questions, images, batch_size=1)
    hidden = model.config.text_config.hidden_size
    assert img.shape == (2, hidden) and txt.shape == (2, hidden)
    pixel = processor(text=prompts(questions[:1]), images=images[:1], return_tensors="pt")[
        "pixel_values"
    ]
    with torch.no_grad():
        feats = model.model.get_image_features(pixel_values=pixel)
    feats = feats.pooler_output if hasattr(feats, "pooler_output") else feats
    feats = torch.cat(list(feats)) if isinstance(feats, list | tuple) else feats
    np.testing.assert_allclose(img[0], feats.reshape(-1, hidden).mean(0).numpy(), atol=1e-5)
    ids = processor.tokenizer(questions[1], add_special_tokens=False, return_tensors="pt")[
        "input_ids"
    ]
    with torch.no_grad():
        expected = model.get_input_embeddings()(ids)[0].mean(0).numpy()
    np.testing.assert_allclose(txt[1], expected, atol=1e-6)
    with pytest.raises(ValueError, match="need as many prompts"):
        gap_features(model, processor, prompts(questions), questions[:1], images)


def test_lrm_tables_pick_the_shared_share_and_label_the_ablation():
    rows = []
    for name, axis, setting, set_name, non_en in [
        ("base", "base", 0.0, "", 0.40), ("tasks-all-100", "tasks", 1.0, "all", 0.60),
        ("tasks-no_mvqa-100", "tasks", 1.0, "no_mvqa", 0.55), ("tasks-no_epvqa-100", "tasks", 1.0, "no_epvqa", 0.5),
        ("tasks-all-40", "tasks", 0.4, "all", 0.45), ("tasks-all-150", "tasks", 1.5, "all", 0.7),
    ]:  # fmt: skip
        for metric, value in (("accuracy_non_en", non_en), ("accuracy_en", 0.9)):
            rows.append({"variant": name, "axis": axis, "setting": setting, "set": set_name, "metric": metric,
                         "method": "dsl", "estimate": value})  # fmt: skip
    table = pd.DataFrame(rows)
    t3, t4 = lrm_tables(table)
    labels = dict(zip(t3["variant_label"], t3["diff_non_en_vs_all"], strict=True))
    assert labels == pytest.approx({"without all task instructions": -0.2, "all task instructions": 0.0,
                                    "without MVQA": -0.05, "without EP-VQA": -0.1})  # fmt: skip
    assert t4["method"].tolist() == ["without task instructions", "with all task instructions"]
    assert t4["accuracy_non_en"].tolist() == pytest.approx([0.4, 0.6])


def _point(variant: str, axis: str, metric: str, estimate: float, half: float) -> dict:
    return {
        "variant": variant,
        "axis": axis,
        "setting": 0.0,
        "set": "",
        "metric": metric,
        "method": "dsl",
        "estimate": estimate,
        "ci_low": estimate - half,
        "ci_high": estimate + half,
    }


def test_findings_compare_each_variant_with_the_base():
    z = 1.96
    rows = [
        _point("base", "base", "ifl", -0.40, 0.05),
        _point("base", "base", "accuracy", 0.50, 0.05),
        _point("text-10", "text", "ifl", -0.10, 0.05),  # clearly less IFL
        _point("text-10", "text", "accuracy", 0.52, 0.05),  # within noise
        _point("merge-50", "merge", "ifl", -0.60, 0.05),  # clearly more IFL
        _point("merge-50", "merge", "accuracy", 0.30, 0.05),  # clearly less accurate
    ]
    out = findings(pd.DataFrame(rows)).set_index("variant")
    assert out.loc["text-10", "ifl_verdict"] == "less IFL"
    assert out.loc["text-10", "accuracy_verdict"] == "no resolvable change"
    assert out.loc["merge-50", "ifl_verdict"] == "more IFL"
    assert out.loc["merge-50", "accuracy_verdict"] == "less accurate"
    half = z * np.hypot(0.05 / z, 0.05 / z)  # independent estimates: SEs add in quadrature
    assert out.loc["text-10", "ifl_diff"] == pytest.approx(0.30)
    assert out.loc["text-10", "ifl_diff_high"] - 0.30 == pytest.approx(half)
    assert "base" not in out.index
    with pytest.raises(ValueError, match="no 'base' variant"):
        findings(pd.DataFrame(rows[2:]))
