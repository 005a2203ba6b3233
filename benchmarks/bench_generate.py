"""Reply throughput of ``ifl.generate.run`` on an organism-sized VLM: batch 32 against batch 1.

The VLM has config.yaml's organism sizes (LLM and ViT widths and depths, image and patch size,
BPE vocabulary), read from the file, with random weights, and answers
short-answer (MaXM) queries in both conditions with 8 new tokens, greedy. The whole path is
timed: image loading, the processor, left-padded ``generate`` with the KV cache and the checkpoint
files. Runs alternate between batch sizes so that drift on a shared machine hits all of them; the
best of the repeats is reported (target: >= 8x at batch 32).

Both at one torch thread (how the pipeline's jobs run: one job per core) and with every core of
the machine: a tiny model's prefill is compute-bound already at batch 1, so on one thread batching
only removes the per-token overhead, while with several cores the batched matrices also use the
cores that one-by-one decoding leaves idle.

    .venv/bin/python benchmarks/bench_generate.py --queries 256 --repeats 2
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import pandas as pd
import torch
import yaml

from ifl import LANGUAGES
from ifl.data.organism import sample_scenes, text_dialogues
from ifl.generate import queries, run
from ifl.models.prompts import IMAGE_TOKEN
from ifl.models.tiny import build_llm, build_vision, build_vlm, train_tokenizer
from ifl.world.tasks import build_tasks

_ORG = yaml.safe_load((Path(__file__).parents[1] / "config.yaml").read_text())["organism"]
LLM, VISION = _ORG["llm"], _ORG["vision"]
IMAGE_SIZE, PATCH_SIZE, VOCAB = _ORG["image_size"], _ORG["patch_size"], _ORG["tokenizer_vocab"]


def build(root: Path, n_queries: int, seed: int = 0):
    """The organism-sized random VLM, its processor and ``n_queries`` MaXM queries (both conditions)."""
    scenes = sample_scenes(200, seed)
    texts = text_dialogues(scenes, dict.fromkeys(LANGUAGES, 1.0), 3000, seed)
    tokenizer = train_tokenizer((texts["prompt"] + texts["target"]).tolist(), VOCAB)
    llm = build_llm(tokenizer, LLM, seed)
    vision = build_vision(VISION, IMAGE_SIZE, PATCH_SIZE, seed)
    model, processor = build_vlm(llm, vision, tokenizer, seed)
    model.eval()
    n_tasks = -(-n_queries // 2)
    n_items = -(-n_tasks // len(LANGUAGES))
    tasks = build_tasks({"MaXM": n_items}, list(LANGUAGES), seed=seed, image_dir=root / "images")
    q = queries(tasks).iloc[:n_queries].reset_index(drop=True)
    return model, processor, q


def padding_share(model, processor, q: pd.DataFrame, batch_size: int, out: Path) -> float:
    """Share of prompt positions that are padding in the batches ``run`` actually forms."""
    tok, n_image = processor.tokenizer, (IMAGE_SIZE // PATCH_SIZE) ** 2
    seen: list[pd.DataFrame] = []

    def record(batch: pd.DataFrame):
        seen.append(batch)
        return nullcontext()

    run(model, processor, q, out, batch_size=batch_size, max_new_tokens=1, context=record)
    out.unlink()
    real = padded = 0
    for batch in seen:
        texts = [p.replace(IMAGE_TOKEN, IMAGE_TOKEN * n_image) for p in batch["prompt"]]
        lengths = [len(ids) for ids in tok(texts)["input_ids"]]
        real, padded = real + sum(lengths), padded + len(lengths) * max(lengths)
    return 1 - real / padded


def replies_per_second(model, processor, q: pd.DataFrame, batch_size: int, out: Path) -> float:
    """Replies per second of one uninterrupted ``generate.run`` (fresh output, no checkpoints)."""
    start = time.perf_counter()
    table = run(model, processor, q, out, batch_size=batch_size, max_new_tokens=8, do_sample=False)
    elapsed = time.perf_counter() - start
    out.unlink()
    if len(table) != len(q):
        raise RuntimeError(f"expected {len(q)} replies, got {len(table)}")
    return len(q) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 1])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        model, processor, q = build(root, args.queries)
        print(
            f"organism VLM (Llama hidden {LLM['hidden']}, {LLM['layers']} layers; ViT hidden "
            f"{VISION['hidden']}, {VISION['layers']} layers; vocab {len(processor.tokenizer)}), "
            f"{len(q)} MaXM queries ({q['condition'].value_counts().to_dict()}), 8 new tokens, "
            f"greedy; built in {time.perf_counter() - t0:.1f} s"
        )
        padding = {
            b: padding_share(model, processor, q, b, root / "pad.parquet") for b in args.batch_sizes
        }
        for threads in dict.fromkeys(args.threads):
            torch.set_num_threads(threads)
            run(
                model,
                processor,
                q.iloc[:32],
                root / "warmup.parquet",
                batch_size=8,
                max_new_tokens=8,
            )
            rates: dict[int, list[float]] = {b: [] for b in args.batch_sizes}
            for repeat in range(args.repeats):
                order = args.batch_sizes[repeat % 2 :] + args.batch_sizes[: repeat % 2]
                for b in order:
                    rates[b].append(
                        replies_per_second(model, processor, q, b, root / f"b{b}.parquet")
                    )
            base = max(rates[min(rates)])
            for b, values in rates.items():
                best = max(values)
                print(
                    f"{threads} thread(s), batch {b:>3}: best {best:7.1f} replies/s ({len(values)} runs: "
                    f"{', '.join(f'{v:.1f}' for v in values)}), speed-up vs batch {min(rates)}: "
                    f"{best / base:.1f}x, prompt padding {100 * padding[b]:.0f}%"
                )


if __name__ == "__main__":
    main()
