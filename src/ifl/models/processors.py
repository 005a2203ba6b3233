"""Processors for machines where a checkpoint's official processor cannot be built.

Every image-text-to-text checkpoint ships a processor (transformers' ``AutoProcessor``) that
renders the chat template, resizes the images and expands each image placeholder into the
image tokens the model expects. Two kinds of them need torchvision, which a CPU-only machine may
not have (or not have in a version that imports beside its torch):

* processors that carry a video processor (Qwen2-VL, Qwen2.5-VL, Qwen3-VL, LLaVA-OneVision,
  InternVL, SmolVLM): :func:`without_video` gives the official class without its video half, so
  that everything images need (its PIL image processor, its tokenizer, its own image-token
  expansion and chat template) is exactly the official code;
* Pixtral's processor (Mistral 3, Pixtral), whose module imports torchvision:
  :class:`PixtralProcessorPil` re-implements its image-token layout on the PIL image processor.

Where torchvision imports, the official processor is used and nothing here is.
"""

from __future__ import annotations

import functools
from typing import Any

from transformers.processing_utils import ProcessorMixin

VIDEO = "video_processor"


@functools.cache
def without_video(cls: type[ProcessorMixin]) -> type[ProcessorMixin]:
    """``cls`` with its video processor left out of its sub-processors.

    The subclass loads with ``from_pretrained`` like the official class (image processor,
    tokenizer, chat template and processor settings from the checkpoint) and processes images
    and text with the official code; asking it for video fails. It keeps the official name in
    its ``__name__`` prefix so that logs say which processor it stands in for.
    """
    if VIDEO not in cls.get_attributes():
        raise ValueError(f"{cls.__name__} has no video processor to leave out")

    class _WithoutVideo(cls):  # type: ignore[misc, valid-type]
        ifl_official = cls.__name__

        @classmethod
        def get_attributes(klass) -> list[str]:
            # the official class's (ProcessorMixin reads them off the __init__ signature)
            return [a for a in cls.get_attributes() if a != VIDEO]

        @classmethod
        def from_dict(klass, processor_dict: dict[str, Any], **kwargs: Any):
            # Some official __init__s require the video processor (and pass it on, where
            # ProcessorMixin keeps only the sub-processors above). The official __init__ stays
            # in place: from_pretrained reads the accepted settings off its code.
            kwargs.setdefault(VIDEO, None)
            return super().from_dict(processor_dict, **kwargs)

        def apply_chat_template(
            self, conversation: Any, chat_template: str | None = None, **kwargs: Any
        ):
            """The chat template rendered by the tokenizer (some official versions read video
            settings here)."""
            return self.tokenizer.apply_chat_template(
                conversation, chat_template=chat_template or self.chat_template, **kwargs
            )

    _WithoutVideo.__name__ = _WithoutVideo.__qualname__ = f"{cls.__name__}WithoutVideo"
    return _WithoutVideo


class PixtralProcessorPil(ProcessorMixin):
    """Pixtral's processor (Mistral 3, Pixtral) on the PIL image processor.

    Each image becomes rows of ``[IMG]`` tokens, one per ``patch_size x spatial_merge_size``
    square of the resized image, each row closed by ``[IMG_BREAK]`` and the last one by
    ``[IMG_END]``, as ``transformers.PixtralProcessor`` lays them out. Loads from a checkpoint
    whose ``processor_class`` is ``PixtralProcessor`` (its processor_config.json settings).
    """

    ifl_official = "PixtralProcessor"

    def __init__(
        self,
        image_processor: Any = None,
        tokenizer: Any = None,
        patch_size: int = 16,
        spatial_merge_size: int = 1,
        chat_template: str | None = None,
        image_token: str = "[IMG]",
        image_break_token: str = "[IMG_BREAK]",
        image_end_token: str = "[IMG_END]",
        **kwargs: Any,
    ) -> None:
        super().__init__(image_processor, tokenizer, chat_template=chat_template)
        self.patch_size = patch_size
        self.spatial_merge_size = spatial_merge_size
        self.image_token = image_token
        self.image_break_token = image_break_token
        self.image_end_token = image_end_token
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)

    def _process_images(self, images: Any, **kwargs: Any):
        kwargs["patch_size"] = self.patch_size * self.spatial_merge_size
        return super()._process_images(images, **kwargs)

    def replace_image_token(self, image_inputs: dict, image_idx: int, **kwargs: Any) -> str:
        """The token string one image placeholder stands for."""
        step = self.patch_size * self.spatial_merge_size
        height, width = (int(x) for x in image_inputs["image_sizes"][image_idx])
        row = [self.image_token] * (width // step) + [self.image_break_token]
        tokens = row * (height // step)
        tokens[-1] = self.image_end_token
        return "".join(tokens)

    @property
    def model_input_names(self) -> list[str]:
        return [*self.tokenizer.model_input_names, "pixel_values", "image_sizes"]


#: Processors re-implemented here, by the official class name a checkpoint declares.
OWN = {"PixtralProcessor": PixtralProcessorPil}
