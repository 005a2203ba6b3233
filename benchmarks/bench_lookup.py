"""How many training steps the organism's LLM shape needs to learn an in-context lookup.

Answering "What colour is the circle?" about an image means finding the image token that holds
a circle and copying its colour. This script times that skill on a toy task with a freshly
initialised Llama of the organism's size (``organism.llm`` of config.yaml): four key/value
pairs in context, then a query key; the target is the value paired with it.

* ``fused-last``: each pair is one input vector (key + value embeddings), as an image token
  carries all attributes of its patch; the query key is the last token (one hop).
* ``fused-gap``: the same, but three fixed tokens follow the query key, as " ? ASSISTANT:"
  follows the question's noun in the LLaVA prompt (two hops: move the key, then look up).
* ``sequential``: key and value are separate tokens, as in a text description; the lookup
  needs an induction head (previous-token head, then match).

Accuracy is on 500 fresh examples after a full schedule of each step budget (chance is 1/4
when the model picks any value in context), beside the number of examples of each short-question
kind in the organism's stage 2 (from the config).

``--backbones`` adds pretrained LMs (by default the run's: the induction checkpoint, the base LM
and the backbones under ``results/organism/models``): the sequential lookup zero-shot, with
their own vocabulary (keys and values are distinct random ordinary tokens after ``<s>``), which
they pass only if the induction head of their copy-task phase survived the dialogue pretraining.

    .venv/bin/python benchmarks/bench_lookup.py --steps 125 250 500 1000 2000
    .venv/bin/python benchmarks/bench_lookup.py --modes --backbones results/organism/models/llm/*
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import LlamaForCausalLM

from ifl import config as config_mod
from ifl.data.organism import KINDS, VISUAL_FAMILIES
from ifl.models.tiny import llama_config
from ifl.organism_report import llm_lookup
from ifl.train.loop import fit

KEYS, VALUES, FILLER = np.arange(100, 140), np.arange(500, 540), np.array([950, 951, 952])
MODES = ("fused-last", "fused-gap", "sequential")
BATCH = 32


def _examples(rng: np.random.Generator, n: int, pairs: int) -> tuple[np.ndarray, ...]:
    keys = np.stack([rng.choice(KEYS, pairs, replace=False) for _ in range(n)])
    values = rng.choice(VALUES, size=(n, pairs))
    asked = rng.integers(pairs, size=n)
    rows = np.arange(n)
    return keys, values, keys[rows, asked], values[rows, asked]


def _inputs(model, mode: str, keys, values, query, *, gap: bool) -> torch.Tensor:
    """Input embeddings of a batch: the pairs, the query key and (with ``gap``) the fillers."""
    emb = model.get_input_embeddings()
    n = len(query)
    tail = [query[:, None]] + ([np.tile(FILLER, (n, 1))] if gap else [])
    tail_emb = emb(torch.from_numpy(np.concatenate(tail, 1)))
    if mode == "sequential":
        pairs = np.stack([keys, values], 2).reshape(n, -1)
        return torch.cat([emb(torch.from_numpy(pairs)), tail_emb], 1)
    fused = emb(torch.from_numpy(keys)) + emb(torch.from_numpy(values))
    return torch.cat([fused, tail_emb], 1)


def lookup_accuracy(mode: str, steps: int, arch: dict, *, pairs: int = 4, seed: int = 0) -> float:
    """Train a fresh Llama of shape ``arch`` on one lookup ``mode`` and return held-out accuracy."""
    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config(arch, vocab_size=1000))
    gap = mode == "fused-gap"

    def loss_fn(rng: np.random.Generator) -> torch.Tensor:
        keys, values, query, answer = _examples(rng, BATCH, pairs)
        x = _inputs(model, mode, keys, values, query, gap=gap)
        logits = model(inputs_embeds=x).logits[:, -1]
        return F.cross_entropy(logits, torch.from_numpy(answer))

    fit(model.parameters(), loss_fn, steps=steps, lr=1e-3, seed=seed, desc=f"{mode}-{steps}")
    keys, values, query, answer = _examples(np.random.default_rng(seed + 1), 500, pairs)
    with torch.no_grad():
        logits = model(inputs_embeds=_inputs(model, mode, keys, values, query, gap=gap)).logits
    return float((logits[:, -1].argmax(-1).numpy() == answer).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "config.yaml"))
    ap.add_argument("--steps", type=int, nargs="+", default=[125, 250, 500, 1000, 2000])
    ap.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES)
    ap.add_argument(
        "--backbones",
        nargs="*",
        default=None,
        help="pretrained LM folders (zero-shot); default: the run's, when it has any",
    )
    a = ap.parse_args()
    torch.set_num_threads(1)
    cfg = config_mod.load(a.config)
    organism = cfg["organism"]
    if a.backbones is None:
        models = Path(a.config).resolve().parent / "results" / cfg["run_name"] / "models"
        found = [models / "induction", models / "base_llm", *sorted(models.glob("llm/*"))]
        a.backbones = [d for d in found if (d / "config.json").is_file()]
    arch, stage2 = organism["llm"], organism["stage2"]
    short = VISUAL_FAMILIES["short"] / sum(VISUAL_FAMILIES.values())
    visual = 1 - organism["text_only_share"]
    per_kind = stage2["steps"] * stage2["batch_size"] * visual * short / len(KINDS["short"])
    print(f"Llama {arch}, 4 key/value pairs, batch {BATCH}, lr 1e-3; held-out accuracy (n=500)")
    print(
        f"The organism's stage 2 draws about {per_kind:,.0f} examples of each short-question kind"
        f" ({per_kind / BATCH:.0f} steps of this toy)."
    )
    print(f"{'mode':<12} " + " ".join(f"{s:>5} steps" for s in a.steps) + "   seconds")
    for mode in a.modes:
        t0 = time.perf_counter()
        accs = [lookup_accuracy(mode, s, arch) for s in a.steps]
        cells = " ".join(f"{acc:>11.2f}" for acc in accs)
        print(f"{mode:<12} {cells}   {time.perf_counter() - t0:7.0f}", flush=True)
    if a.backbones:
        table = llm_lookup(a.backbones)
        print("pipeline backbones, sequential lookup zero-shot (4 pairs, n=500):")
        for r in table.itertuples():
            print(f"  {r.checkpoint:<12} {r.accuracy:.3f}")


if __name__ == "__main__":
    main()
