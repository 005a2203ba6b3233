"""Build the organism's tiny models as ordinary Hugging Face objects.

A byte-level BPE tokenizer trained on the world's text, Llama-architecture LLM backbones,
CLIP-architecture vision encoders, and the LLaVA composition of the two with a
``LlavaProcessor``: everything is saved with ``save_pretrained`` and reloaded with
``from_pretrained``, exactly as the paper preset's real checkpoints are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from ifl.models.prompts import CHAT_TEMPLATE, IMAGE_TOKEN

# </s> must not get id 2: CLIP's text tower treats eos id 2 as a legacy checkpoint.
SPECIAL_TOKENS = ["<pad>", "<unk>", "<s>", "</s>", IMAGE_TOKEN]


# Pre-tokens are whole words (with their marks) and single punctuation. GPT-2's byte-level regex
# splits Devanagari, Bengali and Thai words at every vowel sign, which left the tiny backbones
# spelling Hindi words from 3-4 pieces and garbling them.
_WORDS = Regex(r" ?\p{P}| ?[^\s\p{P}]+|\s+")


def train_tokenizer(
    texts: Iterable[str], vocab_size: int, *, pieces: Sequence[str] = ()
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer (no unknown characters in any script).

    ``pieces`` are word pieces isolated before anything else (longest first): in scripts
    written without spaces the word regex sees a whole clause as one word, and BPE then learns
    "左上方有一个小的红色正方形" as a single token whose colour no model can read.
    """
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    splits = [pre_tokenizers.Split(_WORDS, behavior="isolated")]
    if pieces:
        alternation = "|".join(re.escape(p) for p in sorted(pieces, key=len, reverse=True))
        splits.insert(0, pre_tokenizers.Split(Regex(alternation), behavior="isolated"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [*splits, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def llama_config(arch: Mapping[str, int], vocab_size: int, **token_ids: int) -> LlamaConfig:
    """The organism's Llama-architecture config sized by ``arch`` (tied input/output embeddings)."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=arch["hidden"],
        num_hidden_layers=arch["layers"],
        num_attention_heads=arch["heads"],
        num_key_value_heads=arch["heads"],
        intermediate_size=arch["intermediate"],
        max_position_embeddings=512,
        tie_word_embeddings=True,
        **token_ids,
    )


def build_llm(
    tokenizer: PreTrainedTokenizerFast, arch: Mapping[str, int], seed: int
) -> LlamaForCausalLM:
    """A randomly initialised Llama-architecture causal LM sized by ``arch``."""
    torch.manual_seed(seed)
    config = llama_config(
        arch,
        len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def build_vision(
    arch: Mapping[str, int], image_size: int, patch_size: int, seed: int
) -> CLIPVisionModel:
    """A randomly initialised CLIP-architecture ViT sized by ``arch``."""
    torch.manual_seed(seed)
    config = CLIPVisionConfig(
        hidden_size=arch["hidden"],
        num_hidden_layers=arch["layers"],
        num_attention_heads=arch["heads"],
        intermediate_size=arch["intermediate"],
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=arch["hidden"],
    )
    return CLIPVisionModel(config)


def image_processor(image_size: int) -> CLIPImageProcessorPil:
    """Scenes are rendered at the model's resolution: normalise only, never resize."""
    # The PIL backend: torchvision is not a dependency (its wheels clash with the pinned torch).
    return CLIPImageProcessorPil(
        do_resize=False,
        do_center_crop=False,
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )


def build_vlm(
    llm: LlamaForCausalLM,
    vision: CLIPVisionModel,
    tokenizer: PreTrainedTokenizerFast,
    seed: int,
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """Compose a LLaVA from a pretrained LLM and vision encoder with a fresh MLP projector."""
    vcfg = vision.config
    n_tokens = (vcfg.image_size // vcfg.patch_size) ** 2
    config = LlavaConfig(
        vision_config=vcfg.to_dict(),
        text_config=llm.config.to_dict(),
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=n_tokens,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.model.language_model.load_state_dict(llm.model.state_dict())
    model.lm_head.load_state_dict(llm.lm_head.state_dict())
    model.model.vision_tower.load_state_dict(vision.state_dict())
    processor = LlavaProcessor(
        image_processor=image_processor(vcfg.image_size),
        tokenizer=tokenizer,
        patch_size=vcfg.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
    return model, processor
