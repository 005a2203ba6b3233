"""The paper preset's remedy mixes (ifl.data.paper_mixes): proportions within 1% of the config,
LRM-LLaVA's task rows built from LLaVA conversations and their translations, text-only rows from
the configured columns; the config checks; the trainer's final phase; merging a *.bin LLM."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from ifl.config import REPO_ROOT, ConfigError, validate
from ifl.data.llava_data import IMAGE_TOKEN, validate_example
from ifl.data.mixes import BI_CUE, EP_CUE, proportions
from ifl.data.paper_mixes import (
    build_paper_mix,
    language_lookup,
    plan_tasks,
    read_mix,
    read_text_data,
    task_conversation,
    task_rows,
    text_rows,
    write_mix,
)

torch.set_num_threads(1)
LANGS = ["de", "zh"]
TASKS = ["mvqa", "epvqa", "bvqa"]


def _conv(i: int, image: bool, lang: str = "en", rounds: int = 2) -> list[dict[str, str]]:
    """A mix665k-style conversation; ``lang`` marks every turn as its NLLB translation would."""
    tag = "" if lang == "en" else f"[{lang}] "
    conv = []
    for r in range(rounds):
        conv += [{"from": "human", "value": f"{tag}question {i}.{r}?"},
                 {"from": "gpt", "value": f"{tag}answer {i}.{r}."}]  # fmt: skip
    if image:  # mix665k puts <image> before or after the first question
        first = conv[0]["value"]
        conv[0]["value"] = f"{IMAGE_TOKEN}\n{first}" if i % 2 else f"{first}\n{IMAGE_TOKEN}"
    return conv


def _data(n_image: int = 400, n_text: int = 40, lang: str = "en") -> pd.DataFrame:
    """mix665k as read by read_llava_json without an image root (or its translation)."""
    rows = [
        {"id": f"{i:06d}", "image": f"coco/train2017/{i:012d}.jpg",
         "conversations": _conv(i, True, lang, rounds=1 + i % 3)}
        for i in range(n_image)
    ] + [
        {"id": f"sharegpt-{i}", "image": None, "conversations": _conv(i, False, lang)}
        for i in range(n_text)
    ]  # fmt: skip
    df = pd.DataFrame(rows)
    return df.assign(n_turns=df["conversations"].map(len))


@pytest.fixture(scope="module")
def data():
    text = pd.DataFrame(
        {
            "prompt": [f"{lang} prompt {i}" for lang in LANGS for i in range(30)],
            "response": [f"{lang} response {i}" for lang in LANGS for i in range(30)],
            "language": [lang for lang in LANGS for _ in range(30)],
        }
    )
    return _data(), {lang: _data(lang=lang) for lang in LANGS}, text


def _mix(data, **kw):
    english, translations, text = data
    return build_paper_mix(english, english, translations, text, languages=LANGS, seed=5, **kw)


# --- proportions ---------------------------------------------------------------------------
@pytest.mark.parametrize("ratio", [0.05, 0.10, 0.25])
@pytest.mark.parametrize("phase", ["throughout", "final"])
def test_text_ratio_matches_the_config_within_one_percent(data, ratio, phase):
    mix = _mix(data, text_ratio=ratio, text_phase=phase)
    p = proportions(mix)
    assert abs(p["text_ml"] - ratio) < 0.01
    ml = mix[mix["source"] == "text_ml"]
    assert set(ml["language"]) == set(LANGS) and ml["image"].isna().all()
    # the base's data is all there, mix665k's own text-only rows included
    assert (mix["source"] == "visual").sum() == 400 and (mix["source"] == "text_en").sum() == 40
    final = mix["phase"] == "final"
    assert final.equals(mix["source"] == "text_ml") if phase == "final" else not final.any()
    if phase == "final":
        assert final.to_numpy()[-len(ml) :].all()  # held back at the end


@pytest.mark.parametrize("share", [0.4, 0.7, 1.0, 1.5])
def test_non_english_share_matches_the_config_within_one_percent(data, share):
    mix = _mix(data, tasks=TASKS, non_english_share=share)
    p = proportions(mix)
    assert abs(p["non_english"] - share) < 0.01
    for task in TASKS:
        assert abs(p[task] - share / 3) < 0.01
    assert p["text_ml"] == 0
    assert set(mix.loc[mix["source"].isin(TASKS), "language"]) == set(LANGS)


def test_text_and_tasks_together_keep_both_ratios(data):
    mix = _mix(data, tasks=["mvqa", "bvqa"], non_english_share=0.7, text_ratio=0.1)
    p = proportions(mix)
    assert abs(p["text_ml"] - 0.1) < 0.01 and abs(p["non_english"] - 0.7) < 0.01
    assert p["epvqa"] == 0


def test_conversations_are_used_once_per_task_before_any_repeats():
    plan = plan_tasks(50, ["mvqa"], 120, LANGS, seed=1)
    counts = plan["source"].value_counts()
    assert counts.max() - counts.min() <= 1 and len(counts) == 50
    assert set(plan["language"]) == set(LANGS)


def test_mix_is_deterministic_for_a_seed(data):
    english, translations, text = data
    kw = {"text_ratio": 0.1, "tasks": TASKS, "languages": LANGS}
    a = build_paper_mix(english, english, translations, text, seed=3, **kw)
    b = build_paper_mix(english, english, translations, text, seed=3, **kw)
    c = build_paper_mix(english, english, translations, text, seed=4, **kw)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


# --- task rows from LLaVA conversations -----------------------------------------------------
def test_task_rows_are_well_formed_llava_examples(data, tmp_path):
    mix = _mix(data, tasks=TASKS, text_ratio=0.1)
    write_mix(mix, tmp_path / "mix.json")
    raw = json.loads((tmp_path / "mix.json").read_text(encoding="utf-8"))
    assert len(raw) == len(mix) and len({ex["id"] for ex in raw}) == len(raw)
    for ex in raw:
        validate_example(ex)  # alternating turns, <image> exactly where an image is
        text = " ".join(t["value"] for t in ex["conversations"])
        if ex["source"] in TASKS:
            first = ex["conversations"][0]["value"]
            assert first.startswith(f"{IMAGE_TOKEN}\n") and text.count(IMAGE_TOKEN) == 1
        elif ex["source"] == "text_ml":
            assert "image" not in ex and IMAGE_TOKEN not in text
    back = read_mix(tmp_path / "mix.json", tmp_path / "images")
    assert back["image"].dropna().str.startswith(str(tmp_path / "images")).all()
    assert back[["source", "phase", "language"]].equals(
        mix[["source", "phase", "language"]].reset_index(drop=True)
    )


def test_task_formats_follow_lrm_llava():
    en, de = _conv(1, True, rounds=2), _conv(1, True, "de", rounds=2)
    mvqa = task_conversation("mvqa", en, de, "de")
    assert [t["value"] for t in mvqa] == [
        f"{IMAGE_TOKEN}\n[de] question 1.0?", "[de] answer 1.0.",
        "[de] question 1.1?", "[de] answer 1.1.",
    ]  # fmt: skip
    ep = task_conversation("epvqa", en, de, "de")
    cue = EP_CUE.format(name="German")
    assert ep[0]["value"] == f"{IMAGE_TOKEN}\n[de] question 1.0?\n{cue}"
    assert ep[1]["value"] == "question 1.0?\n[de] answer 1.0."  # English question, then answer
    assert ep[3]["value"] == "question 1.1?\n[de] answer 1.1."
    to_de = task_conversation("bvqa", en, de, "de", to_target=True)
    assert to_de[0]["value"] == f"{IMAGE_TOKEN}\nquestion 1.0?\n{BI_CUE.format(name='German')}"
    assert to_de[1]["value"] == "[de] answer 1.0."
    to_en = task_conversation("bvqa", en, de, "de", to_target=False)
    assert (
        to_en[0]["value"] == f"{IMAGE_TOKEN}\n[de] question 1.0?\n{BI_CUE.format(name='English')}"
    )
    assert to_en[1]["value"] == "answer 1.0."


def test_bvqa_goes_both_ways_and_rows_keep_their_image(data):
    english, translations, _ = data
    plan = plan_tasks(400, ["bvqa"], 200, LANGS, seed=0)
    rows = task_rows(english, translations, plan)
    firsts = rows["conversations"].map(lambda c: c[0]["value"])
    to_english = firsts.str.endswith(BI_CUE.format(name="English"))
    assert 0.35 < to_english.mean() < 0.65
    # each row's image is its source conversation's
    src = rows["id"].str.extract(r"^bvqa-\w\w-(\d{6})-\d+$")[0]
    assert (rows["image"] == "coco/train2017/" + src.str.zfill(12) + ".jpg").all()


def test_a_translation_of_other_examples_is_refused(data):
    english, translations, _ = data
    shuffled = translations["de"].iloc[::-1].reset_index(drop=True)
    plan = plan_tasks(400, ["mvqa"], 10, ["de"], seed=0)
    with pytest.raises(ValueError, match="not a translation of the English ones"):
        task_rows(english, {"de": shuffled}, plan)
    with pytest.raises(ValueError, match="no translation of the instructions into 'de'"):
        task_rows(english, {}, plan)
    with pytest.raises(ValueError, match="differ in rounds"):
        task_conversation("mvqa", _conv(0, True, rounds=2), _conv(0, True, "de", rounds=1), "de")


# --- text-only rows from the configured columns ---------------------------------------------
def _aya(path: Path, codes=("deu", "zho", "eng", "fra")) -> Path:
    rows = [
        {"inputs": f"{c} prompt {i} {IMAGE_TOKEN}", "targets": f"{c} target {i}",
         "language_code": c, "language": c.upper()}
        for c in codes for i in range(4)
    ] + [{"inputs": "", "targets": "empty prompt", "language_code": "deu", "language": "DEU"}]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


AYA_COLUMNS = {"prompt": "inputs", "response": "targets", "language": "language_code"}


def test_text_rows_come_from_the_configured_columns(tmp_path):
    path = _aya(tmp_path / "data" / "train-0.parquet")
    text = read_text_data([path], AYA_COLUMNS, LANGS)
    assert set(text["language"]) == set(LANGS)  # deu -> de, zho -> zh; eng and fra dropped
    assert text["prompt"].str.startswith(("deu prompt", "zho prompt")).all()
    assert not text["prompt"].str.contains(IMAGE_TOKEN).any() and (text["prompt"] != "").all()
    rows = text_rows(text, 20, LANGS, phase="all", seed=0)
    assert len(rows) == 20 and rows["image"].isna().all()
    for conv, lang in zip(rows["conversations"], rows["language"], strict=True):
        code = {"de": "deu", "zh": "zho"}[lang]
        assert conv[0]["value"].startswith(f"{code} prompt") and conv[1]["value"].startswith(
            f"{code} target"
        )
    # every example of a language is used before one repeats
    de = rows[rows["language"] == "de"]["conversations"].map(lambda c: c[0]["value"])
    assert de.nunique() == min(len(de), 4)


def test_other_column_names_and_language_codes(tmp_path):
    df = pd.DataFrame(
        {"q": ["Frage", "问题"], "a": ["Antwort", "回答"], "lang": ["German", "Chinese"]}
    )
    df.to_json(tmp_path / "t.jsonl", orient="records", lines=True, force_ascii=False)
    text = read_text_data([tmp_path / "t.jsonl"], {"prompt": "q", "response": "a", "language": "lang"},
                          LANGS, language_codes={"de": ["german"], "zh": ["chinese"]})  # fmt: skip
    assert text.set_index("language")["response"].to_dict() == {"de": "Antwort", "zh": "回答"}
    assert language_lookup(["de"])["deu"] == "de" and language_lookup(["de"])["de"] == "de"


@pytest.mark.parametrize(
    ("columns", "langs", "message"),
    [
        ({**AYA_COLUMNS, "prompt": "instruction"}, LANGS,
         "remedies.text_data.columns.prompt: 'instruction' is not a column of train-0.parquet"),
        ({"prompt": "inputs", "response": "targets"}, LANGS,
         "remedies.text_data.columns lacks 'language'"),
        (AYA_COLUMNS, ["de", "ja"], "the text data has no row in language 'ja'"),
    ],
)  # fmt: skip
def test_text_data_errors_are_one_line(tmp_path, columns, langs, message):
    path = _aya(tmp_path / "train-0.parquet")
    with pytest.raises(ValueError) as err:
        read_text_data([path], columns, langs)
    assert message in str(err.value) and "\n" not in str(err.value)


# --- config --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def paper_cfg() -> dict:
    return yaml.safe_load((REPO_ROOT / "config" / "paper.yaml").read_text(encoding="utf-8"))


def test_paper_config_fills_text_data_defaults_and_stages_it(paper_cfg):
    from ifl.paper import REMEDY_TEXT, assets

    raw = copy.deepcopy(paper_cfg)
    raw["remedies"]["text_data"] = {}
    cfg = validate(raw)
    t = cfg["remedies"]["text_data"]
    assert t["hub_id"] == "CohereForAI/aya_dataset" and t["files"] == ["data/train-*.parquet"]
    assert t["columns"] == AYA_COLUMNS
    asset = assets(cfg)[REMEDY_TEXT]
    assert asset.repo_type == "dataset" and "data/train-*.parquet" in asset.allow_patterns
    # the organism's resolved config gains no remedies key (its rule graph stays as it was)
    organism = validate(yaml.safe_load((REPO_ROOT / "config.yaml").read_text(encoding="utf-8")))
    assert not {"text_data", "gold_sheet"} & set(organism["remedies"])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r["text_data"]["columns"].update(prompt=3),
         "remedies.text_data.columns.prompt: 3 should be of type string"),
        (lambda r: r["text_data"].update(split="train"), "unknown key 'split' in remedies.text_data"),
        (lambda r: r["text_data"].update(language_codes={"xx": ["xxx"]}),
         "remedies.text_data.language_codes: 'xx' is not allowed; allowed values: zh"),
        (lambda r: r["text_data"].update(hub_id="aya"), "remedies.text_data.hub_id: 'aya' does not match"),
        (lambda r: r.update(gold_sheet=1), "remedies.gold_sheet: 1 should be of type"),
    ],
)  # fmt: skip
def test_bad_remedy_keys_fail_in_one_line(paper_cfg, edit, message):
    raw = copy.deepcopy(paper_cfg)
    edit(raw["remedies"])
    with pytest.raises(ConfigError) as err:
        validate(raw)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_text_variants_need_text_data_and_a_language(paper_cfg):
    from ifl.paper import check_remedies
    from ifl.remedies import variants

    raw = copy.deepcopy(paper_cfg)
    raw["remedies"].pop("text_data")
    cfg = validate(raw)
    with pytest.raises(ValueError, match=r"'text-10' mixes in text-only .*set remedies.text_data"):
        check_remedies(cfg, variants(cfg))
    raw["remedies"].update(text_ratios=[0])  # no text variant: no text data needed
    check_remedies(validate(raw), variants(validate(raw)))
    raw["remedies"]["languages"] = []
    cfg = validate(raw)
    with pytest.raises(ValueError, match="needs a non-English language in remedies.languages"):
        check_remedies(cfg, variants(cfg))


def test_paper_defaults_describe_the_papers_sweeps(paper_cfg):
    from ifl.remedies import variants

    names = [v["name"] for v in variants(validate(paper_cfg))]
    assert names[0] == "base" and {"text-10", "text-25", "merge-100", "tasks-all-100",
                                    "tasks-no_bvqa-100", "tasks-all-150"} <= set(names)  # fmt: skip
    assert len(names) == 1 + 2 + 4 + 4 + 3  # base, text, merge, task sets, share sweep


# --- the trainer's final phase ---------------------------------------------------------------
class _Accelerator:
    """What _batches asks of accelerate, on one process."""

    def prepare_data_loader(self, loader):
        return loader

    def skip_first_batches(self, loader, n):
        return list(loader)[n:]


def test_final_phase_rows_are_sampled_only_in_the_last_steps():
    from ifl.train.hf_trainer import _phased_batches, final_phase_start

    data = pd.DataFrame({"id": [f"a{i}" for i in range(6)] + ["f0", "f1"]})
    data["phase"] = np.where(data["id"].str.startswith("f"), "final", "all")
    kw = {"batch_size": 2, "collate_fn": lambda rows: [r["id"] for r in rows]}
    head = data[data["phase"] == "all"]
    stream = _phased_batches(head, data, kw, _Accelerator(), seed=0, skip=0, switch=5)
    batches = [next(stream) for _ in range(9)]
    assert not any(i.startswith("f") for b in batches[:5] for i in b)
    assert any(i.startswith("f") for b in batches[5:] for i in b)
    # a resumed run (skip k) continues the same stream, across the switch too
    for k in (3, 5, 7):
        again = _phased_batches(head, data, kw, _Accelerator(), seed=0, skip=k, switch=5)
        assert [next(again) for _ in range(9 - k)] == batches[k:]
    assert final_phase_start(100, 0.2) == 80
    with pytest.raises(ValueError, match="final_fraction must lie in"):
        final_phase_start(100, 0.0)


# --- merging with an original LLM stored as *.bin -------------------------------------------------
def test_merge_reads_an_original_llm_saved_as_pytorch_bin(tmp_path):
    from _paper_fixtures import build_clip, build_llm
    from safetensors.torch import load_file

    from ifl.models.prompts import CHAT_TEMPLATE
    from ifl.models.registry import compose_llava
    from ifl.train.merge import merge_llm

    build_llm(tmp_path / "llm")
    build_clip(tmp_path / "clip")
    model, processor = compose_llava(
        tmp_path / "llm", tmp_path / "clip", chat_template=CHAT_TEMPLATE
    )
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)
    model.save_pretrained(tmp_path / "vlm")
    processor.save_pretrained(tmp_path / "vlm")
    original = load_file(tmp_path / "llm" / "model.safetensors")
    (tmp_path / "llm" / "model.safetensors").unlink()  # as the early vicuna-7b-v1.5 revisions
    torch.save(original, tmp_path / "llm" / "pytorch_model.bin")
    merge_llm(tmp_path / "vlm", tmp_path / "llm", 1.0, tmp_path / "m1")
    merged = load_file(tmp_path / "m1" / "model.safetensors")
    key = next(k for k in merged if re.search(r"layers\.0\.mlp\.down_proj\.weight$", k))
    assert torch.equal(merged[key], original["model.layers.0.mlp.down_proj.weight"])
