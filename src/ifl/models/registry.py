"""Registry of the paper preset's models: hub ids, architectures, prompts, loading.

One :class:`ModelEntry` per checkpoint the paper uses: the four pretrained LLaVA VLMs evaluated
directly (LLaVA-1.5 7B/13B, BakLLaVA, LLaVA-Gemma 2B), the grid's LLM backbones and vision
encoders (Table 3), and the NLLB translator. Everything is loaded from files staged under
``resources/`` (see :mod:`ifl.download`); nothing here touches the network.

Prompts come from the chat template the checkpoint ships (the processor's for the llava-hf
checkpoints, the tokenizer's for Intel/llava-gemma-2b) and fall back to the entry's
``template`` when there is none. Processor quirks of checkpoints converted before transformers
expanded image tokens in the processor (no ``patch_size``, no ``num_additional_image_tokens``)
are repaired from the model config by :func:`ifl.models.families.fix_processor`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

IMAGE_TOKEN = "<image>"
# LLaVA-1.5's conversation format as the llava-hf chat templates render it (no system prompt).
LLAVA_TEMPLATE = "USER: {content} ASSISTANT:"
GEMMA_TEMPLATE = "<start_of_turn>user\n{content}<end_of_turn>\n<start_of_turn>model\n"
KINDS = ("vlm", "llm", "vision", "translation")
CHAT_SOURCES = ("processor", "tokenizer", "none")


@dataclass(frozen=True)
class ModelEntry:
    """One checkpoint of the paper preset.

    Attributes:
        name: Registry key (also the folder under ``resources/models``' owner directory).
        hub_id: Hugging Face repository id.
        kind: ``vlm`` (image-text-to-text), ``llm`` (causal LM backbone), ``vision`` (encoder)
            or ``translation`` (seq2seq).
        text_model: Architecture of the language model (``llama``, ``mistral``, ``gemma``).
        vision_model: Architecture of the vision tower (``clip``, ``dinov2``).
        params_b: Parameters in billions (sizes the cluster resources).
        template: Fallback prompt with a ``{content}`` slot, used when the checkpoint ships no
            chat template.
        chat_source: Where the shipped chat template lives (``processor``, ``tokenizer`` or
            ``none``).
        trust_remote_code: Whether loading may run code from the repository (off by default).
        gated: Whether the hub asks for an accepted licence and a token.
        notes: Known quirks, for the book and the logs.
    """

    name: str
    hub_id: str
    kind: str
    text_model: str = ""
    vision_model: str = ""
    params_b: float = 0.0
    template: str = LLAVA_TEMPLATE
    chat_source: str = "processor"
    trust_remote_code: bool = False
    gated: bool = False
    notes: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"model kind {self.kind!r} is not one of {KINDS}")
        if self.chat_source not in CHAT_SOURCES:
            raise ValueError(f"chat_source {self.chat_source!r} is not one of {CHAT_SOURCES}")
        if "{content}" not in self.template:
            raise ValueError(
                f"template of {self.name!r} has no {{content}} slot: {self.template!r}"
            )

    def local_dir(self, resources: str | Path = "resources") -> Path:
        """Where :mod:`ifl.download` stages this checkpoint: ``<resources>/models/<hub id>``."""
        return Path(resources) / "models" / self.hub_id


_ENTRIES = (
    ModelEntry(
        "llava-1.5-7b", "llava-hf/llava-1.5-7b-hf", "vlm", "llama", "clip", 7.1,
        notes="Vicuna-7B-v1.5 + CLIP ViT-L/14-336; the regression's reference class.",
    ),
    ModelEntry(
        "llava-1.5-13b", "llava-hf/llava-1.5-13b-hf", "vlm", "llama", "clip", 13.4,
        notes="Vicuna-13B-v1.5 + CLIP ViT-L/14-336 (hub id not verified by the paper).",
    ),
    ModelEntry(
        "bakllava", "llava-hf/bakLlava-v1-hf", "vlm", "mistral", "clip", 7.6,
        notes="Mistral-7B + CLIP ViT-L/14-336 trained on the LLaVA-1.5 data.",
    ),
    ModelEntry(
        "llava-gemma-2b", "Intel/llava-gemma-2b", "vlm", "gemma", "clip", 2.8,
        template=GEMMA_TEMPLATE, chat_source="tokenizer",
        notes=(
            "gemma-2b-it + CLIP; released with a custom processor: the Gemma chat template "
            "lives in the tokenizer and processor_config.json may lack patch_size and "
            "num_additional_image_tokens (repaired by fix_processor); Gemma licence (the hub may ask for a token)."
        ),
    ),
    ModelEntry("vicuna-7b", "lmsys/vicuna-7b-v1.5", "llm", "llama", params_b=6.7),
    ModelEntry("yi-6b-chat", "01-ai/Yi-6B-Chat", "llm", "llama", params_b=6.1,
               notes="hub id not verified by the paper"),
    ModelEntry("leo-7b-chat", "LeoLM/leo-hessianai-7b-chat", "llm", "llama", params_b=6.7),
    ModelEntry("clip-vit-l-336", "openai/clip-vit-large-patch14-336", "vision", vision_model="clip",
               params_b=0.3, notes="LLaVA-1.5's encoder; penultimate-layer patch features"),
    ModelEntry("dinov2-large", "facebook/dinov2-large", "vision", vision_model="dinov2",
               params_b=0.3, notes="checkpoint used by the paper not confirmed"),
    ModelEntry("nllb-1.3b", "facebook/nllb-200-distilled-1.3B", "translation", params_b=1.4,
               notes="cc-by-nc-4.0"),
)  # fmt: skip

#: Every registered checkpoint by name.
REGISTRY: Mapping[str, ModelEntry] = MappingProxyType({e.name: e for e in _ENTRIES})


def get(name: str) -> ModelEntry:
    """The entry registered as ``name`` (a registry name or a hub id).

    Raises:
        ValueError: if neither a name nor a hub id of the registry matches.
    """
    if name in REGISTRY:
        return REGISTRY[name]
    for entry in REGISTRY.values():
        if entry.hub_id == name:
            return entry
    raise ValueError(f"unknown model {name!r}; registered: {', '.join(REGISTRY)}")


def entry_from_config(path: str | Path) -> ModelEntry:
    """An ad-hoc entry for a local checkpoint not in the registry (a trained grid VLM, or any
    VLM of :mod:`ifl.models.families`).

    The architecture is read from ``config.json``. The prompt comes from the checkpoint's chat
    template; a LLaVA without one falls back to LLaVA-1.5's format (Gemma's, from the
    tokenizer, for a LLaVA on a Gemma language model).
    """
    config_path = Path(path) / "config.json"
    if not config_path.is_file():
        raise ValueError(f"no config.json in model directory {str(path)!r}")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    text = (config.get("text_config") or {}).get("model_type", config.get("model_type", ""))
    vision = (config.get("vision_config") or {}).get("model_type", "")
    gemma = text.startswith("gemma") and config.get("model_type") == "llava"  # LLaVA-Gemma
    return ModelEntry(
        name=Path(path).name,
        hub_id=str(path),
        kind="vlm" if "vision_config" in config else "llm",
        text_model=text,
        vision_model={"clip_vision_model": "clip"}.get(vision, vision),
        template=GEMMA_TEMPLATE if gemma else LLAVA_TEMPLATE,
        chat_source="tokenizer" if gemma else "processor",
    )


def resolve(
    entry_or_path: ModelEntry | str | Path, resources: str | Path = "resources"
) -> tuple[ModelEntry, Path]:
    """The entry and the local directory of a registry name, hub id, entry or checkpoint path.

    Raises:
        ValueError: if a registered model is not staged under ``resources`` or a path does not
            exist (one line naming the model and the staging rule).
    """
    if isinstance(entry_or_path, ModelEntry):
        entry = entry_or_path
        path = entry.local_dir(resources)
    elif Path(entry_or_path).is_dir():
        path = Path(entry_or_path)
        entry = entry_from_config(path)
    else:
        entry = get(str(entry_or_path))
        path = entry.local_dir(resources)
    if not (path / "config.json").is_file():
        raise ValueError(
            f"model {entry.hub_id!r} is not staged at {str(path)!r}: run the download rules on a "
            "machine with internet (e.g. `snakemake download --configfile config/paper.yaml`) first"
        )
    return entry, path


def load_pretrained(
    entry_or_path: ModelEntry | str | Path,
    device: Any,
    dtype: Any = None,
    *,
    resources: str | Path = "resources",
    device_map: str | dict[str, Any] | None = None,
):
    """Load a staged VLM and its processor, ready for left-padded batched generation.

    ``entry_or_path`` is a :class:`ModelEntry`, a registry name or hub id (looked up under
    ``resources/models``), or the directory of any checkpoint of a supported family
    (:mod:`ifl.models.families`). The model is loaded with ``AutoModelForImageTextToText``
    (``LlavaForConditionalGeneration`` for LLaVA configs), in bf16 with accelerate's
    ``device_map`` on CUDA and fp32 on the CPU unless ``dtype`` or ``device_map`` say otherwise;
    ``trust_remote_code`` only when the entry opts in.

    Returns:
        ``(model, processor)`` with the model in eval mode and the processor repaired by
        :func:`ifl.models.families.fix_processor`.
    """
    from ifl.models.families import load_vlm

    entry, path = resolve(entry_or_path, resources)
    if entry.kind != "vlm":
        raise ValueError(f"load_pretrained loads VLMs; {entry.name!r} is a {entry.kind} checkpoint")
    return load_vlm(
        path, device, dtype, device_map=device_map, trust_remote_code=entry.trust_remote_code
    )


def user_content(question: str, *, image: bool, description: str | None = None) -> str:
    """The user turn's text: ``<image>\\n`` (image condition) or the description (text condition)
    before the question, as LLaVA-1.5 places them."""
    if image:
        return f"{IMAGE_TOKEN}\n{question}"
    return f"{description}\n{question}" if description else question


def prompt_source(entry: ModelEntry, processor: Any) -> str:
    """Where :func:`build_prompt` takes the format from: ``processor``, ``tokenizer`` or
    ``fallback`` (the entry's template) when the checkpoint ships no chat template."""
    tokenizer = getattr(processor, "tokenizer", processor)
    if entry.chat_source == "processor" and getattr(processor, "chat_template", None):
        return "processor"
    if entry.chat_source in ("processor", "tokenizer") and getattr(
        tokenizer, "chat_template", None
    ):
        return "tokenizer"
    return "fallback"


def build_prompt(
    entry: ModelEntry, processor: Any, question: str, *, image: bool, description: str | None = None
) -> str:
    """The generation prompt of one query in the checkpoint's own format.

    The chat template the checkpoint ships wins (``apply_chat_template`` with an image part in
    the image condition); the entry's ``template`` is the fallback. A leading BOS rendered by
    the template is dropped when the tokenizer adds one itself (Gemma), so it is not doubled.
    """
    return make_prompter(entry, processor)(question, image, description)


def make_prompter(entry: ModelEntry, processor: Any) -> Callable[[str, bool, str | None], str]:
    """A function ``(question, image, description) -> prompt`` that fixes the format once."""
    source = prompt_source(entry, processor)
    tokenizer = getattr(processor, "tokenizer", processor)

    def _processor(question: str, image: bool, description: str | None) -> str:
        text = question if image else user_content(question, image=False, description=description)
        parts = ([{"type": "image"}] if image else []) + [{"type": "text", "text": text}]
        messages = [{"role": "user", "content": parts}]
        out = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return _strip_bos(out, tokenizer)

    def _tokenizer(question: str, image: bool, description: str | None) -> str:
        content = user_content(question, image=image, description=description)
        messages = [{"role": "user", "content": content}]
        out = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return _strip_bos(out, tokenizer)

    def _fallback(question: str, image: bool, description: str | None) -> str:
        return entry.template.format(
            content=user_content(question, image=image, description=description)
        )

    return {"processor": _processor, "tokenizer": _tokenizer, "fallback": _fallback}[source]


def _strip_bos(text: str, tokenizer: Any) -> str:
    bos = getattr(tokenizer, "bos_token", None)
    if bos and text.startswith(bos) and _adds_bos(tokenizer):
        return text[len(bos) :]
    return text


def _adds_bos(tokenizer: Any) -> bool:
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id


def compose_llava(
    llm_dir: str | Path,
    vision_dir: str | Path,
    *,
    seed: int = 0,
    dtype: Any = None,
    vision_feature_layer: int = -2,
    chat_template: str | None = None,
):
    """A LLaVA-1.5-style VLM from a pretrained LLM and vision encoder, with a fresh projector.

    The design grid's starting point (Table 3): penultimate-layer patch features (CLS
    dropped, for CLIP and DINOv2 alike), an ``mlp2x_gelu`` projector, ``<image>`` added to the
    tokenizer. The LLM and the tower are moved into the LLaVA without copies (the composite is
    built on the meta device), so a 7B backbone needs its own memory only once.

    Returns:
        ``(model, processor)``; save both with ``save_pretrained`` into one directory.
    """
    import torch
    from accelerate import init_empty_weights
    from transformers import (
        AutoConfig,
        AutoImageProcessor,
        AutoModel,
        AutoModelForCausalLM,
        AutoTokenizer,
        CLIPVisionModel,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    dtype = dtype or torch.float32
    tokenizer = AutoTokenizer.from_pretrained(llm_dir)
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    if tokenizer.pad_token is None:
        tokenizer.add_special_tokens({"pad_token": "<pad>"})
    tokenizer.padding_side = "left"
    llm = AutoModelForCausalLM.from_pretrained(llm_dir, dtype=dtype)
    if llm.get_input_embeddings().num_embeddings < len(tokenizer):
        llm.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    vcfg = AutoConfig.from_pretrained(vision_dir)
    if vcfg.model_type == "clip":  # a full CLIP checkpoint: keep its vision half
        vision = CLIPVisionModel.from_pretrained(vision_dir, dtype=dtype)
    else:
        vision = AutoModel.from_pretrained(vision_dir, dtype=dtype)
    image_size = _image_size(vision_dir, vision.config)
    llm.config.pad_token_id = tokenizer.pad_token_id
    config = LlavaConfig(
        vision_config=vision.config.to_dict(),
        text_config=llm.config.to_dict(),
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=(image_size // vision.config.patch_size) ** 2,
        vision_feature_layer=vision_feature_layer,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        tie_word_embeddings=bool(getattr(llm.config, "tie_word_embeddings", False)),
    )
    with init_empty_weights():
        model = LlavaForConditionalGeneration(config)
    model.model.language_model = llm.model
    model.lm_head = llm.lm_head
    model.model.vision_tower = vision
    torch.manual_seed(seed)
    model.model.multi_modal_projector = LlavaMultiModalProjector(config).to(dtype)
    meta = [n for n, p in model.named_parameters() if p.device.type == "meta"]
    if meta:
        raise ValueError(f"composed LLaVA left parameters uninitialised: {meta[:3]}")
    model.generation_config = llm.generation_config
    processor = LlavaProcessor(
        image_processor=_square_processor(
            AutoImageProcessor.from_pretrained(vision_dir), image_size
        ),
        tokenizer=tokenizer,
        patch_size=vision.config.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=chat_template,
    )
    return model.eval(), processor


def _image_size(vision_dir: str | Path, vcfg: Any) -> int:
    """The resolution the encoder sees: the processor's crop (224 for DINOv2, whose config
    says 518 for its interpolated position embeddings), else the config's ``image_size``."""
    path = Path(vision_dir) / "preprocessor_config.json"
    if path.is_file():
        crop = json.loads(path.read_text(encoding="utf-8")).get("crop_size")
        if isinstance(crop, dict) and "height" in crop:
            return int(crop["height"])
        if isinstance(crop, int):
            return crop
    return int(vcfg.image_size)


def _square_processor(base: Any, image_size: int) -> Any:
    """LLaVA-1.5's image pipeline: pad to a square with the mean colour, resize, normalise
    with the encoder's statistics (``LlavaImageProcessor`` with ``do_pad``)."""
    try:
        from transformers import LlavaImageProcessorPil as _Processor
    except ImportError:  # pragma: no cover - transformers with torchvision only
        from transformers import LlavaImageProcessor as _Processor
    return _Processor(
        do_pad=True,
        do_resize=True,
        size={"shortest_edge": image_size},
        do_center_crop=True,
        crop_size={"height": image_size, "width": image_size},
        image_mean=list(base.image_mean),
        image_std=list(base.image_std),
    )
