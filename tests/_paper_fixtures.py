"""Tiny local stand-ins for every asset of the paper preset, in the layout of ``ifl.download``.

Nothing can be downloaded here, so each hub repository is replaced by a random tiny checkpoint
of the same architecture or a few rows in the same schema, written where :func:`ifl.download.stage`
would put the real one (``<root>/models/<owner>/<name>``, ``<root>/datasets/<owner>/<name>``)
and marked as staged:

* VLMs: Llama-based (llava-1.5-7b/13b), Mistral-based (bakLlava) and Gemma-based
  (llava-gemma-2b, with its legacy processor config and the chat template in the tokenizer)
  LLaVAs with CLIP towers, and a LLaVA with a DINOv2 tower;
* grid pieces: Llama-architecture LLM backbones (no ``<image>`` token, no pad token, as
  Vicuna), a full CLIP checkpoint (text and vision towers) and a DINOv2 encoder;
* NLLB: an M2M100 (NLLB architecture) translation model with a character-level NllbTokenizer;
* GlotLID: a fasttext model trained on the organism's sentences with labels like ``deu_Latn``;
* MaXM, PALO LLaVA-Bench, VisIT-Bench, MultiQ, LLaVA-Pretrain and mix665k in their hub schemas;
* the remedies' text-only multilingual data in aya_dataset's schema (``CohereForAI/aya_dataset``).

:func:`build_resources` builds all of it (a few seconds); the builders are usable one by one.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPVisionConfig,
    Dinov2Config,
    Dinov2Model,
    GemmaConfig,
    LlamaConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    M2M100Config,
    M2M100ForConditionalGeneration,
    MistralConfig,
    NllbTokenizer,
    PreTrainedTokenizerFast,
)
from transformers.models.bit.image_processing_pil_bit import BitImageProcessorPil
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from ifl.download import DATASET_ASSETS, GLOTLID, Asset, mark_staged, model_asset
from ifl.models.registry import REGISTRY

IMAGE_SIZE = 32
PATCH_SIZE = 8
N_IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2
GEMMA_TURNS = ["<start_of_turn>", "<end_of_turn>"]
# The paper's 14 languages' GlotLID labels.
GLOTLID_LABELS = {
    "zh": "cmn_Hani", "hi": "hin_Deva", "en": "eng_Latn", "he": "heb_Hebr", "th": "tha_Thai",
    "ar": "arb_Arab", "bn": "ben_Beng", "ja": "jpn_Jpan", "es": "spa_Latn", "de": "deu_Latn",
    "fr": "fra_Latn", "ro": "ron_Latn", "ru": "rus_Cyrl", "ur": "urd_Arab",
}  # fmt: skip
# LLaVA-1.5's format as a processor chat template (image parts first, then text, as llava-hf).
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'].upper() }}: "
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n{% endif %}{% endfor %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }} {% endif %}{% endfor %}"
    "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
# Gemma's format as a tokenizer chat template; it renders BOS itself, as gemma-2b-it's does.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>"
    "{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
_WORD_TEXT = (
    "USER ASSISTANT : . , ? ! describe this image in detail what colour is the a of on and how many "
    "are there red green blue circle square one two yes no picture user model beschreibe das bild "
    "rot grün blau ja nein 描述 图片 红色 是 不"
)
_WORDS = _WORD_TEXT.split()


def _steering_words() -> list[str]:
    """The pieces of the steering instruction x_lang in each of the 14 languages, as the
    Whitespace pre-tokenizer splits them (a Chinese or Thai sentence is one piece): without them
    every non-English x_lang would be all ``<unk>`` (a special token), which
    ``ifl.steering.vectors.layer_states`` rejects, while a real tokenizer has tokens for any text."""
    from ifl import LANGUAGES
    from ifl.world.items import detail_instruction

    split = pre_tokenizers.Whitespace().pre_tokenize_str
    return [piece for lang in LANGUAGES for piece, _ in split(detail_instruction(lang))]


def word_tokenizer(specials: Sequence[str], *, pad: bool = True) -> PreTrainedTokenizerFast:
    """A word-level fast tokenizer that prepends ``<s>``; ``pad=False`` leaves no pad token (Vicuna)."""
    base = ["<unk>", "<s>", "</s>"] + (["<pad>"] if pad else [])
    words = base + list(specials) + _WORDS + _steering_words()
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(words))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    kwargs = {"pad_token": "<pad>"} if pad else {}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", **kwargs
    )
    if specials:
        tokenizer.add_special_tokens({"additional_special_tokens": list(specials)})
    return tokenizer


def _text_config(kind: str, tokenizer: PreTrainedTokenizerFast, hidden: int = 32, layers: int = 2):
    common = {
        "vocab_size": len(tokenizer),
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": 256,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    if kind == "llama":
        return LlamaConfig(**common)
    if kind == "mistral":
        return MistralConfig(**common, sliding_window=None)
    if kind == "gemma":
        return GemmaConfig(**common, head_dim=hidden // 4)
    raise ValueError(f"unknown text model {kind!r}")


def _vision(kind: str):
    """A tiny vision config and the image processor the real checkpoint ships."""
    if kind == "clip":
        config = CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=IMAGE_SIZE,
            patch_size=PATCH_SIZE,
        )
        processor = CLIPImageProcessorPil(
            size={"shortest_edge": IMAGE_SIZE},
            crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        )
        return config, processor
    if kind == "dinov2":
        config = Dinov2Config(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=IMAGE_SIZE,
            patch_size=PATCH_SIZE,
        )
        processor = BitImageProcessorPil(
            size={"shortest_edge": IMAGE_SIZE + 4},
            crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
            image_mean=[0.485, 0.456, 0.406],
            image_std=[0.229, 0.224, 0.225],
        )
        return config, processor
    raise ValueError(f"unknown vision model {kind!r}")


def build_vlm(
    out_dir: str | Path,
    text_model: str = "llama",
    vision_model: str = "clip",
    *,
    chat: str | None = "processor",
    legacy_processor: bool = False,
    seed: int = 0,
) -> Path:
    """Save a random tiny LLaVA and its processor to ``out_dir``.

    ``chat``: where the chat template ships (``processor`` as llava-hf, ``tokenizer`` as
    Intel/llava-gemma-2b, None for none). ``legacy_processor`` strips ``patch_size``,
    ``vision_feature_select_strategy`` and ``num_additional_image_tokens`` from
    processor_config.json, as in checkpoints converted before the processor expanded images.
    """
    out_dir = Path(out_dir)
    specials = ["<image>"] + (GEMMA_TURNS if text_model == "gemma" else [])
    tokenizer = word_tokenizer(specials)
    tokenizer.padding_side = "left"
    if chat == "tokenizer":
        tokenizer.chat_template = (
            GEMMA_CHAT_TEMPLATE if text_model == "gemma" else LLAVA_CHAT_TEMPLATE
        )
    vcfg, image_processor = _vision(vision_model)
    config = LlavaConfig(
        vision_config=vcfg,
        text_config=_text_config(text_model, tokenizer),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=N_IMAGE_TOKENS,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    for key in ("pad_token_id", "bos_token_id", "eos_token_id"):
        setattr(model.generation_config, key, getattr(tokenizer, key))
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_CHAT_TEMPLATE if chat == "processor" else None,
    )
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    if legacy_processor:
        path = out_dir / "processor_config.json"
        cfg = json.loads(path.read_text(encoding="utf-8"))
        for key in ("patch_size", "vision_feature_select_strategy", "num_additional_image_tokens"):
            cfg.pop(key, None)
        path.write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    return out_dir


def build_llm(out_dir: str | Path, seed: int = 0) -> Path:
    """A random tiny Llama causal LM whose tokenizer has neither ``<image>`` nor a pad token."""
    tokenizer = word_tokenizer([], pad=False)
    config = _text_config("llama", tokenizer)
    config.pad_token_id = None
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return Path(out_dir)


def build_clip(out_dir: str | Path, seed: int = 0) -> Path:
    """A full tiny CLIP checkpoint (text and vision towers), as openai/clip-vit-large-patch14-336."""
    vcfg, processor = _vision("clip")
    config = CLIPConfig(
        text_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "vocab_size": 99,
            "max_position_embeddings": 16,
            "bos_token_id": 0,
            "eos_token_id": 3,
            "pad_token_id": 1,
        },
        vision_config=vcfg.to_dict(),
        projection_dim=16,
    )
    torch.manual_seed(seed)
    CLIPModel(config).eval().save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return Path(out_dir)


def build_dinov2(out_dir: str | Path, seed: int = 0) -> Path:
    """A random tiny DINOv2 encoder (``Dinov2Model``) and its BitImageProcessor."""
    vcfg, processor = _vision("dinov2")
    torch.manual_seed(seed)
    Dinov2Model(vcfg).eval().save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return Path(out_dir)


TRANSLATION_TEXT = (
    "Describe this image in detail. What colour is the circle? How many objects are there? "
    "The picture shows a red circle and two blue squares. Yes, no, left, right."
)


def nllb_tokenizer(text: str = TRANSLATION_TEXT) -> NllbTokenizer:
    """A character-level NllbTokenizer (all 200+ NLLB language codes as special tokens)."""
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "▁": 4}
    for ch in sorted(set(text.replace(" ", ""))):
        vocab.setdefault(ch, len(vocab))
    return NllbTokenizer(vocab=vocab, merges=[], src_lang="eng_Latn")


def build_translator(out_dir: str | Path, seed: int = 0) -> Path:
    """A random tiny M2M100 (the NLLB architecture) and its NllbTokenizer."""
    tokenizer = nllb_tokenizer()
    config = M2M100Config(
        vocab_size=len(tokenizer),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=256,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
        scale_embedding=True,
    )
    torch.manual_seed(seed)
    M2M100ForConditionalGeneration(config).eval().save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return Path(out_dir)


def build_glotlid(path: str | Path, *, lines_per_language: int = 250, seed: int = 0) -> Path:
    """A fasttext LID model with GlotLID labels (``__label__deu_Latn``) saved as ``path``.

    Trained (``train_supervised``, lr 0.1) on descriptions of random organism scenes in the
    paper's 14 languages: a few thousand lines, which train without NaNs.
    """
    import fasttext

    from ifl.world.items import describe
    from ifl.world.scenes import sample_scene

    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(lines_per_language):
        scene = sample_scene(rng)
        for lang, label in GLOTLID_LABELS.items():
            lines.append(f"__label__{label} {describe(scene, lang)}".replace("\n", " "))
    rng.shuffle(lines)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    train = path.with_suffix(".train.txt")
    train.write_text("\n".join(lines) + "\n", encoding="utf-8")
    model = fasttext.train_supervised(
        str(train), lr=0.1, epoch=5, dim=16, minn=1, maxn=3, seed=seed, thread=1, verbose=0
    )
    model.save_model(str(path))
    train.unlink()
    return path


# --- datasets ---------------------------------------------------------------------------------
def _image(seed: int, size: tuple[int, int] = (40, 48)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8))


def _jpeg_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    _image(seed).save(buf, format="JPEG")
    return buf.getvalue()


MAXM_SPLITS = ("en", "fr", "hi", "iw", "ro", "th", "zh")


def build_maxm(root: str | Path, per_split: int = 3) -> Path:
    """floschne/maxm: ``data/<split>-00000-of-00001.parquet`` per language split (and a yes/no
    split that the loader must ignore), image as a ``{bytes, path}`` struct."""
    root = Path(root)
    (root / "data").mkdir(parents=True, exist_ok=True)
    for s, split in enumerate((*MAXM_SPLITS, "en_yesno")):
        rows = []
        for i in range(per_split):
            image_id = f"{split}-img{i}"
            rows.append(
                {
                    "image_id": image_id,
                    "image_url": f"https://example.org/{image_id}.jpg",
                    "image": {"bytes": _jpeg_bytes(100 * s + i), "path": f"{image_id}.jpg"},
                    "image_locale": split,
                    "image_captions": [f"caption {i} in {split}", f"second caption {i}"],
                    "question_id": f"{split}-q{i}",
                    "question": f"question {i} in {split}?",
                    "answers": [f"answer {i}", f"alt {i}"],
                    "processed_answers": [f"answer {i}"],
                    "language": split,
                    "is_collection": False,
                    "method": "template",
                }
            )
        pd.DataFrame(rows).to_parquet(
            root / "data" / f"{split}-00000-of-00001.parquet", index=False
        )
    return root


PALO_FOLDERS = (
    "arabic",
    "bengali",
    "chinese",
    "english",
    "french",
    "hindi",
    "japanese",
    "russian",
    "spanish",
    "urdu",
)


def build_palo(root: str | Path, n_images: int = 2, per_image: int = 2) -> Path:
    """MBZUAI/multilingual-llava-bench-in-the-wild: ``images/NNN.jpg`` and per language folder
    ``question.jsonl``, ``answers.jsonl``, ``context.jsonl``."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        _image(500 + i).save(root / "images" / f"{i + 1:03d}.jpg")
    categories = ("conv", "detail", "complex")
    for folder in PALO_FOLDERS:
        base = root / folder
        base.mkdir(exist_ok=True)
        questions, answers, context = [], [], []
        for i in range(n_images):
            image = f"{i + 1:03d}.jpg"
            context.append(
                {"id": f"{i + 1:03d}", "image": image, "caption": f"{folder} caption of {image}"}
            )
            for j in range(per_image):
                qid = i * per_image + j
                questions.append(
                    {
                        "image": image,
                        "text": f"{folder} question {qid}",
                        "category": categories[qid % 3],
                        "question_id": qid,
                    }
                )
                answers.append(
                    {
                        "question_id": qid,
                        "prompt": f"{folder} question {qid}",
                        "text": f"{folder} answer {qid}",
                        "answer_id": f"a{qid}",
                        "model_id": "gpt-4-0314",
                        "metadata": {},
                    }
                )
        for name, records in (
            ("question.jsonl", questions),
            ("answers.jsonl", answers),
            ("context.jsonl", context),
        ):
            (base / name).write_text(
                "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
            )
    return root


VISIT_ROWS = (
    (
        "Color",
        "List the colours of the pencils.",
        "Pencils in red, green and blue.",
        "Red, green and blue.\nThat is all.",
    ),
    ("Counting", "How many dogs are there?", "Two dogs on the grass.", "There are two dogs."),
    (
        "Exercise",
        "What is this yoga pose?",
        "A woman in a downward dog pose.",
        "Downward-Facing Dog.",
    ),
)


def build_visit(root: str | Path) -> Path:
    """mlfoundations/VisIT-Bench as the hub's image folder: ``test/metadata.csv`` + images,
    with one multi-image row the loader must drop."""
    test = Path(root) / "test"
    test.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (category, instruction, caption, reference) in enumerate(VISIT_ROWS):
        name = f"{i}_{category.lower()}.jpg"
        _image(700 + i).save(test / name)
        rows.append(
            {
                "file_name": name,
                "instruction_category": category,
                "instruction": instruction,
                "instruction_conditioned_caption": caption,
                "reference_output": reference,
                "is_multiple_images": False,
                "public_images_metadata": "{}",
            }
        )
    rows.append({**rows[0], "instruction": "Compare the two images.", "is_multiple_images": True})
    pd.DataFrame(rows).to_csv(test / "metadata.csv", index=False)
    return Path(root)


MULTIQ_LANGUAGES = ("en", "de", "zh-CN", "zh-TW", "iw", "he", "ee", "hi")


def build_multiq(root: str | Path, n_questions: int = 3) -> Path:
    """caro-holt/MultiQ: ``MultiQ.csv`` with columns id, language, prompt, domain."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "id": f"gpt-{i + 1}",
            "language": lang,
            "prompt": f"{lang} prompt {i + 1}?",
            "domain": "chemistry",
        }
        for lang in MULTIQ_LANGUAGES
        for i in range(n_questions)
    ]
    pd.DataFrame(rows).to_csv(root / "MultiQ.csv", index=False)
    return root


def _conversation(i: int, image: bool) -> list[dict[str, str]]:
    first = (
        "<image>\nWhat is in the picture?"
        if image and i % 2 == 0
        else "What is in the picture?\n<image>"
    )
    return [
        {"from": "human", "value": first if image else "What is the capital of France?"},
        {"from": "gpt", "value": f"A red circle number {i}. It is small."},
        {"from": "human", "value": "How many objects are there?"},
        {"from": "gpt", "value": "There are 2 objects.\n\n1. A circle\n2. A square"},
    ]


def build_llava_pretrain(root: str | Path, n: int = 4) -> Path:
    """liuhaotian/LLaVA-Pretrain after staging: ``blip_laion_cc_sbu_558k.json`` and the images
    unpacked from images.zip (``00000/<id>.jpg``)."""
    root = Path(root)
    (root / "00000").mkdir(parents=True, exist_ok=True)
    data = []
    for i in range(n):
        ident = f"{i:09d}"
        _image(900 + i).save(root / "00000" / f"{ident}.jpg")
        data.append(
            {
                "id": ident,
                "image": f"00000/{ident}.jpg",
                "conversations": [
                    {
                        "from": "human",
                        "value": "Render a clear and concise summary of the photo.\n<image>",
                    },
                    {"from": "gpt", "value": f"a red circle and {i} blue squares"},
                ],
            }
        )
    (root / "blip_laion_cc_sbu_558k.json").write_text(json.dumps(data), encoding="utf-8")
    return root


def build_llava_instruct(root: str | Path, image_root: str | Path, n: int = 4) -> Path:
    """liuhaotian/LLaVA-Instruct-150K's ``llava_v1_5_mix665k.json`` (image rows from coco and
    gqa, one text-only ShareGPT row) and its images under ``image_root``."""
    root, image_root = Path(root), Path(image_root)
    root.mkdir(parents=True, exist_ok=True)
    data = []
    for i in range(n):
        rel = f"coco/train2017/{i:012d}.jpg" if i % 2 == 0 else f"gqa/images/{i}.jpg"
        (image_root / rel).parent.mkdir(parents=True, exist_ok=True)
        _image(1000 + i).save(image_root / rel)
        data.append({"id": f"{i:012d}", "image": rel, "conversations": _conversation(i, True)})
    data.append({"id": "sharegpt-0", "model": "", "conversations": _conversation(n, False)})
    (root / "llava_v1_5_mix665k.json").write_text(json.dumps(data), encoding="utf-8")
    return root


#: The remedies' text data of the stand-ins (config ``remedies.text_data.hub_id``).
TEXT_DATA = Asset("CohereForAI/aya_dataset", "dataset")
AYA_CODES = {
    "eng": "English",
    "deu": "German",
    "zho": "Simplified Chinese",
    "arb": "Standard Arabic",
}


def build_text_data(root: str | Path, per_language: int = 3) -> Path:
    """CohereForAI/aya_dataset: ``data/train-00000-of-00001.parquet`` with its columns inputs,
    targets, language, language_code (ISO 639-3), annotation_type and user_id."""
    root = Path(root)
    (root / "data").mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "inputs": f"{name} prompt {i}?",
            "targets": f"{name} answer {i}.",
            "language": name,
            "language_code": code,
            "annotation_type": "original-annotations",
            "user_id": f"user{i}",
        }
        for code, name in AYA_CODES.items()
        for i in range(per_language)
    ]
    pd.DataFrame(rows).to_parquet(root / "data" / "train-00000-of-00001.parquet", index=False)
    return root


# --- everything, staged -----------------------------------------------------------------------
def _stage(asset: Asset, root: Path, build) -> Path:
    from ifl.download import local_dir

    path = local_dir(asset, root)
    build(path)
    mark_staged(asset, root)
    return path


def build_resources(root: str | Path, *, glotlid: bool = True) -> dict[str, Path]:
    """Every paper-preset asset as a tiny stand-in under ``root``, marked staged.

    Returns the staged paths by the short names of :func:`ifl.download.paper_assets`
    (``model:<registry name>``, ``dataset:<name>``, ``lid``), plus ``model:llava-dinov2`` (a
    LLaVA with a DINOv2 tower, in ``<root>/models/local/llava-dinov2``) and ``llava-images``.
    """
    root = Path(root)
    vlms = {
        "llava-1.5-7b": ("llama", {"chat": "processor"}),
        "llava-1.5-13b": ("llama", {"chat": "processor"}),
        "bakllava": ("mistral", {"chat": "processor"}),
        "llava-gemma-2b": ("gemma", {"chat": "tokenizer", "legacy_processor": True}),
    }
    out: dict[str, Path] = {}
    for i, (name, (text_model, kwargs)) in enumerate(vlms.items()):
        asset = model_asset(REGISTRY[name].hub_id)
        out[f"model:{name}"] = _stage(
            asset, root, lambda p, t=text_model, k=kwargs, s=i: build_vlm(p, t, seed=s, **k)
        )
    for i, name in enumerate(("vicuna-7b", "yi-6b-chat", "leo-7b-chat")):
        out[f"model:{name}"] = _stage(
            model_asset(REGISTRY[name].hub_id), root, lambda p, s=i: build_llm(p, seed=10 + s)
        )
    out["model:clip-vit-l-336"] = _stage(
        model_asset(REGISTRY["clip-vit-l-336"].hub_id), root, build_clip
    )
    out["model:dinov2-large"] = _stage(
        model_asset(REGISTRY["dinov2-large"].hub_id), root, build_dinov2
    )
    out["model:nllb-1.3b"] = _stage(
        model_asset(REGISTRY["nllb-1.3b"].hub_id), root, build_translator
    )
    out["model:llava-dinov2"] = build_vlm(
        root / "models" / "local" / "llava-dinov2", "llama", "dinov2", seed=7
    )
    if glotlid:
        out["lid"] = (
            _stage(GLOTLID, root, lambda p: build_glotlid(p / "model_v3.bin")) / "model_v3.bin"
        )
    builders = {
        "maxm": build_maxm,
        "llava-w": build_palo,
        "visit": build_visit,
        "multiq": build_multiq,
        "llava-pretrain": build_llava_pretrain,
    }
    for key, build in builders.items():
        out[f"dataset:{key}"] = _stage(DATASET_ASSETS[key], root, build)
    out["dataset:remedy-text"] = _stage(TEXT_DATA, root, build_text_data)
    out["llava-images"] = root / "datasets" / "llava-images"
    out["dataset:llava-instruct"] = _stage(
        DATASET_ASSETS["llava-instruct"],
        root,
        lambda p: build_llava_instruct(p, out["llava-images"]),
    )
    return out
