"""Vision-language model families: which checkpoints load, how their processor is built, and
what differs between them.

Any checkpoint whose architecture transformers loads through ``AutoModelForImageTextToText``
is loaded the same way (:func:`load_vlm`); what differs between families is gathered here:

* the processor: the official one (``AutoProcessor``) whenever it can be built, else the
  official class without its video half or the project's own (:mod:`ifl.models.processors`),
  since both kinds need torchvision (:func:`load_processor`);
* the prompt: the checkpoint's own chat template, rendered with an image part in the image
  condition and none in the text condition (:func:`ifl.models.registry.make_prompter`);
* image inputs: one list of images per prompt, which every family's processor accepts
  (:func:`image_batch`);
* positions: families with multimodal rotary positions (Qwen-VL, GLM-4V) derive their position
  ids from the image grid themselves, so callers must not pass any (:func:`own_positions`);
* the decoder layers of the language model, where hidden states are read and steering vectors
  added: :mod:`ifl.models.layers`.

:data:`TESTED` lists the families the test suite builds tiny random instances of. A family that
cannot be supported is refused in one line naming the model and what is missing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: ``model_type`` of the families built and run end to end by the test suite (CPU, tiny, random).
TESTED = (
    "llava",
    "llava_next",
    "llava_onevision",
    "qwen2_5_vl",
    "qwen3_vl",
    "gemma3",
    "idefics3",
    "smolvlm",
    "mistral3",
    "internvl",
)
#: Families that load but cannot be audited, and why.
UNSUPPORTED: Mapping[str, str] = {
    "mllama": "its images enter the language model through cross-attention layers, not as "
    "tokens of the sequence, so there are no image positions to measure or steer beside",
    "vision-encoder-decoder": "an encoder-decoder has no decoder-only language model to steer",
    "pix2struct": "an encoder-decoder has no decoder-only language model to steer",
    "florence2": "an encoder-decoder has no decoder-only language model to steer",
    "udop": "an encoder-decoder has no decoder-only language model to steer",
}
_PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")
# Vision towers whose hidden states start with a CLS token (dropped by the "default" strategy).
_CLS_TOWERS = frozenset({"clip_vision_model", "clip", "dinov2"})


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def model_type(path: str | Path) -> str:
    """The ``model_type`` of the checkpoint at ``path``, checked to be one the audit can load.

    Raises:
        ValueError: one line naming the model and what is missing: no config.json, code that
            only the repository has (``trust_remote_code``), an architecture that is not
            image-text-to-text in this transformers, or a family in :data:`UNSUPPORTED`.
    """
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    config = _read_json(Path(path) / "config.json")
    if not config:
        raise ValueError(f"model {str(path)!r}: no config.json (not a transformers checkpoint)")
    kind = str(config.get("model_type", ""))
    if kind in UNSUPPORTED:
        raise ValueError(
            f"model {str(path)!r}: family {kind!r} is not supported: {UNSUPPORTED[kind]}"
        )
    if kind not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        if "auto_map" in config:
            raise ValueError(
                f"model {str(path)!r}: family {kind!r} needs the code in its repository "
                "(trust_remote_code), which is not run here; use a conversion to a transformers "
                "architecture (often published with the suffix -hf)"
            )
        raise ValueError(
            f"model {str(path)!r}: model_type {kind!r} is not an image-text-to-text architecture "
            f"of transformers {transformers.__version__}"
        )
    return kind


def processor_class_name(path: str | Path) -> str:
    """The processor class a checkpoint declares (``processor_class`` in its processor,
    preprocessor or tokenizer config), else transformers' default for its ``model_type``."""
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    for name in _PROCESSOR_FILES:
        declared = _read_json(Path(path) / name).get("processor_class")
        if declared:
            return str(declared)
    kind = str(_read_json(Path(path) / "config.json").get("model_type", ""))
    name = PROCESSOR_MAPPING_NAMES.get(kind)
    if not name:
        raise ValueError(f"model {str(path)!r}: declares no processor_class and {kind!r} has none")
    return name


def _fallback_class(name: str) -> type:
    """The class that stands in for processor ``name`` when the official one cannot be built."""
    import transformers

    from ifl.models.processors import OWN, VIDEO, without_video

    if name in OWN:
        return OWN[name]
    cls = getattr(transformers, name, None)
    attributes = getattr(cls, "get_attributes", None)
    if cls is None or attributes is None or VIDEO not in attributes():
        raise ValueError(f"no stand-in for processor {name}")
    return without_video(cls)


def load_processor(path: str | Path, *, trust_remote_code: bool = False) -> Any:
    """The checkpoint's processor: the official one when it can be built, else a stand-in.

    The official ``AutoProcessor`` needs torchvision for processors that carry a video
    processor and for Pixtral's; without it (CPU machines whose torch has no matching
    torchvision) the official class is built without its video half, or Pixtral's layout comes
    from :class:`ifl.models.processors.PixtralProcessorPil`. The log names the one used
    (:func:`processor_kind`). A processor without a chat template takes its tokenizer's.

    Raises:
        ValueError: one line naming the model, the processor and why neither could be built.
    """
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as official:  # noqa: BLE001 - its cause is logged, and reported if the stand-in fails too
        name = processor_class_name(path)
        try:
            processor = _fallback_class(name).from_pretrained(path)
        except Exception as err:  # noqa: BLE001 - one line naming both causes
            raise ValueError(
                f"model {str(path)!r}: processor {name} cannot be built here "
                f"({_first_line(official)}; stand-in: {_first_line(err)})"
            ) from err
        log.warning("model %s: official %s not built (%s)", path, name, _first_line(official))
    if not hasattr(processor, "image_processor"):
        raise ValueError(f"model {str(path)!r}: ships no image processor (processor_config.json)")
    tokenizer = processor.tokenizer
    if not getattr(processor, "chat_template", None) and getattr(tokenizer, "chat_template", None):
        processor.chat_template = tokenizer.chat_template
    log.info("model %s: processor %s", path, processor_kind(processor))
    return processor


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"


def processor_kind(processor: Any) -> str:
    """How a processor was built: ``official``, ``official without video`` or ``own (<class>)``."""
    official = getattr(type(processor), "ifl_official", None)
    if official is None:
        return "official"
    if type(processor).__name__.endswith("WithoutVideo"):
        return "official without video"
    return f"own ({type(processor).__name__})"


def checkpoint_dir(path: str | Path) -> Path:
    """The checkpoint folder of ``path``: the folder itself, or the folder of a file in it (its
    config.json, or the download marker that rules depend on)."""
    path = Path(path)
    return path.parent if path.is_file() else path


def load_kwargs(
    device: Any, dtype: Any = None, *, trust_remote_code: bool = False
) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments: bf16 and accelerate placement on CUDA, fp32 on CPU.

    On CUDA, ``device_map`` lets accelerate place the layers: ``"auto"`` spreads a model over
    every visible GPU (a 13B model in bf16 needs ~27 GB), an indexed device pins it there.
    """
    import torch

    device = torch.device(device)
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": trust_remote_code}
    if device.type == "cuda":
        kwargs["device_map"] = "auto" if device.index is None else {"": device.index}
    return kwargs


def fix_processor(processor: Any, config: Any) -> Any:
    """Repair a LlavaProcessor from the model config, in place (and return it).

    For LLaVA checkpoints (``model_type`` llava): fills ``patch_size`` and
    ``vision_feature_select_strategy`` when the processor config lacks them (the processor then
    cannot expand ``<image>``) and counts the CLS token of CLIP and DINOv2 towers in
    ``num_additional_image_tokens``. For every processor: pads on the left and gives the
    tokenizer a pad token.

    Raises:
        ValueError: if the processor's image token id differs from the model's.
    """
    vision = getattr(config, "vision_config", None)
    if vision is not None and getattr(config, "model_type", "") == "llava":
        if getattr(processor, "patch_size", None) is None:
            processor.patch_size = vision.patch_size
        if getattr(processor, "vision_feature_select_strategy", None) is None:
            processor.vision_feature_select_strategy = config.vision_feature_select_strategy
        if getattr(vision, "model_type", "") in _CLS_TOWERS and not getattr(
            processor, "num_additional_image_tokens", 0
        ):
            processor.num_additional_image_tokens = 1
        token_id = getattr(processor, "image_token_id", None)
        expected = getattr(config, "image_token_id", None)
        if token_id is not None and expected is not None and token_id != expected:
            raise ValueError(
                f"processor image token id {token_id} differs from the model's image_token_id {expected}"
            )
    tokenizer = getattr(processor, "tokenizer", processor)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return processor


def load_vlm(
    path: str | Path,
    device: Any,
    dtype: Any = None,
    *,
    device_map: str | dict[str, Any] | None = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """Load any supported image-text-to-text checkpoint (a folder, or a file in it:
    :func:`checkpoint_dir`) and its processor, ready for left-padded batched generation.

    bf16 with accelerate's ``device_map`` on CUDA, fp32 on the CPU (:func:`load_kwargs`); LLaVA
    processors of old conversions are repaired (:func:`fix_processor`).

    Raises:
        ValueError: one line naming the model and what is missing (:func:`model_type`,
            :func:`load_processor`, :func:`check_loaded`).
    """
    import torch
    from transformers import AutoModelForImageTextToText

    path = checkpoint_dir(path)
    model_type(path)
    kwargs = load_kwargs(device, dtype, trust_remote_code=trust_remote_code)
    if device_map is not None:
        kwargs["device_map"] = device_map
    model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    if "device_map" not in kwargs:
        model = model.to(torch.device(device))
    processor = load_processor(path, trust_remote_code=trust_remote_code)
    fix_processor(processor, model.config)
    check_loaded(model, processor, path)
    return model.eval(), processor


def image_token_id(model: Any) -> int | None:
    """The token id whose positions hold image features (``image_token_id`` or
    ``image_token_index`` of the config), None for a model without one."""
    config = getattr(model, "config", None)
    for name in ("image_token_id", "image_token_index"):
        value = getattr(config, name, None)
        if value is not None:
            return int(value)
    return None


def check_loaded(model: Any, processor: Any, name: str | Path) -> None:
    """What the audit needs of a loaded VLM: decoder layers, an image token, and a chat template
    (a LLaVA without one is prompted in LLaVA-1.5's format, :mod:`ifl.models.registry`).

    Raises:
        ValueError: one line naming the model and what is missing.
    """
    from ifl.models.layers import decoder_layers

    try:
        decoder_layers(model)
    except ValueError as err:
        raise ValueError(f"model {str(name)!r}: {err}") from err
    if image_token_id(model) is None:
        raise ValueError(
            f"model {str(name)!r}: its config names no image token (image_token_id), so image "
            "positions cannot be told from text"
        )
    llava = getattr(model.config, "model_type", "") == "llava"  # LLaVA-1.5's format otherwise
    if not llava and not getattr(processor, "chat_template", None):
        raise ValueError(
            f"model {str(name)!r}: ships no chat template (chat_template.jinja or the "
            "tokenizer's), so its prompts cannot be written in its own format"
        )


def image_batch(images: Sequence[Any]) -> list[list[Any]]:
    """One list of images per prompt: the layout every family's processor accepts (Gemma 3 and
    Idefics3 refuse a flat list for a batch)."""
    return [[image] for image in images]


def own_positions(model: Any) -> bool:
    """Whether the model derives its own position ids (multimodal rotary positions from the
    image grid, as Qwen-VL and GLM-4V): callers must then pass none."""
    return any(hasattr(m, "get_rope_index") for m in (model, getattr(model, "model", None)))
