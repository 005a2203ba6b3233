"""Organism quality helpers and the DAG bookkeeping readers."""

from __future__ import annotations

import os
import time

import pandas as pd
import pytest

from ifl.dag import benchmark_table, job_counts
from ifl.organism_report import (
    accuracy_by_kind,
    accuracy_by_language,
    lid_rates,
    llm_key_table,
    llm_lookup,
    llm_text_replies,
    llm_text_table,
    loss_curves,
    reply_languages,
    run_span,
    vision_probe,
    vlm_fidelity,
)
from ifl.world.oracle import oracle_language


def test_lid_rates_with_the_oracle_as_identifier_are_perfect_on_sentences():
    rates = lid_rates(lambda texts: [oracle_language(t) for t in texts], ["de", "ja"], n=20)
    sentences = rates[rates["kind"] != "answer"]
    assert (sentences["rate"] == 1.0).all()
    wrong = lid_rates(lambda texts: ["en"] * len(texts), ["de"], n=5)
    assert (wrong["rate"] == 0.0).all()


def test_run_span_and_benchmark_table(tmp_path):
    now = time.time()
    for name, secs, end in (
        ("stage2-a-b-en", 60.0, now),
        ("stage2-a-b-zh", 30.0, now - 100),
        ("tasks", 5.0, now - 500),
    ):
        path = tmp_path / f"{name}.tsv"
        path.write_text(f"s\th:m:s\tmax_rss\n{secs}\t0:00:00\t123.4\n")
        os.utime(path, (end, end))
    assert run_span(tmp_path) == (pytest.approx(505 / 60, abs=1e-6), 3)
    # A job rerun an hour later adds its 20 s, not the idle hour in between.
    later = tmp_path / "notebook-00.tsv"
    later.write_text("s\th:m:s\tmax_rss\n20.0\t0:00:20\t100.0\n")
    os.utime(later, (now + 3600, now + 3600))
    assert run_span(tmp_path) == (pytest.approx((505 + 20) / 60, abs=1e-6), 4)
    assert run_span(tmp_path, gap_s=4000) == (pytest.approx((3600 + 505) / 60, abs=1e-6), 4)
    later.unlink()
    table = benchmark_table(tmp_path).set_index("rule")
    assert table.loc["stage2", "jobs"] == 2 and table.loc["stage2", "seconds"] == 90.0
    assert table.index[0] == "stage2"
    with pytest.raises(ValueError, match="no benchmark files"):
        run_span(tmp_path / "none")


def test_job_counts_parses_the_dry_run_table():
    text = "Building DAG of jobs...\nJob stats:\njob      count\n-----  -------\nstage2      14\ngenerate    28\ntotal       42\n\nReasons:"
    assert job_counts(text) == {"stage2": 14, "generate": 28}
    with pytest.raises(ValueError):
        job_counts("nothing")


def test_loss_curves(tmp_path):
    (tmp_path / "m1").mkdir()
    pd.DataFrame({"stage": "s", "step": [0, 1], "loss": [2.0, 1.0]}).to_csv(
        tmp_path / "m1" / "loss.csv", index=False
    )
    curves = loss_curves([tmp_path / "m1", tmp_path / "missing"])
    assert list(curves["model"].unique()) == ["m1"]
    with pytest.raises(ValueError):
        loss_curves([tmp_path / "missing"])


def test_accuracy_by_kind_joins_the_task_kinds():
    tasks = pd.DataFrame({"task_id": ["t1", "t2", "t3"], "kind": ["colour", "count", "colour"]})
    labelled = pd.DataFrame(
        {
            "model": ["m"] * 6,
            "task_id": ["t1", "t2", "t3"] * 2,
            "benchmark": ["MaXM"] * 6,
            "language": ["en"] * 6,
            "condition": ["image"] * 3 + ["text"] * 3,
            "accuracy_oracle": [1.0, 1.0, 0.0, 0.0, 1.0, 0.0],
        }
    )
    out = accuracy_by_kind(labelled, tasks).set_index(["condition", "kind"])
    assert out.loc[("image", "colour"), "accuracy"] == 0.5
    assert out.loc[("image", "colour"), "n"] == 2
    assert out.loc[("text", "count"), "accuracy"] == 1.0
    with pytest.raises(ValueError, match="'t9'"):
        accuracy_by_kind(labelled.assign(task_id="t9"), tasks)
    with pytest.raises(ValueError, match="no MaXM rows in language 'de'"):
        accuracy_by_kind(labelled, tasks, language="de")


def test_accuracy_by_language_marks_the_training_language():
    labelled = pd.DataFrame(
        {
            "model": ["m-zh"] * 4 + ["m-en"] * 2,
            "benchmark": "MaXM",
            "language": ["zh", "zh", "en", "en", "en", "zh"],
            "condition": "image",
            "intervention": "none",
            "accuracy_oracle": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        }
    )
    steered = labelled.assign(intervention="steer", accuracy_oracle=1.0)  # left out
    out = accuracy_by_language(
        pd.concat([labelled, steered]), {"m-zh": "zh", "m-en": "en"}
    ).set_index(["model", "language"])
    assert out.loc[("m-zh", "zh"), "accuracy"] == 0.5 and out.loc[("m-zh", "zh"), "n"] == 2
    assert out.loc[("m-zh", "en"), "accuracy"] == 0.0
    assert out["own"].to_dict() == {
        ("m-en", "en"): True,
        ("m-en", "zh"): False,
        ("m-zh", "en"): False,
        ("m-zh", "zh"): True,
    }
    with pytest.raises(ValueError, match="'m-zh' has no training-data language"):
        accuracy_by_language(labelled, {"m-en": "en"})


def test_reply_languages_shares_per_model_and_condition():
    replies = ["red", "rot", "rot", "xyz", "blue", "green"]
    labelled = pd.DataFrame(
        {
            "model": ["m-de"] * 4 + ["m-en"] * 2,
            "benchmark": "MaXM",
            "language": "en",
            "intervention": "none",
            "condition": ["image"] * 4 + ["text"] * 2,
            "reply": replies,
        }
    )
    extra = labelled.assign(intervention="steer", reply="rot")  # interventions are left out
    out = reply_languages(pd.concat([labelled, extra])).set_index(
        ["model", "condition", "reply_language"]
    )
    assert out.loc[("m-de", "image", "de"), "share"] == 0.5
    assert out.loc[("m-de", "image", "en"), "share"] == 0.25
    assert out.loc[("m-de", "image", "none"), "share"] == 0.25
    assert out.loc[("m-en", "text", "en"), "share"] == 1.0
    assert (out["n"].loc["m-de"] == 4).all()
    with pytest.raises(ValueError, match="language 'fr'"):
        reply_languages(labelled, language="fr")


def test_llm_text_table_aggregates_replies_per_language_and_kind():
    replies = pd.DataFrame(
        {
            "backbone": ["yi"] * 4 + ["leo"] * 2,
            "language": ["en", "zh", "zh", "zh", "en", "de"],
            "kind": ["colour", "colour", "colour", "shape", "colour", "shape"],
            "faithful": [True, True, False, True, True, True],
            "correct": [True, False, True, False, False, True],
        }
    )
    out = llm_text_table(replies).set_index(["backbone", "language", "kind"])
    assert len(out) == 5
    row = out.loc[("yi", "zh", "colour")]
    assert (row["accuracy"], row["fidelity"], row["n"]) == (0.5, 0.5, 2)
    assert out.loc[("leo", "de", "shape"), "accuracy"] == 1.0


def test_llm_key_table_keeps_scenes_where_the_key_decides():
    replies = pd.DataFrame(
        {
            "backbone": ["v"] * 6,
            "language": ["fr", "fr", "fr", "en", "en", "en"],
            "kind": ["colour", "colour", "colour", "colour", "colour", "yesno"],
            "key": ["shape", "shape", "shape", "shape", "shape", None],
            "objects": [2, 3, 1, 4, 2, 3],
            "correct": [True, True, False, False, True, True],
        }
    )
    out = llm_key_table(replies).set_index(["language", "kind", "key"])
    assert len(out) == 2  # single-object scenes and keyless kinds are left out
    assert (
        out.loc[("fr", "colour", "shape"), "accuracy"],
        out.loc[("fr", "colour", "shape"), "n"],
    ) == (1.0, 2)
    assert out.loc[("en", "colour", "shape"), "accuracy"] == 0.5
    assert out.loc[("fr", "colour", "shape"), "colour_after_shape"]
    assert not out.loc[("en", "colour", "shape"), "colour_after_shape"]


def test_vlm_fidelity_is_the_oracle_mean_without_intervention():
    labelled = pd.DataFrame(
        {
            "model": ["m"] * 5,
            "benchmark": ["MaXM"] * 5,
            "language": ["de"] * 5,
            "condition": ["text", "text", "image", "image", "text"],
            "intervention": ["none"] * 4 + ["steer"],
            "fidelity_oracle": [1.0, 0.0, 0.0, 0.0, 1.0],
        }
    )
    out = vlm_fidelity(labelled).set_index("condition")
    assert out.loc["text", "fidelity"] == 0.5 and out.loc["text", "n"] == 2
    assert out.loc["image", "fidelity"] == 0.0


def test_llm_text_replies_and_lookup_on_a_tiny_lm(tmp_path):
    # Plumbing on an untrained LM: one row per check, judged by the oracle; lookup in [0, 1].
    from ifl.models.tiny import build_llm, train_tokenizer
    from ifl.world.tasks import text_checks

    checks = text_checks(["en", "de"], 2, seed=5)
    tok = train_tokenizer((checks["description"] + " " + checks["question"]).tolist(), 400)
    build_llm(tok, {"hidden": 16, "layers": 1, "heads": 2, "intermediate": 32}, 0).save_pretrained(
        tmp_path / "lm"
    )
    tok.save_pretrained(tmp_path / "lm")
    replies = llm_text_replies(tmp_path / "lm", checks, backbone="lm", max_new_tokens=2)
    assert len(replies) == len(checks) == 16
    assert list(replies["language"]) == list(checks["language"])
    assert replies["faithful"].dtype == bool and replies["correct"].dtype == bool
    # what each question keys on travels with its reply
    assert list(replies["key"]) == list(checks["key"])
    assert set(checks.loc[checks.kind.isin(["colour", "shape"]), "key"]) <= {
        "pos", "shape", "colour", "size_shape", "size_colour"
    }  # fmt: skip
    assert checks.loc[~checks.kind.isin(["colour", "shape"]), "key"].isna().all()
    look = llm_lookup([tmp_path / "lm"], n=50)
    assert look.loc[0, "checkpoint"] == "lm" and 0.0 <= look.loc[0, "accuracy"] <= 1.0


@pytest.mark.parametrize("patch", [8, 16])
def test_vision_probe_reads_colour_from_a_random_vit(tmp_path, patch):
    # Colour passes straight through a random patch embedding: a linear probe must find it.
    from ifl.data.organism import render_scenes, sample_scenes
    from ifl.models.tiny import build_vision

    scenes = sample_scenes(300, 0)
    vision = build_vision({"hidden": 32, "layers": 2, "heads": 2, "intermediate": 64}, 32, patch, 0)
    vision.save_pretrained(tmp_path / "clip")
    out = vision_probe(tmp_path / "clip", render_scenes(scenes, 32), scenes, seed=0)
    assert list(out["attribute"]) == ["shape", "colour", "size"]
    assert set(out["encoder"]) == {"clip"}
    acc = out.set_index("attribute")["accuracy"]
    assert acc["colour"] > 0.9 and ((acc >= 0) & (acc <= 1)).all()
    with pytest.raises(ValueError, match="300 images but 2 scenes"):
        vision_probe(tmp_path / "clip", render_scenes(scenes, 32), scenes[:2])


def test_organism_summary_pools_cells_by_their_counts(tmp_path):
    from ifl.summary import organism_summary

    tables = {
        "organism_accuracy.csv": {"model": ["m"], "accuracy": [0.5]},
        "organism_accuracy_language.csv": {
            "model": ["m"] * 3, "language": ["de", "de", "en"], "condition": ["image", "text", "text"],
            "own": [True, True, False], "accuracy": [0.75, 1.0, 0.0], "n": [100, 100, 100],
        },
        "organism_llm_text.csv": {
            "backbone": ["leo"] * 2, "language": ["de"] * 2, "kind": ["colour", "shape"],
            "accuracy": [1.0, 0.5], "fidelity": [1.0, 0.9], "n": [100, 300],
        },
        "organism_llm_lookup.csv": {"checkpoint": ["leo"], "accuracy": [0.98]},
        "organism_vlm_fidelity.csv": {
            "model": ["m"] * 3, "benchmark": ["MaXM", "VisIT", "MaXM"], "language": ["de"] * 3,
            "condition": ["text", "text", "image"], "fidelity": [1.0, 0.0, 0.2], "n": [30, 10, 40],
        },
        "organism_lid.csv": {"language": ["de"], "kind": ["description"], "rate": [1.0]},
        "organism_probe.csv": {"encoder": ["clip"], "attribute": ["colour"], "accuracy": [0.9]},
    }  # fmt: skip
    for name, cols in tables.items():
        pd.DataFrame(cols).to_csv(tmp_path / name, index=False)
    out = organism_summary(tmp_path, None)
    assert out["vlm_accuracy_own"] == {"m": {"image": 0.75, "text": 1.0}}
    assert out["vlm_text_fidelity"] == {"m": {"de": 0.75}}  # (30 * 1 + 10 * 0) / 40
    assert out["llm_text_accuracy"] == {"leo": {"de": 0.625}}  # (100 + 150) / 400
    assert out["llm_text_fidelity"] == {"leo": {"de": 0.925}}
    assert out["llm_lookup"] == {"leo": 0.98} and "minutes_total" not in out
