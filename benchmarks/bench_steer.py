"""Generation throughput of a tiny LLaVA with and without the steering hook.

Batch 32, 32 new tokens (forced: ``min_new_tokens``), greedy, KV cache on. Runs alternate
(plain, generated-steered, all-steered) so drift on a shared machine hits all of them alike;
the median of the repeats is reported with the overhead of the hook in percent (target < 5%).

    .venv/bin/python benchmarks/bench_steer.py --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _tiny_llava import QUESTIONS, build_tiny_llava, prompts, random_images  # noqa: E402

from ifl.models.layers import default_steer_layer, num_layers  # noqa: E402
from ifl.steer import language_vector, steering  # noqa: E402


def _tokens_per_second(model, enc, new_tokens: int, context) -> float:
    with context, torch.no_grad():
        start = time.perf_counter()
        out = model.generate(
            **enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False
        )
        elapsed = time.perf_counter() - start
    generated = out.shape[0] * (out.shape[1] - enc["input_ids"].shape[1])
    assert generated == out.shape[0] * new_tokens
    return generated / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model, processor = build_tiny_llava("llama", seed=0, hidden=128, n_layers=4, n_heads=4)
    questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(args.batch)]
    enc = processor(
        text=prompts(questions), images=random_images(args.batch), return_tensors="pt", padding=True
    )
    layer = default_steer_layer(num_layers(model))
    vector = language_vector(
        model,
        processor.tokenizer,
        "beschreibe dieses bild im detail .",
        "describe this image in detail .",
        layer,
    )
    runs = {
        "plain": lambda: nullcontext(),
        "steered (generated)": lambda: steering(model, vector, layer, positions="generated"),
        "steered (all)": lambda: steering(model, vector, layer, positions="all"),
    }
    for make in runs.values():  # warm-up
        _tokens_per_second(model, enc, args.new_tokens, make())
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, make in runs.items():
            rates[name].append(_tokens_per_second(model, enc, args.new_tokens, make()))

    print(
        f"tiny LLaVA (Llama hidden 128, 4 layers; steer layer {layer}), batch {args.batch}, "
        f"{args.new_tokens} new tokens, prompt {enc['input_ids'].shape[1]} tokens, "
        f"{args.repeats} repeats, {args.threads} thread(s)"
    )
    for name, values in rates.items():
        median = statistics.median(values)
        line = f"{name:>20}: median {median:8.1f} tokens/s  (min {min(values):.1f}, max {max(values):.1f})"
        if name != "plain":
            # paired by repeat: neighbouring runs share the machine's load at that moment
            paired = [1 - s / p for s, p in zip(values, rates["plain"], strict=True)]
            line += f"  overhead {100 * statistics.median(paired):+.1f}% (median of paired runs)"
        print(line)


if __name__ == "__main__":
    main()
