"""``ifl``: one entry point, one subcommand per Snakemake rule.

Every subcommand reads the resolved config (``--config``), its inputs by path, and writes its
outputs atomically. Errors in the inputs end the command with a one-line message.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ifl import config as config_mod

log = logging.getLogger("ifl")
COMMANDS: dict[str, tuple[Callable[[argparse.Namespace, dict], None], list[tuple]]] = {}


def command(name: str, *args: tuple):
    """Register ``fn`` as subcommand ``name`` with argparse ``args`` (name, kwargs) pairs."""

    def wrap(fn):
        COMMANDS[name] = (fn, list(args))
        return fn

    return wrap


def _device(cfg: dict):
    from ifl.runtime import setup

    return setup(cfg["device"], cfg["threads"], cfg["seed"])


def _scenes(corpus: Path) -> list:
    from ifl.world.scenes import Scene

    return [Scene.from_dict(d) for d in json.loads((corpus / "scenes.json").read_text(encoding="utf-8"))]


def _pixels(corpus: Path, cfg: dict):
    from ifl.train.organism import pixel_tensor

    return pixel_tensor(np.load(corpus / "images.npy"), cfg["organism"]["image_size"])


@command("tasks", ("--out", {"required": True}), ("--image-dir", {"required": True}))
def _tasks(a, cfg):
    from ifl.io import write_parquet
    from ifl.world.tasks import build_tasks

    org = cfg["organism"]
    tasks = build_tasks(org["items_per_benchmark"], cfg["languages"], seed=cfg["seed"],
                        image_dir=Path(a.image_dir), image_size=org["image_size"])
    write_parquet(tasks, a.out)


@command("corpus", ("--out", {"required": True}))
def _corpus(a, cfg):
    from ifl.data.organism import captions, render_scenes, sample_scenes, visual_instructions, visual_items
    from ifl.io import atomic_dir
    from ifl.world.items import item_to_json

    org = cfg["organism"]
    scenes = sample_scenes(org["train_scenes"], cfg["seed"] + 1)
    s2 = org["stage2"]
    items = visual_items(scenes, max(s2["batch_size"], s2["steps"] * s2["batch_size"]), cfg["seed"] + 2)
    with atomic_dir(a.out) as tmp:
        (tmp / "scenes.json").write_text(json.dumps([s.to_dict() for s in scenes]), encoding="utf-8")
        np.save(tmp / "images.npy", render_scenes(scenes, org["image_size"]))
        captions(scenes).to_parquet(tmp / "captions.parquet", index=False)
        pd.DataFrame({"scene": [s for s, _ in items], "item": [item_to_json(i) for _, i in items]}).to_parquet(
            tmp / "visual_items.parquet", index=False)
        visual_instructions(items, "en", error_rate=0.0, seed=cfg["seed"]).to_parquet(
            tmp / "instruct-en.parquet", index=False)


@command("tokenizer", ("--corpus", {"required": True}), ("--out", {"required": True}))
def _tokenizer(a, cfg):
    from ifl.data.organism import text_dialogues
    from ifl.io import atomic_dir
    from ifl.models.tiny import train_tokenizer

    corpus = Path(a.corpus)
    scenes = _scenes(corpus)
    langs = {lang: 1.0 for lang in sorted(set(cfg["languages"]) | {"en", "zh", "de"})}
    texts = text_dialogues(scenes, langs, 20_000, cfg["seed"] + 3)
    lines = (texts["prompt"] + texts["target"]).tolist()
    lines += pd.read_parquet(corpus / "captions.parquet")["target"].tolist()
    tok = train_tokenizer(lines, cfg["organism"]["tokenizer_vocab"])
    with atomic_dir(a.out) as tmp:
        tok.save_pretrained(tmp)


@command("translate", ("--corpus", {"required": True}), ("--lang", {"required": True}), ("--out", {"required": True}))
def _translate(a, cfg):
    from ifl.data.organism import visual_instructions
    from ifl.io import write_parquet
    from ifl.world.items import item_from_json

    items = pd.read_parquet(Path(a.corpus) / "visual_items.parquet")
    pairs = [(int(s), item_from_json(i)) for s, i in zip(items["scene"], items["item"], strict=True)]
    df = visual_instructions(pairs, a.lang, error_rate=cfg["organism"]["translation_error_rate"], seed=cfg["seed"] + 4)
    write_parquet(df, a.out)


@command("pretrain-llm", ("--name", {"required": True}), ("--corpus", {"required": True}),
         ("--tokenizer", {"required": True}), ("--out", {"required": True}))
def _pretrain_llm(a, cfg):
    from ifl.train.organism import pretrain_llm

    org = cfg["organism"]
    pretrain_llm(Path(a.tokenizer), _scenes(Path(a.corpus)), cfg["backbones"][a.name]["mix"], org["llm"],
                 org["pretrain_llm"], Path(a.out), seed=cfg["seed"] + 10, device=_device(cfg))


@command("pretrain-vision", ("--name", {"required": True}), ("--corpus", {"required": True}),
         ("--tokenizer", {"required": True}), ("--out", {"required": True}))
def _pretrain_vision(a, cfg):
    from ifl.train.organism import pretrain_vision

    org, corpus = cfg["organism"], Path(a.corpus)
    device = _device(cfg)
    caps = [t.removesuffix("</s>").strip() for t in pd.read_parquet(corpus / "captions.parquet")["target"]]
    pretrain_vision(_pixels(corpus, cfg), caps, cfg["vision_encoders"][a.name]["objective"], Path(a.tokenizer),
                    org["vision"], org["image_size"], org["patch_size"], org["pretrain_vision"], Path(a.out),
                    seed=cfg["seed"] + 20, device=device)


@command("stage1", ("--llm", {"required": True}), ("--vision", {"required": True}),
         ("--corpus", {"required": True}), ("--out", {"required": True}))
def _stage1(a, cfg):
    from ifl.train.organism import stage1

    corpus = Path(a.corpus)
    device = _device(cfg)
    stage1(Path(a.llm), Path(a.vision), _pixels(corpus, cfg), pd.read_parquet(corpus / "captions.parquet"),
           cfg["organism"]["stage1"], Path(a.out), seed=cfg["seed"] + 30, device=device)


@command("stage2", ("--stage1", {"required": True}), ("--instructions", {"required": True}),
         ("--corpus", {"required": True}), ("--out", {"required": True}))
def _stage2(a, cfg):
    from ifl.train.organism import stage2

    corpus, org = Path(a.corpus), cfg["organism"]
    device = _device(cfg)
    stage2(Path(a.stage1), _pixels(corpus, cfg), pd.read_parquet(a.instructions), _scenes(corpus),
           org["text_only_share"], org["stage2"], Path(a.out), seed=cfg["seed"] + 40, device=device)


@command("generate", ("--model", {"required": True}), ("--tasks", {"required": True}),
         ("--shard", {"type": int, "required": True}), ("--shards", {"type": int, "required": True}),
         ("--name", {"required": True}), ("--out", {"required": True}))
def _generate(a, cfg):
    from ifl import generate

    g = cfg["generate"]
    model, processor = generate.load_vlm(a.model, _device(cfg))
    q = generate.shard(generate.queries(pd.read_parquet(a.tasks)), a.shard, a.shards)
    generate.run(model, processor, q, a.out, batch_size=g["batch_size"], max_new_tokens=g["max_new_tokens"],
                 do_sample=g["do_sample"], temperature=g["temperature"], seed=cfg["seed"], model_name=a.name)


@command("measure", ("--generations", {"nargs": "+", "required": True}), ("--tasks", {"required": True}),
         ("--out", {"required": True}))
def _measure(a, cfg):
    from ifl import lid
    from ifl.io import write_parquet

    gens = pd.concat([pd.read_parquet(p) for p in a.generations], ignore_index=True)
    path = cfg["lid"]["model"] or lid.default_lid176_path()
    measured = lid.measure(gens, lid.LanguageIdentifier(path, kind=cfg["lid"]["kind"]))
    write_parquet(measured, a.out)


@command("fidelity", ("--measured", {"required": True}), ("--out", {"required": True}))
def _fidelity(a, cfg):
    from ifl.io import write_csv
    from ifl.stats.effects import fidelity_table

    write_csv(fidelity_table(pd.read_parquet(a.measured), outcome="fidelity_proxy"), a.out)


@command("summary", ("--fidelity", {"required": True}), ("--out", {"required": True}))
def _summary(a, cfg):
    from ifl.io import write_json
    from ifl.summary import fidelity_summary

    write_json({"run_name": cfg["run_name"], "fidelity": fidelity_summary(pd.read_csv(a.fidelity))}, a.out)


@command("rulegraph", ("--dot", {"required": True}), ("--out", {"required": True}))
def _rulegraph(a, cfg):
    from ifl.dag import draw, parse_rulegraph

    draw(parse_rulegraph(Path(a.dot).read_text(encoding="utf-8")), a.out)


@command("book", ("--src", {"required": True}), ("--run-dir", {"required": True}),
         ("--notebooks", {"nargs": "+", "required": True}), ("--out", {"required": True}))
def _book(a, cfg):
    from ifl.book import build

    print(build(Path(a.src), Path(a.run_dir), [Path(n) for n in a.notebooks], Path(a.out)))


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run one subcommand; returns the exit code."""
    parser = argparse.ArgumentParser(prog="ifl", description=__doc__)
    parser.add_argument("--config", required=True, help="resolved config YAML (results/<run>/config.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, args) in COMMANDS.items():
        p = sub.add_parser(name)
        for flag, kwargs in args:
            p.add_argument(flag, **kwargs)
    a = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        cfg = config_mod.load(a.config)
        COMMANDS[a.command][0](a, cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"ifl {a.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
