"""Stage-2 remedy mixes: proportions, task formats, determinism, and the phased stage 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from _organism_fixtures import Organism, organism
from safetensors.torch import load_file

from ifl.data.mixes import BI_CUE, EP_CUE, build_mix, proportions, task_row
from ifl.data.organism import (
    render_scenes,
    sample_scenes,
    text_dialogues,
    visual_instructions,
    visual_items,
)
from ifl.models.prompts import prompt, target
from ifl.train.organism import _switch, pixel_tensor, stage2, stage2_phased
from ifl.world.items import realise

torch.set_num_threads(1)
LANGS = ["de", "zh", "hi"]
TASKS = ["mvqa", "epvqa", "bvqa"]


@pytest.fixture(scope="module")
def world():
    scenes = sample_scenes(40, 1)
    items = visual_items(scenes, 600, 2)
    return scenes, items, visual_instructions(items, "en", error_rate=0.0, seed=0)


@pytest.mark.parametrize("ratio", [0.05, 0.10, 0.25])
@pytest.mark.parametrize("phase", ["throughout", "final"])
def test_text_ratio_matches_the_config_within_one_percent(world, ratio, phase):
    scenes, items, instr = world
    mix = build_mix(instr, items, scenes, text_only_share=0.1, text_ratio=ratio, text_phase=phase,
                    languages=LANGS, seed=7)  # fmt: skip
    p = proportions(mix)
    assert abs(p["text_ml"] - ratio) < 0.01
    assert abs(p["text_en"] - 0.1) < 0.01
    ml = mix[mix["source"] == "text_ml"]
    assert set(ml["language"]) == set(LANGS) and (ml["scene"] == -1).all()
    assert (mix[mix["source"] == "visual"]["scene"] >= 0).all()
    final = mix["phase"] == "final"
    if phase == "final":
        assert final.equals(mix["source"] == "text_ml")
        assert final.to_numpy()[-len(ml) :].all()  # held back at the end
    else:
        assert not final.any()


@pytest.mark.parametrize("share", [0.4, 0.7, 1.0, 1.5])
def test_non_english_share_matches_the_config_within_one_percent(world, share):
    scenes, items, instr = world
    mix = build_mix(instr, items, scenes, text_only_share=0.1, tasks=TASKS, non_english_share=share,
                    languages=LANGS, seed=7)  # fmt: skip
    p = proportions(mix)
    assert abs(p["non_english"] - share) < 0.01
    for task in TASKS:
        assert abs(p[task] - share / 3) < 0.01
    assert p["text_ml"] == 0 and abs(p["text_en"] - 0.1) < 0.01
    assert set(mix.loc[mix["source"].isin(TASKS), "language"]) == set(LANGS)


def test_a_leave_one_out_set_has_no_rows_of_the_left_out_task(world):
    scenes, items, instr = world
    mix = build_mix(instr, items, scenes, text_only_share=0.1, tasks=["mvqa", "bvqa"], languages=LANGS,
                    seed=1)  # fmt: skip
    assert set(mix["source"]) == {"visual", "mvqa", "bvqa", "text_en"}
    assert abs(proportions(mix)["non_english"] - 1.0) < 0.01


def test_english_text_rows_are_the_ones_stage2_would_add(world):
    scenes, items, instr = world
    mix = build_mix(instr, items, scenes, text_only_share=0.2, seed=11)
    n_text = int(round(len(instr) * 0.2 / 0.8))
    expected = text_dialogues(scenes, {"en": 1.0}, n_text, 12)
    english = mix[mix["source"] == "text_en"]
    assert english["prompt"].tolist() == expected["prompt"].tolist()
    assert english["target"].tolist() == expected["target"].tolist()
    assert mix.iloc[: len(instr)]["prompt"].tolist() == instr["prompt"].tolist()


def test_mix_is_deterministic_for_a_seed(world):
    scenes, items, instr = world
    kw = {
        "text_only_share": 0.1,
        "text_ratio": 0.1,
        "tasks": TASKS,
        "languages": LANGS,
        "error_rate": 0.1,
    }
    a = build_mix(instr, items, scenes, seed=3, **kw)
    b = build_mix(instr, items, scenes, seed=3, **kw)
    c = build_mix(instr, items, scenes, seed=4, **kw)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_task_formats(world):
    _, items, _ = world
    scene, item = items[0]
    q_de, a_de = realise(item, "de")
    q_en, a_en = realise(item, "en")
    rng = np.random.default_rng(0)
    mvqa = task_row("mvqa", scene, item, "de", rng)
    assert mvqa["prompt"] == prompt(q_de, image=True) and mvqa["target"] == target(a_de)
    ep = task_row("epvqa", scene, item, "de", rng)
    assert ep["prompt"] == prompt(f"{q_de}\n{EP_CUE.format(name='German')}", image=True)
    assert ep["target"] == target(f"{q_en}\n{a_de}")
    seen = set()
    for _ in range(20):
        bi = task_row("bvqa", scene, item, "de", rng)
        if bi["target"] == target(a_de):
            assert bi["prompt"] == prompt(f"{q_en}\n{BI_CUE.format(name='German')}", image=True)
            seen.add("to_de")
        else:
            assert bi["target"] == target(a_en)
            assert bi["prompt"] == prompt(f"{q_de}\n{BI_CUE.format(name='English')}", image=True)
            seen.add("to_en")
    assert seen == {"to_de", "to_en"}  # both directions occur


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tasks": ["xvqa"]}, "unknown task 'xvqa'"),
        ({"languages": ["en", "de"], "text_ratio": 0.1}, "non-English"),
        ({"text_ratio": 1.0, "languages": ["de"]}, "text_ratio"),
        ({"text_phase": "middle"}, "text_phase"),
        ({"text_ratio": 0.1}, "at least one non-English language"),
        ({"non_english_share": -0.5, "tasks": TASKS, "languages": ["de"]}, "non_english_share"),
        ({"languages": ["xx"]}, "unknown language 'xx'"),
    ],
)
def test_bad_arguments_raise_one_line_errors(world, kwargs, message):
    scenes, items, instr = world
    with pytest.raises(ValueError, match=message):
        build_mix(instr, items, scenes, **{"text_only_share": 0.1, **kwargs})


def test_switch_calls_the_first_function_for_the_main_phase():
    calls = []
    fn = _switch(lambda rng: calls.append("main"), lambda rng: calls.append("all"), 3)
    for _ in range(5):
        fn(None)
    assert calls == ["main"] * 3 + ["all"] * 2


# --- training -------------------------------------------------------------------------------

SCHEDULE = {"steps": 3, "batch_size": 4, "lr": 1e-3}
CPU = torch.device("cpu")


@pytest.fixture(scope="session")
def org(tmp_path_factory: pytest.TempPathFactory) -> Organism:
    return organism(tmp_path_factory)


def test_phased_stage2_without_a_final_phase_is_stage2_bit_for_bit(org: Organism, tmp_path: Path):
    pixels = pixel_tensor(render_scenes(org.scenes, 32), 32)
    items = visual_items(org.scenes, 16, seed=5)
    instr = visual_instructions(items, "en", error_rate=0.0, seed=5)
    stage2(
        org.vlm_dir,
        pixels,
        instr,
        org.scenes,
        0.25,
        SCHEDULE,
        tmp_path / "stage2",
        seed=3,
        device=CPU,
    )
    mix = build_mix(instr, items, org.scenes, text_only_share=0.25, seed=3)
    stage2_phased(org.vlm_dir, pixels, mix, SCHEDULE, tmp_path / "phased", final_fraction=0.5, seed=3,
                  device=CPU)  # fmt: skip
    a, b = (
        load_file(tmp_path / "stage2" / "model.safetensors"),
        load_file(tmp_path / "phased" / "model.safetensors"),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # A final phase changes the training (so the equality above could fail).
    final = build_mix(instr, items, org.scenes, text_only_share=0.25, text_ratio=0.5, text_phase="final",
                      languages=["de"], seed=3)  # fmt: skip
    stage2_phased(org.vlm_dir, pixels, final, SCHEDULE, tmp_path / "final", final_fraction=0.5, seed=3,
                  device=CPU)  # fmt: skip
    c = load_file(tmp_path / "final" / "model.safetensors")
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_phased_stage2_checks_its_inputs(org: Organism, tmp_path: Path):
    pixels = pixel_tensor(render_scenes(org.scenes, 32), 32)
    mix = pd.DataFrame({"scene": [0], "prompt": ["p"], "target": ["t"], "phase": ["later"]})
    with pytest.raises(ValueError, match="unknown phase 'later'"):
        stage2_phased(
            org.vlm_dir,
            pixels,
            mix,
            SCHEDULE,
            tmp_path / "x",
            final_fraction=0.2,
            seed=0,
            device=CPU,
        )
    with pytest.raises(ValueError, match="final_fraction"):
        stage2_phased(
            org.vlm_dir,
            pixels,
            mix,
            SCHEDULE,
            tmp_path / "x",
            final_fraction=1.5,
            seed=0,
            device=CPU,
        )
