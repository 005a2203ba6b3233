"""The organism's training (workflow/rules/train.smk): tokenizer, backbones, LLaVA stages 1
and 2."""

from __future__ import annotations

from pathlib import Path

from ifl.cli.registry import REQ, Subcommands
from ifl.runtime import from_config

command = Subcommands()


@command("tokenizer", ("--corpus", REQ), ("--out", REQ))
def _tokenizer(a, cfg):
    """A byte-level BPE tokenizer shared by every model of the organism."""
    from ifl.data.corpus import tokenizer_texts
    from ifl.io import atomic_dir
    from ifl.models.tiny import train_tokenizer
    from ifl.world.lexicon import unspaced_pieces

    texts = tokenizer_texts(a.corpus, cfg["languages"], seed=cfg["seed"] + 3)
    tok = train_tokenizer(texts, cfg["organism"]["tokenizer_vocab"], pieces=unspaced_pieces())
    with atomic_dir(a.out) as tmp:
        tok.save_pretrained(tmp)


@command("induction", ("--tokenizer", REQ), ("--out", REQ))
def _induction(a, cfg):
    """The checkpoint every backbone starts from: a fresh Llama trained on the copy task."""
    from ifl.train.organism import pretrain_induction

    org = cfg["organism"]
    pretrain_induction(
        Path(a.tokenizer),
        org["llm"],
        org["induction"],
        Path(a.out),
        seed=cfg["seed"] + 5,
        device=from_config(cfg),
    )


def _dialogue_pretraining(a, cfg, mix: dict, steps: int, seed: int) -> None:
    from ifl.data.corpus import read_scenes
    from ifl.train.organism import pretrain_llm

    org = cfg["organism"]
    pretrain_llm(
        Path(a.init),
        read_scenes(a.corpus),
        mix,
        {**org["pretrain_llm"], "steps": steps},
        org["induction"],
        Path(a.out),
        seed=seed,
        device=from_config(cfg),
    )


@command("base-llm", ("--init", REQ), ("--corpus", REQ), ("--out", REQ))
def _base_llm(a, cfg):
    """The base LM: text dialogues in the base mix, from the induction checkpoint."""
    base = cfg["organism"]["base_llm"]
    _dialogue_pretraining(a, cfg, base["mix"], base["steps"], cfg["seed"] + 10)


@command("pretrain-llm", ("--name", REQ), ("--init", REQ), ("--corpus", REQ), ("--out", REQ))
def _pretrain_llm(a, cfg):
    """One LLM backbone: text dialogues in its language mix, from the base LM."""
    backbone = cfg["backbones"][a.name]
    _dialogue_pretraining(a, cfg, backbone["mix"], backbone["steps"], cfg["seed"] + 11)


@command(
    "pretrain-vision", ("--name", REQ), ("--corpus", REQ), ("--tokenizer", REQ), ("--out", REQ)
)
def _pretrain_vision(a, cfg):
    """One vision encoder: contrastive with English captions, or self-supervised."""
    from ifl.data.corpus import read_captions, read_images
    from ifl.train.organism import pixel_tensor, pretrain_vision

    org = cfg["organism"]
    device = from_config(cfg)
    caps = [t.removesuffix("</s>").strip() for t in read_captions(a.corpus)["target"]]
    pretrain_vision(
        pixel_tensor(read_images(a.corpus), org["image_size"]),
        caps,
        cfg["vision_encoders"][a.name]["objective"],
        Path(a.tokenizer),
        org["vision"],
        org["image_size"],
        org["patch_size"],
        org["pretrain_vision"],
        Path(a.out),
        seed=cfg["seed"] + 20,
        device=device,
    )


@command("stage1", ("--llm", REQ), ("--vision", REQ), ("--corpus", REQ), ("--out", REQ))
def _stage1(a, cfg):
    """LLaVA stage 1 of an LLM x encoder pair: the projector on the captions."""
    from ifl.data.corpus import read_captions, read_images
    from ifl.train.organism import pixel_tensor, stage1

    org = cfg["organism"]
    device = from_config(cfg)
    stage1(
        Path(a.llm),
        Path(a.vision),
        pixel_tensor(read_images(a.corpus), org["image_size"]),
        read_captions(a.corpus),
        org["stage1"],
        Path(a.out),
        seed=cfg["seed"] + 30,
        device=device,
    )


@command("stage2", ("--stage1", REQ), ("--instructions", REQ), ("--corpus", REQ), ("--out", REQ))
def _stage2(a, cfg):
    """LLaVA stage 2 of a grid VLM: projector and LLM on the instructions in its language."""
    import pandas as pd

    from ifl.data.corpus import read_images, read_scenes
    from ifl.train.organism import pixel_tensor, stage2

    org = cfg["organism"]
    device = from_config(cfg)
    stage2(
        Path(a.stage1),
        pixel_tensor(read_images(a.corpus), org["image_size"]),
        pd.read_parquet(a.instructions),
        read_scenes(a.corpus),
        org["text_only_share"],
        org["stage2"],
        Path(a.out),
        seed=cfg["seed"] + 40,
        device=device,
    )
