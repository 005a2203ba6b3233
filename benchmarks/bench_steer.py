"""Generation throughput of a tiny LLaVA with and without the steering hook.

Batch 32, 32 new tokens (forced: ``min_new_tokens``), greedy, KV cache on. Runs alternate
(plain, generated-steered, all-steered, in a rotating order) so drift on a shared machine hits
all of them alike; medians and bests of the repeats are reported with the overhead of the hook
in percent (target < 5%), and the hook's own cost is timed in isolation against one step.

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
from ifl.steering.vectors import language_vector, steering  # noqa: E402


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
    names = list(runs)
    for repeat in range(args.repeats):
        # rotate the order so that no variant always runs first (or last) in a repeat
        for name in names[repeat % 3 :] + names[: repeat % 3]:
            rates[name].append(_tokens_per_second(model, enc, args.new_tokens, runs[name]()))

    print(
        f"tiny LLaVA (Llama hidden 128, 4 layers; steer layer {layer}), batch {args.batch}, "
        f"{args.new_tokens} new tokens, prompt {enc['input_ids'].shape[1]} tokens, "
        f"{args.repeats} repeats, {args.threads} thread(s)"
    )
    best_plain = max(rates["plain"])
    for name, values in rates.items():
        median = statistics.median(values)
        line = f"{name:>20}: median {median:8.1f} tokens/s, best {max(values):8.1f}"
        if name != "plain":
            # paired by repeat: neighbouring runs share the machine's load at that moment
            paired = [1 - s / p for s, p in zip(values, rates["plain"], strict=True)]
            best = 1 - max(values) / best_plain
            line += f"  overhead: median paired {100 * statistics.median(paired):+.1f}%"
            line += f", best vs best {100 * best:+.1f}%"
        print(line)

    # the hook's own cost, timed in isolation, against the time of one generation step
    step_seconds = args.batch / statistics.median(rates["plain"])
    per_call = _hook_seconds(vector, args.batch)
    print(
        f"hook alone: {1e6 * per_call:.1f} us per call (one call per forward), "
        f"generation step {1e3 * step_seconds:.2f} ms -> {100 * per_call / step_seconds:.2f}%"
    )


class _PassThrough(torch.nn.Module):
    def forward(self, hidden: torch.Tensor, **_kwargs) -> torch.Tensor:
        return hidden


class _Stack(torch.nn.Module):
    """A stand-in decoder stack whose one layer does nothing, to time the hook alone."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList([_PassThrough()])


def _hook_seconds(vector: torch.Tensor, batch: int, calls: int = 5000) -> float:
    """Extra seconds per layer call on one decode position with the steering hook installed."""
    stack = _Stack()
    hidden = torch.zeros(batch, 1, vector.shape[0])

    def time_calls() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            stack.layers[0](hidden, use_cache=True)
        return (time.perf_counter() - start) / calls

    plain = min(time_calls() for _ in range(3))
    with steering(stack, vector, 0):
        hooked = min(time_calls() for _ in range(3))
    return max(hooked - plain, 0.0)


if __name__ == "__main__":
    main()
