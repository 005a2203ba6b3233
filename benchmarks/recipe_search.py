"""The organism recipe's search as curves: each experiment changes one choice of the default
recipe and records what it does (benchmarks/records/recipe_search.csv; drawn in the organism
chapter). It reads a finished run of the default (``results/organism``), ~40 minutes on one core.

* ``induction-depth``: a fresh Llama of the organism's width on the copy task at 2 (default)
  and 3 layers; zero-shot lookup every 50 steps. The head forms abruptly, or not at all.
* ``induction-width``: the copy task at the default width (hidden 128, 4 heads) and at twice it
  (hidden 256, 8 heads of the same size); zero-shot lookup every 50 steps. Does a wider LM form
  the head as readily?
* ``copy-mixing``: English dialogues from the run's induction checkpoint, with the copy task in
  every step (default) and without; lookup every 50 steps. Without it the head is erased.
* ``presence-task``: English dialogues from the run's induction checkpoint with the copy task
  (default) and with a language-free presence task beside it (``<s> a1 b1 ... a4 b4 qa qb`` ->
  one of two fixed tokens: is the pair ``qa qb`` among the pairs?), the analogue for yes/no
  questions of what the copy task is for lookups; lookup and presence accuracy every 50 steps.
* ``language-steps``: the run's base LM continued on Vicuna's mix for twice the default steps;
  text-only accuracy per short-question kind in English and three other languages of the mix
  every 400 steps. How far a language at 1/17 of the mix is from the 0.80 target, and how fast
  it moves: what a second language would take.
* ``key-first``: the base LM and Vicuna's backbone trained again from the run's induction
  checkpoint on descriptions that, after the usual sentences, restate each object key first
  ("the large square: blue. the large blue object: square."), against the run's own backbone;
  text-only accuracy per kind and per key on scenes of two or more objects. The organism
  chapter's key-side figure says an answer is read better when it follows its key: is that what
  the backbones lack?
* ``stage2-lr``: stage 2 of vicuna-clip-en from the run's stage-1 checkpoint at lr 1e-3 (the
  first recipe's), 2e-4, 1e-4 and the default (the run's own checkpoint); fidelity of non-English
  queries per condition and English accuracy per condition on MaXM.
* ``stage2-steps``: stage 2 of vicuna-clip-en at the default steps (the run's own checkpoint),
  twice and four times as many; the same checks on all of MaXM's English items, and English
  accuracy per kind and condition. What would more visual instruction buy the image condition?

    .venv/bin/python benchmarks/recipe_search.py            # all experiments
    .venv/bin/python benchmarks/recipe_search.py --only stage2-lr --scale 0.1   # a quick look
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from transformers import (
    AutoTokenizer,
    LlamaForCausalLM,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from ifl import config as config_mod
from ifl import generate
from ifl.data.corpus import read_images, read_scenes
from ifl.io import write_csv
from ifl.models.tiny import build_llm
from ifl.organism_report import text_replies
from ifl.train.induction import content_vocab, copy_loss, lookup_probe
from ifl.train.loop import fit
from ifl.train.organism import pixel_tensor, pretrain_llm, stage2
from ifl.world.grammar import Renderer
from ifl.world.items import describe, item_from_json
from ifl.world.lexicon import concept_id
from ifl.world.oracle import oracle_correct, oracle_language
from ifl.world.tasks import text_checks

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = (
    "induction-depth", "induction-width", "copy-mixing", "presence-task", "language-steps",
    "key-first", "stage2-lr", "stage2-steps",
)  # fmt: skip
CPU = torch.device("cpu")
COLUMNS = ("experiment", "arm", "step", "metric", "value", "n", "seconds")
# What each experiment reads from the run.
NEEDS = {
    "induction-depth": ("models/tokenizer",),
    "induction-width": ("models/tokenizer",),
    "presence-task": ("models/induction", "data/corpus"),
    "key-first": ("models/induction", "models/llm/vicuna", "data/corpus"),
    "copy-mixing": ("models/induction", "data/corpus"),
    "language-steps": ("models/base_llm", "data/corpus"),
    "stage2-lr": ("models/stage1/vicuna-clip", "models/vlm/vicuna-clip-en", "data/tasks.parquet"),
    "stage2-steps": (
        "models/stage1/vicuna-clip",
        "models/vlm/vicuna-clip-en",
        "data/tasks.parquet",
    ),
}


def _rows(experiment: str, arm: str, curve: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Long rows (experiment, arm, step, metric, value) of the measured steps of a fit curve."""
    long = curve.melt(id_vars="step", value_vars=metrics, var_name="metric").dropna()
    n = np.where(long["metric"] == "lookup", 500, np.nan)  # lookup_accuracy's default n
    return long.assign(experiment=experiment, arm=arm, step=long["step"] + 1, n=n)


def _copy_curves(
    run: Path, org: dict, seed: int, scale: float, experiment: str, arms: dict[str, dict]
) -> pd.DataFrame:
    """A fresh Llama per arm (``org["llm"]`` updated by the arm) on the copy task."""
    tok = AutoTokenizer.from_pretrained(run / "models" / "tokenizer")
    task, vocab, out = org["induction"], content_vocab(tok), []
    for arm, change in arms.items():
        model = build_llm(tok, {**org["llm"], **change}, seed).train()

        def loss_fn(rng: np.random.Generator, model=model) -> torch.Tensor:
            return copy_loss(model, rng, task, vocab=vocab, bos_id=tok.bos_token_id,
                             batch_size=task["batch_size"])  # fmt: skip

        curve = fit(model.parameters(), loss_fn, steps=int(task["steps"] * scale), lr=task["lr"],
                    seed=seed, desc=f"{experiment} {arm}", probes=lookup_probe(model, tok),
                    probe_every=50)  # fmt: skip
        out.append(_rows(experiment, arm, curve, ["loss", "lookup"]))
    return pd.concat(out)


def induction_depth(run: Path, org: dict, seed: int, scale: float) -> pd.DataFrame:
    arms = {"2 layers": {"layers": 2}, "3 layers": {"layers": 3}}
    return _copy_curves(run, org, seed, scale, "induction-depth", arms)


def induction_width(run: Path, org: dict, seed: int, scale: float) -> pd.DataFrame:
    hidden, heads, inter = (org["llm"][k] for k in ("hidden", "heads", "intermediate"))
    arms = {
        f"hidden {hidden}": {},
        f"hidden {2 * hidden}": {
            "hidden": 2 * hidden,
            "heads": 2 * heads,
            "intermediate": 2 * inter,
        },
    }
    return _copy_curves(run, org, seed, scale, "induction-width", arms)


def _dialogues(run: Path, init: str, org: dict, mix: dict, schedule: dict, seed: int, **kw):
    with tempfile.TemporaryDirectory() as tmp:
        return pretrain_llm(run / "models" / init, read_scenes(run / "data" / "corpus"), mix,
                            schedule, org["induction"], Path(tmp) / "lm", seed=seed, device=CPU,
                            **kw)  # fmt: skip


def copy_mixing(run: Path, org: dict, seed: int, scale: float) -> pd.DataFrame:
    out = []
    for arm, weight in (("with the copy task", org["pretrain_llm"]["copy_weight"]), ("without", 0)):
        schedule = {**org["pretrain_llm"], "steps": int(400 * scale), "copy_weight": weight}
        curve = _dialogues(run, "induction", org, {"en": 1}, schedule, seed, probe_every=50)
        out.append(_rows("copy-mixing", arm, curve, ["loss", "lookup"]))
    return pd.concat(out)


def presence_batch(
    rng: np.random.Generator, n: int, vocab: tuple[int, int], bos_id: int, pairs: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """``<s> a1 b1 ... aP bP qa qb`` -> the first content token if ``qa qb`` is one of the pairs,
    else the second. Half the rows ask a pair; a quarter a key with another pair's value; a
    quarter a pair with one token that is nowhere in the context."""
    yes, no = vocab[0], vocab[0] + 1
    ids = np.arange(vocab[0] + 2, vocab[1])
    drawn = np.stack([rng.choice(ids, 2 * pairs + 1, replace=False) for _ in range(n)])
    a, b, foreign = drawn[:, :pairs], drawn[:, pairs : 2 * pairs], drawn[:, -1]
    rows = np.arange(n)
    i = rng.integers(pairs, size=n)
    other = (i + rng.integers(1, pairs, size=n)) % pairs
    case = rng.integers(4, size=n)  # 0, 1: asked pair present; 2: crossed pair; 3: foreign token
    qa, qb = a[rows, i], b[rows, i].copy()
    qb[case == 2] = b[rows, other][case == 2]
    side = rng.random(n) < 0.5
    qa = np.where((case == 3) & side, foreign, qa)
    qb = np.where((case == 3) & ~side, foreign, qb)
    seq = np.concatenate(
        [np.full((n, 1), bos_id), np.stack([a, b], 2).reshape(n, -1), qa[:, None], qb[:, None]], 1
    )
    return torch.from_numpy(seq), torch.from_numpy(np.where(case < 2, yes, no))


def presence_task(run: Path, org: dict, seed: int, scale: float) -> pd.DataFrame:
    def accuracy(model, tok) -> Callable[[], float]:
        x, y = presence_batch(
            np.random.default_rng(seed), 500, content_vocab(tok), tok.bos_token_id
        )

        def probe() -> float:
            with torch.inference_mode():
                return float((model(input_ids=x).logits[:, -1].argmax(-1) == y).float().mean())

        return probe

    out = []
    for arm, weight in (("copy task", 0.0), ("copy + presence task", 1.0)):

        def with_presence(model, rng, task, *, vocab, bos_id, batch_size, weight=weight):
            loss = copy_loss(model, rng, task, vocab=vocab, bos_id=bos_id, batch_size=batch_size)
            if weight:
                x, y = presence_batch(rng, batch_size, vocab, bos_id)
                loss = loss + weight * F.cross_entropy(model(input_ids=x).logits[:, -1], y)
            return loss

        schedule = {**org["pretrain_llm"], "steps": int(400 * scale)}
        with mock.patch("ifl.train.organism.copy_loss", with_presence):
            curve = _dialogues(run, "induction", org, {"en": 1}, schedule, seed,
                               probes={"presence": accuracy}, probe_every=50)  # fmt: skip
        out.append(_rows("presence-task", arm, curve, ["loss", "lookup", "presence"]))
    table = pd.concat(out)
    return table.assign(n=np.where(table["metric"] == "loss", np.nan, 500))


def key_first_describe(scene, lang: str, *, error_rate: float = 0.0, rng=None) -> str:
    """The usual description, then every object restated key first: "the large square: blue.
    the large blue object: square." (the question's own noun phrases and answer words)."""
    r = Renderer(lang, error_rate=error_rate, rng=rng)
    parts = [describe(scene, lang, error_rate=error_rate, rng=rng)]
    for o in scene.objects:
        shape, colour, size = (concept_id(a, getattr(o, a)) for a in ("shape", "colour", "size"))
        answer = r.lang.answers
        colour_word = r.phrase(answer["colour"], slots={"colour": colour}, g=r.lang.gender(shape))
        shape_word = r.phrase(
            answer["shape"], slots={"shape": shape}, g=r.lang.gender("noun.object")
        )
        parts.append(f"{r.np('def', shape=shape, size=size)}: {colour_word}.")
        parts.append(f"{r.np('obj_def', colour=colour, size=size)}: {shape_word}.")
    return r.lang.sentence_sep.join(parts)


def key_first(run: Path, cfg: dict, seed: int, scale: float) -> pd.DataFrame:
    org, vicuna = cfg["organism"], cfg["backbones"]["vicuna"]
    languages = ["en", "de", "fr", "zh"]
    rows = []
    for arm in ("run's descriptions", "key-first descriptions"):
        with ExitStack() as stack:
            model_dir = run / "models" / "llm" / "vicuna"
            if arm == "key-first descriptions":  # training data and checks both read key first
                for target in ("ifl.data.organism.describe", "ifl.world.tasks.describe"):
                    stack.enter_context(mock.patch(target, key_first_describe))
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
                scenes = read_scenes(run / "data" / "corpus")
                for name, init, mix, steps in (
                    ("base", run / "models" / "induction", org["base_llm"]["mix"], org["base_llm"]["steps"]),
                    ("vicuna", tmp / "base", vicuna["mix"], vicuna["steps"]),
                ):  # fmt: skip
                    schedule = {**org["pretrain_llm"], "steps": int(steps * scale)}
                    pretrain_llm(init, scenes, mix, schedule, org["induction"], tmp / name,
                                 seed=seed, device=CPU, probe_every=10**9)  # fmt: skip
                model_dir = tmp / "vicuna"
            tok = AutoTokenizer.from_pretrained(model_dir)
            model = LlamaForCausalLM.from_pretrained(model_dir).eval()
            replies = text_replies(model, tok, text_checks(languages, 100, seed=seed + 3000))
        by_kind = replies.groupby(["language", "kind"])["correct"].agg(["mean", "size"])
        keyed = replies[(replies["objects"] > 1) & replies["key"].notna()]
        by_key = keyed.groupby(["language", "kind", "key"])["correct"].agg(["mean", "size"])
        for (lang, *cell), (value, n) in [*by_kind.iterrows(), *by_key.iterrows()]:
            rows.append({"experiment": "key-first", "arm": arm, "step": vicuna["steps"],
                         "metric": "/".join([lang, *cell]), "value": value, "n": n})  # fmt: skip
    return pd.DataFrame(rows)


def language_steps(run: Path, cfg: dict, seed: int, scale: float) -> pd.DataFrame:
    org, vicuna = cfg["organism"], cfg["backbones"]["vicuna"]
    languages = ["en", "de", "hi", "zh"]
    checks = text_checks(languages, 25, seed=seed + 2000)

    def accuracy(model, tok) -> Callable[[], dict[str, float]]:
        def probe() -> dict[str, float]:
            r = text_replies(model, tok, checks, desc="check")
            acc = r.groupby(["language", "kind"])["correct"].mean()
            return {f"{lang}/{kind}": v for (lang, kind), v in acc.items()}

        return probe

    schedule = {**org["pretrain_llm"], "steps": int(2 * vicuna["steps"] * scale)}
    curve = _dialogues(run, "base_llm", org, vicuna["mix"], schedule, seed,
                       probes={"accuracy": accuracy}, probe_every=max(1, int(400 * scale)))  # fmt: skip
    metrics = [c for c in curve.columns if c.startswith("accuracy.")] + ["lookup"]
    out = _rows("language-steps", "vicuna mix", curve, metrics)
    out["metric"] = out["metric"].str.removeprefix("accuracy.")
    return out.assign(n=np.where(out["metric"] == "lookup", 500, 25))  # 25 checks per cell


def _vlm_check(
    model_dir: Path, tasks: pd.DataFrame, *, by_kind: bool = False
) -> list[tuple[str, float, int]]:
    """(metric, value, n) of a VLM on MaXM tasks: fidelity of the non-English queries and English
    accuracy per condition (and per kind), by the lexicon oracle."""
    model = LlavaForConditionalGeneration.from_pretrained(model_dir).eval()
    processor = LlavaProcessor.from_pretrained(model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        replies = Path(tmp) / "replies.parquet"
        r = generate.run(model, processor, generate.queries(tasks), replies, batch_size=32,
                         max_new_tokens=8)  # fmt: skip
    r = r.merge(tasks[["task_id", "item", "kind"]], on="task_id")
    pairs = zip(r["reply"], r["language"], strict=True)
    r["faithful"] = [oracle_language(t, hint=lang) == lang for t, lang in pairs]
    r["correct"] = [
        oracle_correct(t, item_from_json(i)) for t, i in zip(r["reply"], r["item"], strict=True)
    ]
    other, en = r[r["language"] != "en"], r[r["language"] == "en"]
    cells = [
        (other.groupby(["condition"])["faithful"], "fidelity/{}"),
        (en.groupby(["condition"])["correct"], "English accuracy/{}"),
    ]
    if by_kind:
        cells.append((en.groupby(["condition", "kind"])["correct"], "English accuracy/{}/{}"))
    return [
        (name.format(*key), float(g.mean()), len(g))
        for grouped, name in cells
        for key, g in grouped
    ]


def _stage2_arms(
    run: Path,
    cfg: dict,
    scale: float,
    experiment: str,
    arms: dict[str, dict],
    per_language: int,
    *,
    by_kind: bool = False,
) -> pd.DataFrame:
    """Stage 2 of vicuna-clip-en from the run's stage-1 checkpoint once per arm (``organism.stage2``
    updated by the arm; the default arm is the run's own checkpoint), checked on MaXM."""
    org = cfg["organism"]
    tasks = pd.read_parquet(run / "data" / "tasks.parquet")
    tasks = tasks[(tasks["benchmark"] == "MaXM") & tasks["language"].isin(["en", "de", "hi", "zh"])]
    tasks = tasks.groupby("language").head(max(4, int(per_language * scale)))
    corpus = run / "data" / "corpus"
    pixels = pixel_tensor(read_images(corpus), org["image_size"])
    scenes = read_scenes(corpus)
    instructions = pd.read_parquet(run / "data" / "instruct-en.parquet")
    rows = []
    for arm, change in arms.items():
        schedule = {**org["stage2"], **change}
        schedule["steps"] = int(schedule["steps"] * scale)
        with tempfile.TemporaryDirectory() as tmp:
            if schedule == org["stage2"]:
                out_dir = run / "models" / "vlm" / "vicuna-clip-en"  # the run's own checkpoint
            else:
                out_dir = Path(tmp) / "vlm"
                stage2(run / "models" / "stage1" / "vicuna-clip", pixels, instructions, scenes,
                       org["text_only_share"], schedule, out_dir, seed=cfg["seed"] + 40,
                       device=CPU)  # fmt: skip
            found = _vlm_check(out_dir, tasks, by_kind=by_kind)
        rows += [
            {"experiment": experiment, "arm": arm, "step": schedule["steps"], "metric": metric,
             "value": value, "n": n}
            for metric, value, n in found
        ]  # fmt: skip
    return pd.DataFrame(rows)


def stage2_lr(run: Path, cfg: dict, seed: int, scale: float) -> pd.DataFrame:
    # the default is one of them whatever it is
    lrs = sorted({1e-3, 2e-4, 1e-4, cfg["organism"]["stage2"]["lr"]}, reverse=True)
    arms = {f"lr {lr:g}": {"lr": lr} for lr in lrs}
    return _stage2_arms(run, cfg, scale, "stage2-lr", arms, 50)


def stage2_steps(run: Path, cfg: dict, seed: int, scale: float) -> pd.DataFrame:
    steps = cfg["organism"]["stage2"]["steps"]
    arms = {f"{k * steps} steps": {"steps": k * steps} for k in (1, 2, 4)}
    return _stage2_arms(run, cfg, scale, "stage2-steps", arms, 100, by_kind=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "config.yaml"))
    ap.add_argument("--only", nargs="*", choices=EXPERIMENTS, default=list(EXPERIMENTS))
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of every step budget")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "records" / "recipe_search.csv"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    cfg = config_mod.load(a.config)
    run = ROOT / "results" / cfg["run_name"]
    missing = [run / p for name in a.only for p in NEEDS[name] if not (run / p).exists()]
    if missing:
        raise SystemExit(f"recipe_search reads a finished run of the default; missing {missing[0]}")
    seed = cfg["seed"] + 5
    steps = {
        "induction-depth": lambda: induction_depth(run, cfg["organism"], seed, a.scale),
        "induction-width": lambda: induction_width(run, cfg["organism"], seed, a.scale),
        "presence-task": lambda: presence_task(run, cfg["organism"], seed, a.scale),
        "key-first": lambda: key_first(run, cfg, seed, a.scale),
        "copy-mixing": lambda: copy_mixing(run, cfg["organism"], seed, a.scale),
        "language-steps": lambda: language_steps(run, cfg, seed, a.scale),
        "stage2-lr": lambda: stage2_lr(run, cfg, seed, a.scale),
        "stage2-steps": lambda: stage2_steps(run, cfg, seed, a.scale),
    }
    out = Path(a.out)
    done = pd.read_csv(out) if out.exists() else pd.DataFrame(columns=list(COLUMNS))
    for name in a.only:
        t0 = time.perf_counter()
        table = steps[name]()
        seconds = time.perf_counter() - t0
        table = table.assign(step=table["step"].astype(int), seconds=round(seconds, 1))
        done = pd.concat([done[done["experiment"] != name], table])[list(COLUMNS)]
        write_csv(done, out)  # after each experiment: an interrupted search keeps what it measured
        last = table.sort_values("step").groupby(["arm", "metric"])["value"].last()
        print(f"== {name} ({seconds:.0f} s)\n{last.round(3).to_string()}", flush=True)


if __name__ == "__main__":
    main()
