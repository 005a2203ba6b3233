"""Inside the model (ifl.steering, ifl.represent): per-row steering through ifl.generate.run, Table 5 arithmetic, the sweep,
selection, measurement, CKA layout and the token points of the 2-D projection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ifl import generate
from ifl.models.tiny import build_llm, build_vision, build_vlm, train_tokenizer
from ifl.represent.cka import cka_heatmap, triangle_heatmap, triangle_mask
from ifl.represent.cka_tables import cka_table
from ifl.represent.points import (
    projection_tasks,
    question_token_mask,
    sample_points,
    token_points,
)
from ifl.represent.projections import project_points
from ifl.steering.measure import measure_steering
from ifl.steering.plan import (
    POSITIONS,
    REDUCTIONS,
    VARIANTS,
    cka_pair,
    parse_variant,
    projection_layers,
    remedy_runs,
    resolve_layer,
    steer_models,
    sweep_layers,
    sweep_model,
    sweep_runs,
    variant_name,
)
from ifl.steering.run import (
    _run_key,
    detected_iso,
    language_vectors,
    run_steering,
    select_languages,
    steer_queries,
    steerable_tasks,
    steering_context,
)
from ifl.steering.tables import (
    _relative,
    by_language_table,
    remedy_table,
    selection_table,
    steering_summary,
    stratified_mean,
    sweep_table,
    text_check_table,
)
from ifl.steering.vectors import language_vector
from ifl.world.items import detail_instruction
from ifl.world.tasks import build_tasks

torch.set_num_threads(1)
LANGS = ["en", "de", "fr"]
EN_INSTRUCTION = "Describe this image in detail."


# ---- fixtures: a tiny organism-style LLaVA and real tasks ---------------------------------


@pytest.fixture(scope="module")
def tasks(tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("tasks")
    return build_tasks({"MaXM": 2, "LLaVA-W": 1}, LANGS, seed=0, image_dir=out)


@pytest.fixture(scope="module")
def vlm(tasks):
    texts = [detail_instruction(x) for x in ("en", "de", "fr", "zh")] + tasks["question"].tolist()
    tok = train_tokenizer(texts * 3, 300)
    arch = {"hidden": 32, "layers": 3, "heads": 2, "intermediate": 64}
    vision = build_vision(
        {"hidden": 16, "layers": 1, "heads": 2, "intermediate": 32}, 32, 8, seed=0
    )
    model, processor = build_vlm(build_llm(tok, arch, seed=0), vision, tok, seed=0)
    return model.eval(), processor


def _questions(tasks: pd.DataFrame, wrong: dict[str, str | None] | None = None) -> pd.DataFrame:
    detected = [
        (wrong or {}).get(t, lang)
        for t, lang in zip(tasks["task_id"], tasks["language"], strict=True)
    ]
    return tasks[["task_id", "benchmark", "language"]].assign(detected=detected)


# ---- configuration ------------------------------------------------------------------------


def _cfg(grid, **steering) -> dict:
    base = {"layer": None, "strength": 1.0, "reduce": "last", "positions": "generated"}
    return {"grid": grid, "steering": base | steering}


GRID = [
    {"llm": "vicuna", "vision": "clip", "data": "en"},
    {"llm": "yi", "vision": "clip", "data": "zh"},
    {"llm": "leo", "vision": "clip", "data": "de"},
    {"llm": "leo", "vision": "dino", "data": "en"},
]


def test_default_models_are_the_english_trained_ones_and_bad_names_fail():
    cfg = _cfg(GRID)
    assert steer_models(cfg) == ["vicuna-clip-en", "leo-dino-en"]
    assert cka_pair(cfg) == ("yi-clip-zh", "leo-clip-de")
    assert sweep_model(cfg) == "vicuna-clip-en"
    assert cka_pair(_cfg(GRID[:1])) == ("vicuna-clip-en", "vicuna-clip-en")
    assert steer_models(_cfg(GRID[1:3])) == ["yi-clip-zh"]
    with pytest.raises(
        ValueError, match="steering.models: 'vicuna-dino-en' is not a model of this run"
    ):
        steer_models(_cfg(GRID, models=["vicuna-dino-en"]))
    assert sweep_model(_cfg(GRID, sweep={"enabled": False})) is None


def test_layers_runs_and_variants():
    assert resolve_layer(None, 30) == 10 and resolve_layer(None, 4) == 1
    with pytest.raises(ValueError, match="outside 0..3"):
        resolve_layer(4, 4)
    assert sweep_layers(None, 4) == [1, 2, 3]
    assert sweep_layers(None, 32) == [8, 16, 24]
    assert sweep_layers([3, 1, 1], 4) == [1, 3]
    # the projected states: input embeddings, the steering layer's output, the last layer's
    assert projection_layers(None, 30) == (11, [0, 11, 30])
    assert projection_layers(3, 4) == (4, [0, 4])
    st = _cfg(GRID, positions="all", variants=["last-generated", "mean-all"])["steering"]
    runs = remedy_runs(st, 4)
    assert [(r.variant, r.selection, r.conditions) for r in runs] == [
        ("last-all", "oracle", ("image", "text")),
        ("last-generated", "oracle", ("image",)),
        ("mean-all", "oracle", ("image",)),
        ("last-all", "auto", ("image",)),
    ]
    assert len({r.intervention for r in runs}) == len(runs)
    sweep = sweep_runs(st | {"sweep": {"layers": [1, 2], "strengths": [0.5, 2.0, 4.0]}}, 4)
    assert len(sweep) == 6 and {r.study for r in sweep} == {"sweep"}
    with pytest.raises(ValueError, match="unknown steering variant"):
        parse_variant("last-prompt")


def test_variant_names_cover_reductions_and_positions():
    assert {parse_variant(v) for v in VARIANTS} == {(r, p) for r in REDUCTIONS for p in POSITIONS}
    assert variant_name("mean", "all") == "mean-all" and len(VARIANTS) == 4


def test_instruction_is_the_papers_sentence():
    assert detail_instruction("en") == EN_INSTRUCTION
    assert detail_instruction("de") != EN_INSTRUCTION
    with pytest.raises(ValueError, match="unknown language 'xx'"):
        detail_instruction("xx")


# ---- per-row selection and steered generation ---------------------------------------------


def test_selection_oracle_auto_and_english_rows():
    langs = ["en", "de", "fr", "de"]
    assert select_languages(langs) == [None, "de", "fr", "de"]
    assert select_languages(langs, ["en", "de", "es", None], "auto") == [
        None,
        "de",
        "es",
        None,
    ]
    assert select_languages(["de"], [float("nan")], "auto") == [None]
    assert detected_iso(["german", "other_latin", "chinese", "none"]) == [
        "de",
        None,
        "zh",
        None,
    ]
    with pytest.raises(ValueError, match="selection must be one of"):
        select_languages(langs, mode="random")


def test_steer_queries_pick_each_rows_language(tasks):
    qs = _questions(tasks, wrong={"MaXM-0000-de": "en", "MaXM-0001-fr": "de"})
    oracle = steer_queries(tasks, qs, "oracle", ("image",)).set_index("task_id")["steer_language"]
    auto = steer_queries(tasks, qs, "auto", ("image",)).set_index("task_id")["steer_language"]
    assert pd.isna(oracle["MaXM-0000-en"]) and pd.isna(auto["MaXM-0000-en"])
    assert oracle["MaXM-0000-de"] == "de" and pd.isna(auto["MaXM-0000-de"])
    assert oracle["MaXM-0001-fr"] == "fr" and auto["MaXM-0001-fr"] == "de"
    rest = ["MaXM-0000-de", "MaXM-0001-fr"]
    pd.testing.assert_series_equal(oracle.drop(rest), auto.drop(rest))


def test_language_vectors_match_the_library(vlm):

    model, processor = vlm
    vecs = language_vectors(model, processor.tokenizer, ["en", "de", "fr", "de"], 1, "mean")
    assert list(vecs) == ["de", "fr"]
    ref = language_vector(
        model, processor.tokenizer, detail_instruction("fr"), EN_INSTRUCTION, 1, "mean"
    )
    torch.testing.assert_close(vecs["fr"], ref, atol=1e-5, rtol=1e-4)


def _run(model, processor, q, path, context=None):
    return generate.run(
        model, processor, q, path, batch_size=8, max_new_tokens=6, context=context, model_name="m"
    ).set_index(["task_id", "condition"])["reply"]


def test_strength_zero_equals_unsteered_and_english_rows_stay_unsteered(vlm, tasks, tmp_path):
    model, processor = vlm
    q = steer_queries(tasks, None, "oracle", ("image", "text"))
    vecs = {k: 50 * v / v.norm() for k, v in language_vectors(model, processor, LANGS, 1).items()}
    base = _run(model, processor, q, tmp_path / "base.parquet")
    zero = _run(
        model,
        processor,
        q,
        tmp_path / "zero.parquet",
        steering_context(model, vecs, 1, 0.0, "all"),
    )
    pd.testing.assert_series_equal(zero, base)
    steered = _run(
        model,
        processor,
        q,
        tmp_path / "s.parquet",
        steering_context(model, vecs, 1, 1.0, "all"),
    )
    english = steered.index.get_level_values("task_id").str.endswith("-en")
    pd.testing.assert_series_equal(steered[english], base[english])
    assert (steered[~english] != base[~english]).any()  # the vectors do act on the others
    with pytest.raises(ValueError, match="no steering vector for language 'fr'"):
        steering_context(model, {"de": vecs["de"]}, 1, 1.0, "all")(q)


def test_run_steering_reuses_oracle_replies_for_auto_rows(vlm, tasks, tmp_path):
    model, processor = vlm
    st = {
        "layer": 1,
        "strength": 2.0,
        "reduce": "last",
        "positions": "generated",
        "variants": ["last-generated"],
    }
    runs = remedy_runs(st, 3)
    steerable = steerable_tasks(tasks, ["MaXM", "LLaVA-W"])
    assert set(steerable["language"]) == {"de", "fr"}
    qs = _questions(steerable, wrong={"MaXM-0000-de": "fr"})
    out = run_steering(
        model,
        processor,
        steerable,
        qs,
        runs,
        tmp_path / "out.parquet",
        batch_size=4,
        max_new_tokens=5,
        model_name="m",
    )
    assert len(out) == 3 * len(steerable) and not (tmp_path / "out.parquet.runs").exists()
    assert out.groupby(["selection", "condition"]).size().to_dict() == {
        ("auto", "image"): 6,
        ("oracle", "image"): 6,
        ("oracle", "text"): 6,
    }
    auto = out[out["selection"] == "auto"].set_index("task_id")
    oracle = out[(out["selection"] == "oracle") & (out["condition"] == "image")].set_index(
        "task_id"
    )
    same = auto.index != "MaXM-0000-de"
    assert (auto.loc[same, "reply"] == oracle.loc[auto.index[same], "reply"]).all()
    assert auto.loc["MaXM-0000-de", "steer_language"] == "fr"
    assert out["intervention"].nunique() == 2 and set(out["layer"]) == {1}


def test_checkpoint_key_tracks_vectors_queries_and_settings(tasks):
    q = steer_queries(tasks, None, "oracle", ("image",))
    vecs = {"de": torch.ones(4), "fr": torch.zeros(4)}
    key = _run_key(vecs, q, "s")
    assert key == _run_key(dict(vecs), q.copy(), "s")
    assert key != _run_key({"de": torch.ones(4) * 2, "fr": torch.zeros(4)}, q, "s")
    assert key != _run_key(vecs, q.iloc[1:], "s")
    assert key != _run_key(vecs, q, "t")


# ---- measurement and tables ---------------------------------------------------------------


class _FakeLID:
    """Says "german" for replies containing 'ja', else "english"."""

    def predict(self, texts):
        labels = ["de" if "ja" in t else "en" for t in texts]
        return labels, np.ones(len(texts))

    def names(self, labels):
        return ["german" if x == "de" else "english" for x in labels]


def test_measure_steering_stacks_baseline_and_adds_proxies(tasks):
    de = tasks[tasks["language"] == "de"]
    base = pd.concat([de.assign(condition=c) for c in ("image", "text")])[
        ["task_id", "benchmark", "language", "condition"]
    ]
    base = base.assign(
        model="m", reply="no", intervention="none", fidelity_proxy=0, language_pred="english"
    )
    gens = de[["task_id", "benchmark", "language"]].assign(
        model="m",
        condition="image",
        reply="ja",
        intervention="steer",
        study="remedy",
        variant="last-all",
        selection="oracle",
        layer=1,
        strength=1.0,
        steer_language="de",
    )
    other = base.assign(model="unsteered-model")
    df = measure_steering(gens, pd.concat([base, other]), tasks, _FakeLID(), oracle=True)
    assert len(df) == len(base) + len(gens) and set(df["model"]) == {"m"}
    assert df.loc[df["study"] == "remedy", "fidelity_proxy"].eq(1).all()
    assert df.loc[df["study"] == "none", "layer"].eq(-1).all()
    assert {"accuracy_proxy", "fidelity_oracle", "accuracy_oracle"} <= set(df.columns)
    assert (
        df.loc[df["study"] == "remedy", "fidelity_oracle"].eq(1.0).all()
    )  # "ja" is German to the oracle


def test_stratified_mean_closed_form():
    values = [1.0, 3.0, 10.0, 20.0, 30.0, 5.0]
    strata = ["a", "a", "b", "b", "b", "c"]
    r = stratified_mean(values, strata)
    assert r["estimate"] == pytest.approx((2 + 20 + 5) / 3)
    pooled = (2.0 + 2 * 100.0) / 3  # (n_k - 1) s_k^2 summed over a and b, over their dof
    se = np.sqrt(2.0 / 2 + 100.0 / 3 + pooled / 1) / 3
    assert r["se"] == pytest.approx(se) and r["n"] == 6
    assert r["ci_high"] - r["estimate"] == pytest.approx(1.959964 * se, rel=1e-5)
    assert np.isnan(stratified_mean([np.nan], ["a"])["estimate"])


def test_stratified_mean_covers_the_truth():
    rng = np.random.default_rng(1)
    means = {"a": 0.1, "b": -0.3, "c": 0.5}
    truth = np.mean(list(means.values()))
    hits = 0
    for _ in range(400):
        strata = ["a"] * 8 + ["b"] * 20 + ["c"] * 5
        values = [means[s] + rng.normal(0, 0.4) for s in strata]
        r = stratified_mean(values, strata)
        hits += r["ci_low"] <= truth <= r["ci_high"]
    assert 0.91 <= hits / 400 <= 0.98


def _hand_measured() -> pd.DataFrame:
    """Model m, two cells; per task fidelity image / text / steered image (proxy = oracle)."""
    tasks = {  # task: (benchmark, language, image, text, steered)
        "t1": ("MaXM", "de", 0, 1, 1),
        "t2": ("MaXM", "de", 0, 1, 0),
        "t3": ("MaXM", "de", 1, 1, 1),
        "t4": ("LLaVA-W", "fr", 0, 1, 1),
        "t5": ("LLaVA-W", "fr", 0, 0, 1),
        "t6": ("MaXM", "en", 1, 1, 1),  # English: never in the tables
    }
    rows = []
    cfg_none = {
        "study": "none",
        "variant": "none",
        "selection": "none",
        "layer": -1,
        "strength": 0.0,
    }
    for t, (b, lang, img, txt, st) in tasks.items():
        common = {"model": "m", "task_id": t, "benchmark": b, "language": lang}
        rows.append(
            common | cfg_none | {"condition": "image", "fidelity_proxy": img, "accuracy_proxy": img}
        )
        rows.append(
            common | cfg_none | {"condition": "text", "fidelity_proxy": txt, "accuracy_proxy": txt}
        )
        for sel in ("oracle", "auto"):
            rows.append(
                common
                | {
                    "study": "remedy",
                    "variant": "last-generated",
                    "selection": sel,
                    "layer": 1,
                    "strength": 1.0,
                    "condition": "image",
                    "fidelity_proxy": st,
                    "accuracy_proxy": 0,
                }
            )
        rows.append(
            common
            | {
                "study": "remedy",
                "variant": "last-generated",
                "selection": "oracle",
                "layer": 1,
                "strength": 1.0,
                "condition": "text",
                "fidelity_proxy": txt,
                "accuracy_proxy": txt,
            }
        )
    df = pd.DataFrame(rows)
    return df.assign(
        fidelity_oracle=df["fidelity_proxy"].astype(float),
        accuracy_oracle=df["accuracy_proxy"] * 1.0,
    )


def test_table5_arithmetic_and_tables_6_to_9():
    df = _hand_measured()
    t5 = remedy_table(df, primary="last-generated")
    assert set(t5["source"]) == {"proxy", "oracle"} and len(t5) == 4
    row = t5[(t5["source"] == "proxy") & t5["primary"]].iloc[0]
    # cells: MaXM-de ifl = mean(-1,-1,0) = -2/3, remedy = mean(0,-1,0) = -1/3; LLaVA-W-fr ifl = mean(-1, 0) = -1/2,
    # remedy = mean(0, 1) = 1/2. Table 5 = unweighted mean of the cells.
    assert row["ifl"] == pytest.approx((-2 / 3 - 1 / 2) / 2)
    assert row["ifl_remedy"] == pytest.approx((-1 / 3 + 1 / 2) / 2)
    assert row["diff"] == pytest.approx(row["ifl_remedy"] - row["ifl"])
    assert row["relative_increase"] == pytest.approx(row["diff"] / abs(row["ifl"]))
    assert row["n_tasks"] == 5 and row["selection"] == "oracle"
    assert row["accuracy"] == pytest.approx((1 / 3 + 0) / 2) and row["accuracy_remedy"] == 0
    assert row["ifl_ci_low"] < row["ifl"] < row["ifl_ci_high"]
    by = by_language_table(df)
    cell = by[
        (by["benchmark"] == "LLaVA-W") & (by["selection"] == "oracle") & (by["source"] == "proxy")
    ].iloc[0]
    assert (cell["ifl"], cell["ifl_remedy"], cell["diff"], cell["n"]) == (-0.5, 0.5, 1.0, 2)
    avg = by[
        (by["benchmark"] == "average") & (by["selection"] == "oracle") & (by["source"] == "proxy")
    ].iloc[0]
    assert avg["ifl"] == pytest.approx(row["ifl"]) and avg["diff"] == pytest.approx(row["diff"])
    assert "en" not in set(by["language"])
    summary = steering_summary(t5)
    assert summary["ifl"] == {"m": round(row["ifl"], 4)} and summary["ifl_remedy"]["m"] == round(
        row["ifl_remedy"], 4
    )
    text = text_check_table(df)
    assert len(text) == 2 and text["fidelity_diff"].eq(0).all()
    sel = selection_table(
        t5,
        _questions(
            pd.DataFrame(
                {"task_id": ["a", "b"], "benchmark": ["MaXM"] * 2, "language": ["de", "fr"]}
            ),
            {"b": "de"},
        ),
    )
    assert set(sel["source"]) == {"proxy", "oracle"} and sel["question_lid_agreement"].eq(0.5).all()
    assert {"ifl_remedy_oracle", "ifl_remedy_auto"} <= set(sel.columns)


def test_relative_increase_reproduces_the_papers_table5():
    paper = pd.read_csv("book/data/paper/hinck2024_table5_steering.csv")
    ours = [_relative(d, i) for d, i in zip(paper["diff"], paper["ifl"], strict=True)]
    np.testing.assert_allclose(ours, paper["relative_increase"], atol=0.006)
    assert np.isnan(_relative(0.1, 0.0))


def test_sweep_table_shape():
    base = _hand_measured()
    base = base[base["study"] == "none"]
    rows = [base]
    for layer in (1, 2):
        for s in (0.5, 1.0, 2.0):
            st = base[base["condition"] == "image"].assign(
                study="sweep", variant="last-generated", selection="oracle", layer=layer, strength=s
            )
            rows.append(st.assign(fidelity_proxy=1, fidelity_oracle=1.0))
    table = sweep_table(pd.concat(rows, ignore_index=True))
    assert len(table) == 2 * 2 * (3 + 1)  # sources x layers x (strengths + unsteered)
    assert table.groupby(["source", "layer"]).size().eq(4).all()
    zero = table[table["strength"] == 0]
    assert zero["fidelity"].lt(1).all() and table[table["strength"] > 0]["fidelity"].eq(1).all()


# ---- CKA and the 2-D projection -----------------------------------------------------------


def test_cka_table_layout():
    rng = np.random.default_rng(0)
    a = [rng.normal(size=(40, 8)) for _ in range(3)]
    b = [x @ rng.normal(size=(8, 6)) + 0.5 * rng.normal(size=(40, 6)) for x in a]
    df = cka_table(a, b)
    assert len(df) == 9
    lin, rbf = cka_heatmap(a, b, kind="linear"), cka_heatmap(a, b, kind="rbf")
    grid = df.pivot(index="layer_a", columns="layer_b", values="value").to_numpy()
    np.testing.assert_allclose(grid, triangle_heatmap(lin, rbf))
    assert (df.loc[df["layer_a"] >= df["layer_b"], "kernel"] == "linear").all()
    assert (df.loc[df["layer_a"] < df["layer_b"], "kernel"] == "rbf").all()
    same = cka_table(a, a)
    np.testing.assert_allclose(same.loc[same["layer_a"] == same["layer_b"], "value"], 1.0)
    mask = triangle_mask(3, 5)
    assert mask[:, 0].all() and mask[2].all() and not mask[0, 1:].any() and mask.shape == (3, 5)


def test_question_token_mask_finds_the_question():
    meta = pd.DataFrame(
        {
            "input": [0] * 7 + [1] * 4,
            "position": list(range(7)) + [3, 2, 1, 0],
            "token_id": [2, 9, 4, 4, 11, 12, 13] + [13, 4, 9, 2],
            "modality": [
                "special",
                "text",
                "image",
                "image",
                "text",
                "text",
                "text",
                "text",
                "image",
                "text",
                "special",
            ],
        }
    )
    mask = question_token_mask(meta, {0: [11, 12], 1: [99]})
    # input 0: its question's tokens; input 1 (question not found): text after the last image
    assert mask.tolist() == [False] * 4 + [True, True, False] + [True, False, False, False]


def test_token_points_and_projection(vlm, tasks):
    model, processor = vlm
    sub = (
        tasks[tasks["benchmark"] == "MaXM"]
        .sort_values(["language", "task_id"])
        .reset_index(drop=True)
    )
    meta, arrays = token_points(model, processor, sub, [0, 2], batch_size=4)
    n_image = 2 * 16  # 2 images x 16 patches, from one language's prompts only
    assert (meta["modality"] == "image").sum() == n_image and set(arrays) == {0, 2}
    assert set(meta.loc[meta["modality"] == "text", "language"]) == set(LANGS)
    assert all(a.shape == (len(meta), 32) for a in arrays.values())
    keep = sample_points(meta, 10, seed=0)
    assert meta.iloc[keep].groupby(["modality", "language"]).size().max() == 10
    np.testing.assert_array_equal(keep, sample_points(meta, 10, seed=0))
    coords, gaps = project_points(
        meta.iloc[keep].reset_index(drop=True),
        {k: v[keep] for k, v in arrays.items()},
        method="tsne",
    )
    assert len(coords) == 2 * len(keep) and np.isfinite(coords[["x", "y"]]).all().all()
    assert list(gaps["layer"]) == [0, 2] and gaps["modality_gap"].gt(0).all()


def test_projection_tasks_are_image_tasks_english_first():
    tasks = pd.DataFrame(
        {
            "task_id": [f"{b}-{lang}-{i}" for b, lang in [("m", "zh"), ("m", "en"), ("q", "en")]
                        for i in range(3)],
            "benchmark": ["m"] * 6 + ["q"] * 3,
            "language": ["zh"] * 3 + ["en"] * 6,
            "image": ["a.png", "b.png", None, "a.png", "b.png", None, None, None, None],
        }
    )  # fmt: skip
    chosen = projection_tasks(tasks, ["m", "q"], per_language=5)
    assert chosen["language"].tolist() == ["en", "en", "zh", "zh"]  # text-only tasks left out
    assert chosen["image"].notna().all() and list(chosen.index) == [0, 1, 2, 3]
    assert len(projection_tasks(tasks, ["m"], per_language=1)) == 2
    with pytest.raises(ValueError, match=r"no image tasks in steering.benchmarks \['q'\]"):
        projection_tasks(tasks, ["q"])
