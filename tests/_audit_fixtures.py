"""Tiny random checkpoints of ten vision-language model families, in their hub layout.

Nothing can be downloaded here, so each family is a random instance built from its transformers
config (language model of width 64 and 2 layers, vision tower of width 32, images of 32-64
pixels), saved with ``save_pretrained`` beside a word-level tokenizer that has the family's
special tokens, the family's chat template (compact, with the real one's turn markers and
image placement) and a processor_config.json that declares the official processor class, as
the real repositories do. Loading goes through ``AutoModelForImageTextToText`` and
``ifl.models.families.load_processor`` like any hub checkpoint; where the official processor
needs torchvision (video processors, Pixtral) the saved files are the official layout and the
stand-in processors of :mod:`ifl.models.processors` read them.

:func:`build` builds one family, :func:`build_all` all of them under hub-like ids
``tiny-random/<family>`` (staged, with the download marker), in a few seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import transformers as T
from _paper_fixtures import word_tokenizer

from ifl.download import mark_staged, model_asset
from ifl.models.processors import PixtralProcessorPil, without_video

OWNER = "tiny-random"
HIDDEN, LAYERS, HEAD_DIM = 64, 2, 16
QWEN_SPECIALS = ["<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>",
                 "<|im_start|>", "<|im_end|>"]  # fmt: skip
ROW_COL = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]


def _content(image: str, sep: str = "") -> str:
    """Jinja for a message's content: a string as it is, else its parts in order, the image
    part rendered as ``image`` (the family's placeholder)."""
    return (
        "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
        "{% for c in m['content'] %}{% if c['type'] == 'image' %}" + image + sep + "{% else %}"
        "{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    )


# Each family's chat template: its turn markers and where it puts the image.
TEMPLATES = {
    "llava": "{% for m in messages %}{{ m['role'].upper() }}: "
    + _content("<image>", "\n")
    + " {% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}",
    "llava_next": "{{ bos_token }}{% for m in messages %}[INST] "
    + _content("<image>", "\n")
    + " [/INST]{% endfor %}",
    "llava_onevision": "{% for m in messages %}<|im_start|>{{ m['role'] }} "
    + _content("<image>", "\n")
    + "<|im_end|>{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    "qwen2_5_vl": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    + _content("<|vision_start|><|image_pad|><|vision_end|>")
    + "<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    "qwen3_vl": "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    + _content("<|vision_start|><|image_pad|><|vision_end|>")
    + "<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
    "gemma3": "{{ bos_token }}{% for m in messages %}<start_of_turn>"
    "{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    + _content("<start_of_image>")
    + "<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}",
    "idefics3": "<|im_start|>{% for m in messages %}{{ m['role'] | capitalize }}:"
    + _content("<image>")
    + "<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}",
    "mistral3": "{{ bos_token }}{% for m in messages %}[INST]"
    + _content("[IMG]")
    + "[/INST]{% endfor %}",
    "internvl": "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    + _content("<IMG_CONTEXT>", "\n")
    + "<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
}
TEMPLATES["smolvlm"] = TEMPLATES["idefics3"]


def tokenizer(specials: Sequence[str], named: dict[str, str] | None = None):
    """The stand-ins' word-level tokenizer with the family's special tokens; ``named`` are the
    special tokens a processor reads by attribute (e.g. Gemma 3's ``boi_token``)."""
    tok = word_tokenizer(list(specials))
    if named:
        tok = T.PreTrainedTokenizerFast(
            tokenizer_object=tok.backend_tokenizer, bos_token="<s>", eos_token="</s>",
            unk_token="<unk>", pad_token="<pad>", extra_special_tokens=named,
        )  # fmt: skip
        tok.add_special_tokens({"additional_special_tokens": list(specials)})
    tok.padding_side = "left"
    return tok


def text_config(tok, model_type: str, **extra) -> dict:
    """A 2-layer decoder of width 64 over ``tok``'s vocabulary."""
    named = {"model_type": model_type} if model_type else {}
    return {
        **named,
        "vocab_size": len(tok),
        "hidden_size": HIDDEN,
        "intermediate_size": 2 * HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HIDDEN // HEAD_DIM,
        "num_key_value_heads": HIDDEN // HEAD_DIM,
        "head_dim": HEAD_DIM,
        "max_position_embeddings": 1024,
        "pad_token_id": tok.pad_token_id,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        **extra,
    }


def vision_config(model_type: str, **extra) -> dict:
    """A 2-layer vision tower of width 32 on 32-pixel images in 8-pixel patches."""
    base = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "image_size": 32, "patch_size": 8}  # fmt: skip
    return {"model_type": model_type, **base, **extra} if model_type else {**base, **extra}


def _ids(tok, *tokens: str) -> list[int]:
    return [tok.convert_tokens_to_ids(t) for t in tokens]


# --- one builder per family: (model, processor, official processor class name) ----------------
def _llava():
    tok = tokenizer(["<image>"])
    cfg = T.LlavaConfig(
        text_config=text_config(tok, "llama"), vision_config=vision_config("clip_vision_model"),
        image_token_index=_ids(tok, "<image>")[0], image_seq_length=16,
        vision_feature_layer=-2, vision_feature_select_strategy="default",
    )  # fmt: skip
    image = T.CLIPImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    proc = T.LlavaProcessor(
        image_processor=image, tokenizer=tok, patch_size=8, num_additional_image_tokens=1,
        vision_feature_select_strategy="default",
    )  # fmt: skip
    return T.LlavaForConditionalGeneration(cfg), proc, "LlavaProcessor"


ANYRES = [[32, 64], [64, 32], [64, 64]]


def _llava_next():
    tok = tokenizer(["<image>", "[INST]", "[/INST]"])
    cfg = T.LlavaNextConfig(
        text_config=text_config(tok, "mistral", sliding_window=None),
        vision_config=vision_config("clip_vision_model"), image_token_index=_ids(tok, "<image>")[0],
        image_grid_pinpoints=ANYRES, image_seq_length=16,
    )  # fmt: skip
    image = T.LlavaNextImageProcessorPil(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
        image_grid_pinpoints=ANYRES,
    )  # fmt: skip
    proc = T.LlavaNextProcessor(
        image_processor=image, tokenizer=tok, patch_size=8, num_additional_image_tokens=1,
        vision_feature_select_strategy="default",
    )  # fmt: skip
    return T.LlavaNextForConditionalGeneration(cfg), proc, "LlavaNextProcessor"


def _llava_onevision():
    tok = tokenizer(["<image>", "<video>", "<|im_start|>", "<|im_end|>"])
    grid = [[32, 32], *ANYRES]
    image_id, video_id = _ids(tok, "<image>", "<video>")
    cfg = T.LlavaOnevisionConfig(
        text_config=text_config(tok, "qwen2"), vision_config=vision_config("siglip_vision_model"),
        image_token_index=image_id, video_token_index=video_id, image_grid_pinpoints=grid,
        vision_feature_select_strategy="full", vision_feature_layer=-1,
    )  # fmt: skip
    image = T.LlavaOnevisionImageProcessorPil(
        size={"height": 32, "width": 32}, image_grid_pinpoints=grid
    )
    proc = without_video(T.LlavaOnevisionProcessor)(
        image_processor=image, tokenizer=tok, num_image_tokens=16,
        vision_feature_select_strategy="full",
    )  # fmt: skip
    return T.LlavaOnevisionForConditionalGeneration(cfg), proc, "LlavaOnevisionProcessor"


def _qwen(version: str):
    tok = tokenizer(QWEN_SPECIALS)
    image_id, video_id, start, end = _ids(tok, *QWEN_SPECIALS[:4])
    patch = 14 if version == "2.5" else 16
    # multimodal rotary sections sum to head_dim / 2
    rope = {"rope_type": "default", "mrope_section": [2, 3, 3]}
    vision = {"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
              "out_hidden_size": HIDDEN, "patch_size": patch}  # fmt: skip
    if version == "2.5":
        Config, Model, Processor = T.Qwen2_5_VLConfig, T.Qwen2_5_VLForConditionalGeneration, T.Qwen2_5_VLProcessor  # fmt: skip
        vision |= {"fullatt_block_indexes": [0], "window_size": 56}
    else:
        Config, Model, Processor = T.Qwen3VLConfig, T.Qwen3VLForConditionalGeneration, T.Qwen3VLProcessor  # fmt: skip
        rope["mrope_interleaved"] = True
        vision |= {"depth": 2, "deepstack_visual_indexes": [0], "num_position_embeddings": 16}
    cfg = Config(
        text_config=text_config(tok, "", rope_parameters=rope), vision_config=vision,
        image_token_id=image_id, video_token_id=video_id, vision_start_token_id=start,
        vision_end_token_id=end,
    )  # fmt: skip
    step = 2 * patch  # a 2x2 merge of patches per image token
    image = T.Qwen2VLImageProcessorPil(
        patch_size=patch, min_pixels=step * step * 4, max_pixels=step * step * 16
    )
    proc = without_video(Processor)(image_processor=image, tokenizer=tok)
    return Model(cfg), proc, Processor.__name__


def _gemma3():
    specials = ["<start_of_image>", "<end_of_image>", "<image_soft_token>", "<start_of_turn>",
                "<end_of_turn>"]  # fmt: skip
    tok = tokenizer(specials, {"boi_token": specials[0], "eoi_token": specials[1],
                               "image_token": specials[2]})  # fmt: skip
    boi, eoi, soft, _, end = _ids(tok, *specials)
    cfg = T.Gemma3Config(
        text_config=text_config(tok, "gemma3_text", query_pre_attn_scalar=HEAD_DIM, sliding_window=64),
        vision_config=vision_config("siglip_vision_model"), mm_tokens_per_image=4,
        boi_token_index=boi, eoi_token_index=eoi, image_token_index=soft,
    )  # fmt: skip
    model = T.Gemma3ForConditionalGeneration(cfg)
    with torch.no_grad():  # initialised to zeros, which would make every image alike
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(0, 0.2)
    # the instruct checkpoints end a turn with <end_of_turn>, listed beside EOS
    model.generation_config.eos_token_id = [tok.eos_token_id, end]
    image = T.Gemma3ImageProcessorPil(size={"height": 32, "width": 32})
    proc = T.Gemma3Processor(image_processor=image, tokenizer=tok, image_seq_length=4)
    return model, proc, "Gemma3Processor"


def _idefics3(smol: bool = False):
    specials = ["<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>",
                "<|im_start|>", *ROW_COL, *(["<video>"] if smol else [])]  # fmt: skip
    tok = tokenizer(specials)
    Config, Model = (
        (T.SmolVLMConfig, T.SmolVLMForConditionalGeneration)
        if smol
        else (T.Idefics3Config, T.Idefics3ForConditionalGeneration)
    )
    cfg = Config(
        text_config=text_config(tok, "llama"), vision_config=vision_config(""),
        image_token_id=_ids(tok, "<image>")[0], scale_factor=2,
    )  # fmt: skip
    Image = T.SmolVLMImageProcessorPil if smol else T.Idefics3ImageProcessorPil
    image = Image(size={"longest_edge": 64}, max_image_size={"longest_edge": 32})
    if smol:
        proc = without_video(T.SmolVLMProcessor)(
            image_processor=image, tokenizer=tok, video_processor=None, image_seq_len=4
        )
        return Model(cfg), proc, "SmolVLMProcessor"
    proc = T.Idefics3Processor(image_processor=image, tokenizer=tok, image_seq_len=4)
    return Model(cfg), proc, "Idefics3Processor"


def _mistral3():
    tok = tokenizer(["[IMG]", "[IMG_BREAK]", "[IMG_END]", "[INST]", "[/INST]"])
    cfg = T.Mistral3Config(
        text_config=text_config(tok, "mistral", sliding_window=None),
        vision_config=vision_config("pixtral", image_size=64, head_dim=16),
        image_token_index=_ids(tok, "[IMG]")[0], spatial_merge_size=2, vision_feature_layer=-1,
        tie_word_embeddings=False,
    )  # fmt: skip
    image = T.PixtralImageProcessorPil(size={"longest_edge": 64}, patch_size=8)
    proc = PixtralProcessorPil(
        image_processor=image, tokenizer=tok, patch_size=8, spatial_merge_size=2
    )
    return T.Mistral3ForConditionalGeneration(cfg), proc, "PixtralProcessor"


def _internvl():
    specials = ["<img>", "</img>", "<IMG_CONTEXT>", "<video>", "<|im_start|>", "<|im_end|>"]
    tok = tokenizer(specials, {"start_image_token": "<img>", "end_image_token": "</img>",
                               "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"})  # fmt: skip
    cfg = T.InternVLConfig(
        text_config=text_config(tok, "qwen2"),
        vision_config=vision_config("", image_size=[32, 32], patch_size=[8, 8]),
        image_token_id=_ids(tok, "<IMG_CONTEXT>")[0], image_seq_length=4, downsample_ratio=0.5,
        tie_word_embeddings=False,
    )  # fmt: skip
    image = T.GotOcr2ImageProcessorPil(
        size={"height": 32, "width": 32}, crop_to_patches=True, min_patches=1, max_patches=4
    )
    proc = without_video(T.InternVLProcessor)(
        image_processor=image, tokenizer=tok, image_seq_length=4
    )
    return T.InternVLForConditionalGeneration(cfg), proc, "InternVLProcessor"


BUILDERS: dict[str, Callable[[], tuple]] = {
    "llava": _llava,
    "llava_next": _llava_next,
    "llava_onevision": _llava_onevision,
    "qwen2_5_vl": lambda: _qwen("2.5"),
    "qwen3_vl": lambda: _qwen("3"),
    "gemma3": _gemma3,
    "idefics3": _idefics3,
    "smolvlm": lambda: _idefics3(smol=True),
    "mistral3": _mistral3,
    "internvl": _internvl,
}


def build(family: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Save a random tiny checkpoint of ``family`` (a ``model_type``) to ``out_dir``."""
    out_dir = Path(out_dir)
    torch.manual_seed(seed)
    model, proc, official = BUILDERS[family]()
    tok = proc.tokenizer
    for key in ("pad_token_id", "bos_token_id"):
        setattr(model.generation_config, key, getattr(tok, key))
    if model.generation_config.eos_token_id is None:
        model.generation_config.eos_token_id = tok.eos_token_id
    proc.chat_template = TEMPLATES[family]
    model.eval().save_pretrained(out_dir)
    proc.save_pretrained(out_dir)
    # the official class, as the hub repository declares it
    for name in ("processor_config.json", "preprocessor_config.json"):
        path = out_dir / name
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            data["processor_class"] = official
            path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return out_dir


def build_all(root: str | Path, families: Sequence[str] = tuple(BUILDERS)) -> dict[str, str]:
    """Every family under ``<root>/models/tiny-random/<family>``, staged as the hub repository
    ``tiny-random/<family>`` (the download marker written). Returns family -> hub id."""
    out = {}
    for i, family in enumerate(families):
        hub_id = f"{OWNER}/{family}"
        asset = model_asset(hub_id)
        build(family, Path(root) / "models" / hub_id, seed=i)
        mark_staged(asset, root)
        out[family] = hub_id
    return out
