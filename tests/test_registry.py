"""Tests for ifl.models.registry on tiny random stand-ins of the paper's checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _paper_fixtures import N_IMAGE_TOKENS, build_resources, build_vlm
from PIL import Image
from transformers import AutoModelForCausalLM, AutoProcessor, CLIPModel, Dinov2Model

from ifl.download import local_dir, model_asset
from ifl.models.families import fix_processor, load_kwargs
from ifl.models.prompts import prompt as organism_prompt
from ifl.models.registry import (
    GEMMA_TEMPLATE,
    LLAVA_TEMPLATE,
    REGISTRY,
    ModelEntry,
    build_prompt,
    compose_llava,
    entry_from_config,
    get,
    load_pretrained,
    make_prompter,
    prompt_source,
    resolve,
)

torch.set_num_threads(1)
PAPER_VLMS = {
    "llava-1.5-7b": "llava-hf/llava-1.5-7b-hf",
    "llava-1.5-13b": "llava-hf/llava-1.5-13b-hf",
    "bakllava": "llava-hf/bakLlava-v1-hf",
    "llava-gemma-2b": "Intel/llava-gemma-2b",
}
QUESTIONS = ["what colour is the circle ?", "how many are there in the picture ?"]


@pytest.fixture(scope="module")
def resources(tmp_path_factory):
    """Every paper-preset asset as a staged tiny stand-in, plus a VLM without a chat template."""
    root = tmp_path_factory.mktemp("resources")
    build_resources(root)
    build_vlm(root / "local" / "no-template", "llama", chat=None, seed=6)
    return root


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (40, 52, 3), dtype=np.uint8)) for _ in range(n)]


def test_registry_holds_the_papers_checkpoints():
    for name, hub_id in PAPER_VLMS.items():
        entry = get(name)
        assert entry.hub_id == hub_id and entry.kind == "vlm"
        assert get(hub_id) is entry
    assert {get(n).text_model for n in PAPER_VLMS} == {"llama", "mistral", "gemma"}
    assert get("nllb-1.3b").hub_id == "facebook/nllb-200-distilled-1.3B"
    assert get("dinov2-large").vision_model == "dinov2"
    assert not any(e.trust_remote_code for e in REGISTRY.values())


def test_registry_errors_are_one_line():
    with pytest.raises(ValueError, match=r"unknown model 'llava-2'; registered: llava-1.5-7b"):
        get("llava-2")
    with pytest.raises(ValueError, match="model kind 'vlmm'"):
        ModelEntry("x", "a/b", "vlmm")
    with pytest.raises(ValueError, match="no \\{content\\} slot"):
        ModelEntry("x", "a/b", "vlm", template="USER: {question}")


def test_local_dir_matches_the_download_layout(tmp_path):
    for entry in REGISTRY.values():
        assert entry.local_dir(tmp_path) == local_dir(model_asset(entry.hub_id), tmp_path)


def test_load_kwargs_bf16_and_accelerate_on_cuda_fp32_on_cpu():
    cpu = load_kwargs("cpu")
    assert cpu == {"dtype": torch.float32, "trust_remote_code": False}
    cuda = load_kwargs("cuda")
    assert cuda["dtype"] == torch.bfloat16 and cuda["device_map"] == "auto"
    assert load_kwargs("cuda:1")["device_map"] == {"": 1}
    assert load_kwargs("cuda", torch.float16)["dtype"] == torch.float16
    assert load_kwargs("cpu", trust_remote_code=True)["trust_remote_code"] is True


@pytest.mark.parametrize("name", list(PAPER_VLMS))
def test_load_pretrained_generates_a_left_padded_batch(resources, name):
    model, processor = load_pretrained(name, "cpu", resources=resources)
    entry = get(name)
    assert model.dtype == torch.float32 and not model.training
    assert processor.tokenizer.padding_side == "left"
    assert model.config.text_config.model_type == entry.text_model
    prompts = [build_prompt(entry, processor, q, image=True) for q in QUESTIONS]
    inputs = processor(text=prompts, images=_images(2), return_tensors="pt", padding=True)
    assert (inputs["input_ids"] == model.config.image_token_id).sum(dim=1).tolist() == [
        N_IMAGE_TOKENS
    ] * 2
    assert inputs["attention_mask"][0, 0] == 0  # the shorter prompt is padded on the left
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert out.shape == (2, inputs["input_ids"].shape[1] + 3)


def test_prompts_follow_each_checkpoints_template(resources):
    q, desc = "what colour ?", "a red circle"
    llava = load_pretrained("llava-1.5-7b", "cpu", resources=resources)[1]
    entry = get("llava-1.5-7b")
    assert prompt_source(entry, llava) == "processor"
    # the shipped template renders exactly the organism's LLaVA-1.5 format
    assert build_prompt(entry, llava, q, image=True) == organism_prompt(q, image=True)
    assert build_prompt(entry, llava, q, image=False, description=desc) == organism_prompt(
        q, image=False, description=desc
    )
    gemma = load_pretrained("llava-gemma-2b", "cpu", resources=resources)[1]
    g = get("llava-gemma-2b")
    assert prompt_source(g, gemma) == "tokenizer"
    rendered = build_prompt(g, gemma, q, image=True)
    # Gemma's template renders <s> itself; the tokenizer adds it too, so it is dropped once
    assert rendered == GEMMA_TEMPLATE.format(content=f"<image>\n{q}")
    ids = gemma.tokenizer(rendered)["input_ids"]
    assert ids.count(gemma.tokenizer.bos_token_id) == 1


def test_fallback_template_when_no_chat_template_ships(resources):
    entry, path = resolve(resources / "local" / "no-template")
    _, processor = load_pretrained(path, "cpu")
    assert prompt_source(entry, processor) == "fallback"
    assert entry.template == LLAVA_TEMPLATE
    assert build_prompt(entry, processor, "q ?", image=True) == "USER: <image>\nq ? ASSISTANT:"
    assert (
        build_prompt(entry, processor, "q ?", image=False, description="d")
        == "USER: d\nq ? ASSISTANT:"
    )
    assert build_prompt(entry, processor, "q ?", image=False) == "USER: q ? ASSISTANT:"


def test_llava_gemma_legacy_processor_is_repaired(resources):
    path = get("llava-gemma-2b").local_dir(resources)
    raw = AutoProcessor.from_pretrained(path)
    assert raw.patch_size is None and raw.num_additional_image_tokens == 0
    prompt = GEMMA_TEMPLATE.format(content="<image>\nwhat ?")
    with pytest.raises(TypeError):  # None // int: the released processor cannot expand <image>
        raw(text=[prompt], images=_images(1), return_tensors="pt")
    model, fixed = load_pretrained("llava-gemma-2b", "cpu", resources=resources)
    assert fixed.patch_size == 8 and fixed.num_additional_image_tokens == 1
    assert fixed.vision_feature_select_strategy == "default"
    inputs = fixed(text=[prompt], images=_images(1), return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[1] == inputs["input_ids"].shape[1] and torch.isfinite(logits).all()


def test_fix_processor_rejects_a_mismatched_image_token(resources):
    model, processor = load_pretrained("llava-1.5-7b", "cpu", resources=resources)
    model.config.image_token_id = model.config.image_token_id + 1
    with pytest.raises(ValueError, match="differs from the model's image_token_id"):
        fix_processor(processor, model.config)


def test_accelerate_device_map_gives_the_same_model(resources):
    plain, processor = load_pretrained("bakllava", "cpu", resources=resources)
    mapped, _ = load_pretrained("bakllava", "cpu", resources=resources, device_map="auto")
    prompt = build_prompt(get("bakllava"), processor, "what ?", image=True)
    inputs = processor(text=[prompt], images=_images(1), return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(plain(**inputs).logits, mapped(**inputs).logits)
    assert mapped.device.type == "cpu"


def test_unstaged_or_wrong_kind_is_a_clear_error(resources, tmp_path):
    with pytest.raises(ValueError, match="'llava-hf/llava-1.5-13b-hf' is not staged"):
        load_pretrained("llava-1.5-13b", "cpu", resources=tmp_path)
    with pytest.raises(ValueError, match="load_pretrained loads VLMs; 'vicuna-7b' is a llm"):
        load_pretrained("vicuna-7b", "cpu", resources=resources)
    with pytest.raises(ValueError, match="no config.json"):
        entry_from_config(tmp_path)


def test_llava_with_a_dinov2_tower_drops_the_cls_token(resources):
    model, processor = load_pretrained(resources / "models" / "local" / "llava-dinov2", "cpu")
    assert type(model.model.vision_tower) is Dinov2Model
    pixels = processor.image_processor(_images(1), return_tensors="pt")["pixel_values"]
    features = {
        strategy: model.model.get_image_features(
            pixel_values=pixels, vision_feature_layer=-2, vision_feature_select_strategy=strategy
        )
        for strategy in ("default", "full")
    }
    default, full = features["default"], features["full"]
    assert default.pooler_output[0].shape[0] == N_IMAGE_TOKENS  # patches only
    assert full.pooler_output[0].shape[0] == N_IMAGE_TOKENS + 1  # CLS + patches
    assert torch.equal(default.pooler_output[0], full.pooler_output[0][1:])
    entry, _ = resolve(resources / "models" / "local" / "llava-dinov2")
    prompt = build_prompt(entry, processor, "what ?", image=True)
    inputs = processor(text=[prompt], images=_images(1), return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=2, do_sample=False)
    assert out.shape[1] == inputs["input_ids"].shape[1] + 2


@pytest.mark.parametrize("vision", ["clip-vit-l-336", "dinov2-large"])
def test_compose_llava_keeps_the_pretrained_parts(resources, tmp_path, vision):
    llm_dir = get("vicuna-7b").local_dir(resources)
    vision_dir = get(vision).local_dir(resources)
    model, processor = compose_llava(llm_dir, vision_dir, seed=0)
    tok = processor.tokenizer
    assert "<image>" in tok.get_vocab() and tok.pad_token is not None
    llm = AutoModelForCausalLM.from_pretrained(llm_dir).eval()
    ids = tok(["what colour is the circle ?"], return_tensors="pt")
    with torch.no_grad():  # text-only logits of the original vocabulary are the LLM's own
        composed = model(**ids).logits[..., : llm.config.vocab_size]
        assert torch.allclose(composed, llm(**ids).logits, atol=1e-6)
    if vision.startswith("clip"):
        source = CLIPModel.from_pretrained(vision_dir).vision_model.state_dict()
    else:
        source = Dinov2Model.from_pretrained(vision_dir).state_dict()
    tower = {
        k.removeprefix("vision_model."): v for k, v in model.model.vision_tower.state_dict().items()
    }
    assert tower.keys() == source.keys() and all(torch.equal(tower[k], source[k]) for k in source)
    assert model.config.vision_feature_layer == -2
    assert model.config.vision_feature_select_strategy == "default"
    inputs = processor(
        text=["USER: <image>\nwhat ? ASSISTANT:"], images=_images(1), return_tensors="pt"
    )
    assert (inputs["input_ids"] == model.config.image_token_id).sum() == N_IMAGE_TOKENS
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    model.save_pretrained(tmp_path / "vlm")
    processor.save_pretrained(tmp_path / "vlm")
    reloaded, reprocessor = load_pretrained(tmp_path / "vlm", "cpu")
    again = reprocessor(
        text=["USER: <image>\nwhat ? ASSISTANT:"], images=_images(1), return_tensors="pt"
    )
    assert torch.equal(reloaded.generate(**again, max_new_tokens=3, do_sample=False), out)


def test_compose_llava_projector_depends_on_the_seed(resources):
    llm_dir, vision_dir = (
        get("vicuna-7b").local_dir(resources),
        get("dinov2-large").local_dir(resources),
    )
    a, _ = compose_llava(llm_dir, vision_dir, seed=0)
    b, _ = compose_llava(llm_dir, vision_dir, seed=0)
    c, _ = compose_llava(llm_dir, vision_dir, seed=1)
    pa, pb, pc = (m.model.multi_modal_projector.linear_1.weight for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_paper_pieces_chain_end_to_end(resources, tmp_path):
    """Staged benchmarks -> NLLB-translated VisIT -> task table -> each released VLM answers
    in both conditions with its own prompt format -> GlotLID measures the replies."""
    import pandas as pd

    from ifl.data.loaders import TRANSLATED_COLUMNS, load_tasks, load_visit
    from ifl.download import DATASET_ASSETS, GLOTLID
    from ifl.generate import queries, run
    from ifl.lid import LanguageIdentifier, measure
    from ifl.translate_nllb import load_mapping, load_translator, segment_table, translate_shard

    keys = {"MaXM": "maxm", "LLaVA-W": "llava-w", "VisIT": "visit", "MultiQ": "multiq"}
    roots = {bench: local_dir(DATASET_ASSETS[key], resources) for bench, key in keys.items()}
    visit = load_visit(roots["VisIT"], tmp_path / "img")
    segments = segment_table(visit[c] for c in TRANSLATED_COLUMNS)
    translator, tokenizer = load_translator(get("nllb-1.3b").local_dir(resources), "cpu")
    paths = [tmp_path / f"de-{i}.parquet" for i in range(2)]
    for i, path in enumerate(paths):
        translate_shard(segments, path, translator, tokenizer, tgt="de", shard_index=i, n_shards=2)
    mapping = load_mapping(paths)
    assert set(mapping) == set(segments["source"])
    tasks = load_tasks(roots, ["en", "de"], tmp_path / "img", visit_translations={"de": mapping})
    assert set(tasks["benchmark"]) == {"MaXM", "LLaVA-W", "VisIT", "MultiQ"}
    tasks = tasks[tasks["benchmark"] != "MultiQ"].groupby(["benchmark", "language"]).head(1)
    lid = LanguageIdentifier(local_dir(GLOTLID, resources) / "model_v3.bin", kind="glotlid")
    tables = []
    for name in PAPER_VLMS:
        model, processor = load_pretrained(name, "cpu", resources=resources)
        prompter = make_prompter(get(name), processor)
        q = queries(tasks)  # one row per task and condition, in task order
        rows = tasks.loc[tasks.index.repeat(2)].itertuples()
        conditions = q["condition"]
        q["prompt"] = [
            prompter(t.question, c == "image", t.description)
            for t, c in zip(rows, conditions, strict=True)
        ]
        out = tmp_path / f"{name}.parquet"
        tables.append(
            run(model, processor, q, out, batch_size=4, max_new_tokens=3, model_name=name)
        )
    generations = pd.concat(tables, ignore_index=True)
    assert len(generations) == len(PAPER_VLMS) * len(tasks) * 2
    assert set(generations["condition"]) == {"image", "text"}
    gemma = generations[
        (generations["model"] == "llava-gemma-2b") & (generations["condition"] == "image")
    ]
    assert gemma["prompt"].str.startswith("<start_of_turn>user\n<image>\n").all()
    measured = measure(generations, lid)
    assert set(measured["fidelity_proxy"]) <= {0, 1} and measured["lid_label"].notna().all()
