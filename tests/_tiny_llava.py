"""Tiny random LLaVA models and causal LMs for tests and benchmarks, built fully offline.

The models have the structure of the real checkpoints (``LlavaForConditionalGeneration`` with a
CLIP vision tower, a Llama/Mistral/Gemma language model, a fast tokenizer and a
``LlavaProcessor``) but random weights and a small word-level vocabulary, so every code path
that touches layers, hooks, the processor or ``generate()`` can be exercised in milliseconds.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    CLIPVisionConfig,
    GemmaConfig,
    GemmaForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
)

try:  # transformers 5 without torchvision: the PIL backend, imported directly to stay quiet
    from transformers import CLIPImageProcessorPil as _ClipImageProcessor
except ImportError:  # pragma: no cover - older transformers
    from transformers import CLIPImageProcessor as _ClipImageProcessor

SPECIAL_TOKENS = ["<pad>", "<unk>", "<s>", "</s>", "<image>"]
PROMPT_TEMPLATE = "USER: <image>\n{question} ASSISTANT:"
IMAGE_SIZE = 32
PATCH_SIZE = 8
N_IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2  # the CLS token is dropped ("default" strategy)
TEXT_MODELS = ("llama", "mistral", "gemma")

_WORD_TEXT = (
    "USER ASSISTANT : . , ? ! describe this image in detail what colour is the a an of on and "
    "how many are there shape red green blue yellow black white circle square triangle star "
    "left right top bottom big small one two three four yes no it object objects picture "
    "beschreibe dieses bild im detail welche farbe hat das rot grün blau gelb kreis quadrat "
    "ja nein eins zwei drei vier links rechts oben unten groß klein "
    "décris cette image en détail quelle couleur rouge vert bleu oui non "
    "describe esta imagen en detalle qué color rojo verde azul sí "
    "描述 这张 图片 的 细节 什么 颜色 红色 绿色 蓝色 是 不 一 二 三 四"
)
_WORDS = _WORD_TEXT.split()
_N_FILLER = 300 - len(SPECIAL_TOKENS) - len(set(_WORDS))


def _vocabulary() -> dict[str, int]:
    """Specials first (pad=0, unk=1, bos=2, eos=3, image=4), then words, then filler words."""
    words = list(dict.fromkeys(_WORDS)) + [f"w{i}" for i in range(_N_FILLER)]
    return {tok: i for i, tok in enumerate(SPECIAL_TOKENS + words)}


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level fast tokenizer (~300 words) that prepends BOS and pads on the left."""
    vocab = _vocabulary()
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        padding_side="left",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    return tokenizer


def build_tiny_processor(tokenizer: PreTrainedTokenizerFast | None = None) -> LlavaProcessor:
    """A LlavaProcessor for 32x32 images in 8x8 patches: "<image>" expands to 16 tokens."""
    tokenizer = tokenizer or build_tiny_tokenizer()
    image_processor = _ClipImageProcessor(
        do_resize=True,
        size={"shortest_edge": IMAGE_SIZE},
        do_center_crop=True,
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        image_token="<image>",
    )


def _text_config(
    kind: str, vocab_size: int, hidden: int, n_layers: int, n_heads: int
) -> LlamaConfig | MistralConfig | GemmaConfig:
    common = {
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": n_layers,
        "num_attention_heads": n_heads,
        "num_key_value_heads": n_heads,
        "max_position_embeddings": 256,
        "pad_token_id": 0,
        "bos_token_id": 2,
        "eos_token_id": 3,
    }
    if kind == "llama":
        return LlamaConfig(**common)
    if kind == "mistral":
        return MistralConfig(**common, sliding_window=None)
    if kind == "gemma":
        return GemmaConfig(**common, head_dim=hidden // n_heads)
    raise ValueError(f"text_model must be one of {TEXT_MODELS}, got {kind!r}")


def build_tiny_llava(
    text_model: str = "llama",
    seed: int = 0,
    *,
    hidden: int = 64,
    n_layers: int = 4,
    n_heads: int = 4,
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """A random tiny LLaVA (CLIP tower + Llama/Mistral/Gemma LM) and its processor, in eval mode."""
    processor = build_tiny_processor()
    tokenizer = processor.tokenizer
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
    )
    text = _text_config(text_model, len(tokenizer), hidden, n_layers, n_heads)
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    _set_generation_ids(model, tokenizer)
    return model, processor


def build_tiny_causal_lm(
    kind: str = "llama", seed: int = 0, *, hidden: int = 64, n_layers: int = 4, n_heads: int = 4
) -> tuple[LlamaForCausalLM | MistralForCausalLM | GemmaForCausalLM, PreTrainedTokenizerFast]:
    """A random tiny text-only causal LM of the given family and the tiny tokenizer."""
    tokenizer = build_tiny_tokenizer()
    config = _text_config(kind, len(tokenizer), hidden, n_layers, n_heads)
    cls = {"llama": LlamaForCausalLM, "mistral": MistralForCausalLM, "gemma": GemmaForCausalLM}
    torch.manual_seed(seed)
    model = cls[kind](config).eval()
    _set_generation_ids(model, tokenizer)
    return model, tokenizer


def _set_generation_ids(model: torch.nn.Module, tokenizer: PreTrainedTokenizerFast) -> None:
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id


def random_images(n: int, seed: int = 0, size: int = 40) -> list[Image.Image]:
    """``n`` random RGB images (larger than 32 px so resize and crop are exercised)."""
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)
    ]


def prompts(questions: list[str]) -> list[str]:
    """LLaVA-1.5 prompts with one image each."""
    return [PROMPT_TEMPLATE.format(question=q) for q in questions]


# Questions of different lengths, so that a batch is genuinely left-padded.
QUESTIONS = [
    "what colour is the circle ?",
    "describe this image in detail .",
    "how many objects are there in the picture on the left ?",
    "ja",
]
