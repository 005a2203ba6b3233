"""Tests for ifl.data.loaders and ifl.data.llava_data on tiny datasets in the hub schemas."""

from __future__ import annotations

import json
import sys
import types

import pandas as pd
import pytest
from _paper_fixtures import (
    PALO_FOLDERS,
    VISIT_ROWS,
    build_llava_instruct,
    build_llava_pretrain,
    build_maxm,
    build_multiq,
    build_palo,
    build_visit,
)
from PIL import Image

from ifl import LANGUAGES
from ifl.data.llava_data import (
    read_llava_json,
    translate_conversations,
    turns,
    validate_example,
    write_llava_json,
)
from ifl.data.loaders import (
    COLUMNS,
    VISIT_LANGUAGES,
    iso639_1,
    load_llava_w,
    load_maxm,
    load_multiq,
    load_tasks,
    load_visit,
    placeholder_image,
    save_image,
    translate_visit,
    validate_tasks,
)
from ifl.io import write_parquet
from ifl.translate_nllb import segment_table
from ifl.world.tasks import COLUMNS as ORGANISM_COLUMNS


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    return {
        "MaXM": build_maxm(root / "maxm"),
        "LLaVA-W": build_palo(root / "palo"),
        "VisIT": build_visit(root / "visit"),
        "MultiQ": build_multiq(root / "multiq"),
    }


def _fake_translations(texts, lang):
    """A deterministic 'translation': the segment tagged with the language."""
    return {s: f"[{lang}] {s}" for s in segment_table(texts)["source"]}


@pytest.mark.parametrize(
    ("code", "iso"),
    [("iw", "he"), ("he", "he"), ("zh", "zh"), ("zh-CN", "zh"), ("zh_Hans", "zh"), ("cmn", "zh"),
     ("zh-TW", None), ("deu", "de"), ("es-MX", "es"), ("en", "en"), ("ee", None), ("", None), (None, None)],
)  # fmt: skip
def test_iso639_1(code, iso):
    assert iso639_1(code) == iso


def test_task_columns_are_the_organisms():
    assert COLUMNS == ORGANISM_COLUMNS


def test_maxm_maps_iw_to_hebrew_and_skips_yesno(data, tmp_path):
    tasks = load_maxm(data["MaXM"], ["he", "en", "de", "zh"], tmp_path / "img")
    assert sorted(set(tasks["language"])) == ["en", "he", "zh"]  # MaXM has no German
    assert len(tasks) == 3 * 3 and tasks["task_id"].is_unique
    he = tasks[tasks["language"] == "he"].iloc[0]
    assert he["question"] == "question 0 in iw?" and he["description"] == "caption 0 in iw"
    assert list(he["answers"]) == ["answer 0", "alt 0"] and he["reference"] == "answer 0"
    assert not tasks["task_id"].str.contains("yesno").any()
    assert (tasks["family"] == "short").all() and (tasks["benchmark"] == "MaXM").all()
    for path in tasks["image"]:
        with Image.open(path) as im:
            assert im.format == "PNG" and im.mode == "RGB" and im.size == (48, 40)


def test_palo_llava_bench(data, tmp_path):
    tasks = load_llava_w(data["LLaVA-W"], list(LANGUAGES), tmp_path / "img")
    assert sorted(set(tasks["language"])) == sorted(
        ["ar", "bn", "zh", "en", "fr", "hi", "ja", "ru", "es", "ur"]
    )
    assert len(tasks) == len(PALO_FOLDERS) * 4
    row = tasks[(tasks["language"] == "ur") & (tasks["task_id"] == "LLaVA-W-3-ur")].iloc[0]
    assert row["question"] == "urdu question 3" and row["reference"] == "urdu answer 3"
    assert row["description"] == "urdu caption of 002.jpg" and row["kind"] == "conv"
    assert tasks["image"].nunique() == 2  # one PNG per image, shared across languages
    with pytest.raises(ValueError, match="PALO LLaVA-Bench is not staged"):
        load_llava_w(tmp_path / "nowhere", ["en"], tmp_path / "img")


def test_visit_english_single_image_rows(data, tmp_path):
    tasks = load_visit(data["VisIT"], tmp_path / "img")
    assert len(tasks) == len(VISIT_ROWS)  # the multi-image row is dropped
    assert (tasks["language"] == "en").all() and (tasks["family"] == "instruct").all()
    assert tasks["question"].tolist() == [r[1] for r in VISIT_ROWS]
    assert tasks["description"].tolist() == [r[2] for r in VISIT_ROWS]
    assert tasks["kind"].tolist() == [r[0] for r in VISIT_ROWS]
    assert tasks["reference"].tolist() == [r[3] for r in VISIT_ROWS]


def test_visit_translation_into_the_nine_languages(data, tmp_path):
    en = load_visit(data["VisIT"], tmp_path / "img")
    texts = [*en["question"], *en["description"], *en["reference"]]
    mappings = {lang: _fake_translations(texts, lang) for lang in VISIT_LANGUAGES}
    tasks = translate_visit(en, mappings)
    assert len(tasks) == 10 * len(en) and tasks["task_id"].is_unique
    de = tasks[tasks["language"] == "de"].reset_index(drop=True)
    assert de["task_id"].tolist() == [t.replace("-en", "-de") for t in en["task_id"]]
    assert de.loc[0, "question"] == "[de] List the colours of the pencils."
    assert de.loc[0, "reference"] == "[de] Red, green and blue.\n[de] That is all."
    assert list(de.loc[0, "answers"]) == [de.loc[0, "reference"]]
    assert de["image"].tolist() == en["image"].tolist()
    with pytest.raises(ValueError, match="no translation for segment"):
        translate_visit(en, {"de": {}})


def test_multiq_languages(data):
    tasks = load_multiq(data["MultiQ"], ["en", "zh", "he", "hi", "th"], image=None)
    assert sorted(set(tasks["language"])) == ["en", "he", "hi", "zh"]
    assert len(tasks) == 4 * 3 and tasks["task_id"].is_unique
    zh = tasks[tasks["language"] == "zh"]
    assert zh["question"].str.startswith("zh-CN ").all()  # zh-TW is not simplified Chinese
    he = tasks[tasks["language"] == "he"]
    assert he["question"].str.startswith("he ").all()  # the exact code wins over iw
    assert (tasks["description"] == "").all() and tasks["image"].isna().all()
    assert all(len(a) == 0 for a in tasks["answers"]) and (tasks["reference"] == "").all()


def test_load_tasks_builds_the_contract(data, tmp_path):
    en = load_visit(data["VisIT"], tmp_path / "v")
    texts = [*en["question"], *en["description"], *en["reference"]]
    translations = {lang: _fake_translations(texts, lang) for lang in ("de", "zh", "ja")}
    image = placeholder_image(tmp_path / "grey.png", size=32)
    languages = ["en", "de", "zh", "he"]
    tasks = load_tasks(
        data, languages, tmp_path / "img", visit_translations=translations, multiq_image=image
    )
    assert list(tasks.columns) == list(COLUMNS)
    counts = tasks.groupby(["benchmark", "language"]).size().to_dict()
    assert counts[("MaXM", "he")] == 3 and ("MaXM", "de") not in counts
    assert counts[("VisIT", "de")] == counts[("VisIT", "en")] == 3 and ("VisIT", "ja") not in counts
    assert counts[("LLaVA-W", "zh")] == 4 and counts[("MultiQ", "he")] == 3
    assert (tasks.loc[tasks["benchmark"] == "MultiQ", "image"] == image).all()
    assert tasks["benchmark"].tolist() == sorted(
        tasks["benchmark"], key=["MaXM", "LLaVA-W", "VisIT", "MultiQ"].index
    )
    write_parquet(tasks, tmp_path / "tasks.parquet")
    back = pd.read_parquet(tmp_path / "tasks.parquet")
    assert [list(a) for a in back["answers"]] == [list(a) for a in tasks["answers"]]
    with pytest.raises(ValueError, match="unknown benchmark 'POPE'"):
        load_tasks({"POPE": tmp_path}, ["en"], tmp_path / "img")
    with pytest.raises(ValueError, match="unknown language 'xx'"):
        load_tasks(data, ["xx"], tmp_path / "img")


def test_validate_tasks_errors(data, tmp_path):
    tasks = load_multiq(data["MultiQ"], ["en"])
    with pytest.raises(ValueError, match="duplicate task_id 'MultiQ-gpt-1-en'"):
        validate_tasks(pd.concat([tasks, tasks.iloc[:1]]))
    with pytest.raises(ValueError, match="lacks column 'image'"):
        validate_tasks(tasks.drop(columns="image"))
    with pytest.raises(ValueError, match="unknown language 'xx'"):
        validate_tasks(tasks.assign(language="xx"))


def test_unstaged_data_needs_the_optional_datasets_package(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed
    with pytest.raises(
        ValueError, match="'caro-holt/MultiQ' is not staged and the optional `datasets`"
    ):
        load_multiq(tmp_path / "absent", ["en"])
    calls = []

    class _Split:
        def to_pandas(self):
            return pd.DataFrame(
                {"id": ["q1"], "language": ["de"], "prompt": ["Was ist das?"], "domain": ["art"]}
            )

    fake = types.ModuleType("datasets")
    fake.load_dataset = lambda repo, **kw: calls.append((repo, kw)) or _Split()
    monkeypatch.setitem(sys.modules, "datasets", fake)
    tasks = load_multiq(tmp_path / "absent", ["de"])
    assert calls == [("caro-holt/MultiQ", {"split": "train"})]
    assert tasks["task_id"].tolist() == ["MultiQ-q1-de"]


def test_save_image_accepts_hub_structs_and_rejects_garbage(tmp_path):
    buf = tmp_path / "x.png"
    Image.new("RGB", (5, 4), (1, 2, 3)).save(buf)
    path = save_image({"bytes": buf.read_bytes(), "path": "x.png"}, tmp_path / "out", "a/b c")
    assert path.endswith("a_b_c.png")
    with Image.open(path) as im:
        assert im.getpixel((0, 0)) == (1, 2, 3)
    with pytest.raises(ValueError, match="cannot read image 'bad'"):
        save_image(42, tmp_path / "out", "bad")


# --- LLaVA training data ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    root = tmp_path_factory.mktemp("llava")
    images = root / "images"
    return (
        build_llava_pretrain(root / "pretrain"),
        build_llava_instruct(root / "instruct", images),
        images,
    )


def test_read_pretrain_and_mix665k(llava):
    pretrain, instruct, images = llava
    pre = read_llava_json(pretrain / "blip_laion_cc_sbu_558k.json", pretrain, check_images=True)
    assert len(pre) == 4 and (pre["n_turns"] == 2).all()
    assert pre.loc[0, "image"] == str(pretrain / "00000" / "000000000.jpg")
    mix = read_llava_json(instruct / "llava_v1_5_mix665k.json", images, check_images=True)
    assert len(mix) == 5 and mix["image"].isna().sum() == 1  # the ShareGPT row is text only
    assert mix.loc[1, "image"].endswith("gqa/images/1.jpg")
    assert len(read_llava_json(instruct / "llava_v1_5_mix665k.json", images, limit=2)) == 2
    with pytest.raises(ValueError, match="not found"):
        read_llava_json(
            instruct / "llava_v1_5_mix665k.json", instruct / "elsewhere", check_images=True
        )


def test_validate_example_errors():
    ok = {
        "id": "a",
        "image": "x.jpg",
        "conversations": [
            {"from": "human", "value": "<image>\nHi"},
            {"from": "gpt", "value": "Yo"},
        ],
    }
    assert len(validate_example(ok)) == 2
    with pytest.raises(ValueError, match="example 'a' turn 1 is from 'human', expected 'gpt'"):
        validate_example({**ok, "conversations": [ok["conversations"][0]] * 2})
    with pytest.raises(ValueError, match="image field and <image> token disagree"):
        validate_example({"id": "a", "conversations": ok["conversations"]})
    with pytest.raises(ValueError, match="has no conversations list"):
        validate_example({"id": "a"})


def test_translated_conversations_round_trip(llava, tmp_path):
    _, instruct, images = llava
    mix = read_llava_json(instruct / "llava_v1_5_mix665k.json", images)
    table = turns(mix)
    assert len(table) == mix["n_turns"].sum() and set(table["role"]) == {"human", "gpt"}
    mapping = _fake_translations(table["text"], "zh")
    zh = translate_conversations(mix, mapping)
    first = zh.loc[1, "conversations"][0]["value"]
    assert first == "[zh] What is in the picture?\n<image>"
    assert (
        zh.loc[0, "conversations"][3]["value"]
        == "[zh] There are 2 objects.\n\n1. [zh] A circle\n2. [zh] A square"
    )
    out = tmp_path / "mix665k.zh.json"
    write_llava_json(zh, out, image_root=images)
    records = json.loads(out.read_text(encoding="utf-8"))
    assert records[0]["image"] == "coco/train2017/000000000000.jpg" and "image" not in records[-1]
    back = read_llava_json(out, images)
    assert back["conversations"].tolist() == zh["conversations"].tolist()
    assert back["image"].tolist() == mix["image"].tolist()
