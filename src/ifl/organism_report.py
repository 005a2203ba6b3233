"""Quality checks of the model organism: is it a fair stand-in for the paper's models?

* the LID model recognises the world's sentences in each language (``lid_rates``);
* each LLM backbone answers text-only questions in the query language, and correctly, per
  language of its mix and question kind (``llm_text_table``), and reads its context by
  induction (``llm_lookup``);
* each VLM answers in the query language when the image is replaced by its description
  (``vlm_fidelity``);
* each VLM answers English short questions about its images correctly (``vlm_accuracy``), per
  question kind and condition (``accuracy_by_kind``), and in every query language, its own
  training language included (``accuracy_by_language``);
* what the vision encoders see: linear probes of each object's attributes from the frozen
  features the projector reads (``vision_probe``);
* the training loss curves (``loss_curves``) and the wall time of the run (``run_span``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer

from ifl.models.prompts import prompt
from ifl.world.items import describe, item_from_json, make_item, realise
from ifl.world.oracle import oracle_correct, oracle_language
from ifl.world.scenes import sample_scene

LID_KINDS = {"description": None, "question": ("short", "colour"), "answer": ("short", "colour")}


def lid_rates(identify, languages: Sequence[str], *, n: int = 100, seed: int = 0) -> pd.DataFrame:
    """Share of rendered sentences that ``identify(texts) -> ISO codes`` assigns to the right language.

    Descriptions and questions are whole sentences; answers are single words (reported, since
    short replies are exactly where LID errs).
    """
    rng = np.random.default_rng(seed)
    scenes = [sample_scene(rng) for _ in range(n)]
    items = [make_item(s, "short", "count", rng) for s in scenes]
    rows = []
    for lang in languages:
        texts = {
            "description": [describe(s, lang) for s in scenes],
            "question": [realise(i, lang)[0] for i in items],
            "answer": [realise(i, lang)[1] for i in items],
        }
        for kind, batch in texts.items():
            pred = identify(batch)
            rows.append(
                {
                    "language": lang,
                    "kind": kind,
                    "rate": float(np.mean([p == lang for p in pred])),
                    "n": n,
                }
            )
    return pd.DataFrame(rows)


@torch.inference_mode()
def text_replies(
    model: Any,
    tok: Any,
    checks: pd.DataFrame,
    *,
    batch_size: int = 32,
    max_new_tokens: int = 8,
    desc: str = "text check",
) -> pd.DataFrame:
    """A causal LM's greedy replies to ``checks`` (description + question, as in the text
    condition; :func:`ifl.world.tasks.text_checks`), judged by the lexicon oracle: one row per
    check with ``language``, ``kind``, ``faithful`` (reply in the query's language) and
    ``correct`` (the answer is right, in any language).
    """
    was_training, side = model.training, tok.padding_side
    model.eval()
    tok.padding_side = "left"
    prompts = [
        prompt(q, image=False, description=d)
        for q, d in zip(checks["question"], checks["description"], strict=True)
    ]
    replies: list[str] = []
    for i in tqdm(range(0, len(prompts), batch_size), desc=desc, mininterval=5):
        enc = tok(prompts[i : i + batch_size], return_tensors="pt", padding=True).to(model.device)
        out = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        replies += tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    model.train(was_training)
    tok.padding_side = side
    items = [item_from_json(i) for i in checks["item"]]
    out = pd.DataFrame(
        {
            "language": checks["language"].to_numpy(),
            "kind": checks["kind"].to_numpy(),
            "faithful": [
                oracle_language(r, hint=lang) == lang
                for r, lang in zip(replies, checks["language"], strict=True)
            ],
            "correct": [oracle_correct(r, it) for r, it in zip(replies, items, strict=True)],
        }
    )
    for column in ("key", "objects"):  # what the question keys on, when the check says
        if column in checks:
            out[column] = checks[column].to_numpy()
    return out


def llm_text_replies(
    llm_dir: str | Path,
    checks: pd.DataFrame,
    *,
    backbone: str,
    device: torch.device | None = None,
    **kwargs: Any,
) -> pd.DataFrame:
    """:func:`text_replies` of the LM saved in ``llm_dir``, labelled with ``backbone``."""
    tok = AutoTokenizer.from_pretrained(llm_dir)
    model = AutoModelForCausalLM.from_pretrained(llm_dir).to(device or "cpu")
    replies = text_replies(model, tok, checks, desc=f"text check {backbone}", **kwargs)
    return replies.assign(backbone=backbone)[["backbone", *replies.columns]]


def llm_text_table(replies: pd.DataFrame) -> pd.DataFrame:
    """Accuracy and fidelity per backbone, language and question kind from
    :func:`llm_text_replies`."""
    g = replies.groupby(["backbone", "language", "kind"])
    out = g.agg(accuracy=("correct", "mean"), fidelity=("faithful", "mean"), n=("correct", "size"))
    return out.reset_index()


def llm_key_table(replies: pd.DataFrame) -> pd.DataFrame:
    """Accuracy of colour and shape questions per backbone, language, kind and ``key`` (what the
    question names its object by), on scenes of two or more objects (where the key decides the
    answer), with ``colour_after_shape``: whether the language names the colour after the shape
    (:func:`ifl.world.lexicon.colour_after_shape`), i.e. on which side of a shape key a colour
    answer sits, and the other way round."""
    from ifl.world.lexicon import colour_after_shape

    r = replies[(replies["objects"] > 1) & replies["key"].notna()]
    g = r.groupby(["backbone", "language", "kind", "key"])
    out = g.agg(accuracy=("correct", "mean"), n=("correct", "size")).reset_index()
    return out.assign(colour_after_shape=out["language"].map(colour_after_shape))


def llm_lookup(llm_dirs: Sequence[str | Path], *, pairs: int = 4, n: int = 500, seed: int = 0):
    """Zero-shot sequential key/value lookup (:func:`ifl.train.induction.lookup_accuracy`) of
    each LM checkpoint: whether it still reads its context by induction."""
    from transformers import LlamaForCausalLM

    from ifl.train.induction import content_vocab, lookup_accuracy

    rows = []
    for d in llm_dirs:
        tok = AutoTokenizer.from_pretrained(d)
        model = LlamaForCausalLM.from_pretrained(d).eval()
        acc = lookup_accuracy(
            model, vocab=content_vocab(tok), bos_id=tok.bos_token_id, pairs=pairs, n=n, seed=seed
        )
        rows.append({"checkpoint": Path(d).name, "pairs": pairs, "accuracy": acc, "n": n})
    return pd.DataFrame(rows)


def vlm_fidelity(labelled: pd.DataFrame) -> pd.DataFrame:
    """Oracle fidelity per model, benchmark, query language and condition (no intervention)."""
    sub = labelled[labelled["intervention"] == "none"]
    g = sub.groupby(["model", "benchmark", "language", "condition"])["fidelity_oracle"]
    return g.agg(fidelity="mean", n="size").reset_index()


def _asked(labelled: pd.DataFrame, language: str, benchmark: str) -> pd.DataFrame:
    """The labelled rows of ``benchmark`` asked in ``language``; an error if there are none."""
    sub = labelled[(labelled["language"] == language) & (labelled["benchmark"] == benchmark)]
    if sub.empty:
        raise ValueError(f"no {benchmark} rows in language {language!r}")
    return sub


def vlm_accuracy(
    labelled: pd.DataFrame, *, language: str = "en", benchmark: str = "MaXM"
) -> pd.DataFrame:
    """Oracle accuracy per model on short questions with the image, in ``language``."""
    sub = _asked(labelled, language, benchmark)
    sub = sub[sub["condition"] == "image"]
    if sub.empty:
        raise ValueError(f"no {benchmark} image rows in language {language!r}")
    g = sub.groupby("model")["accuracy_oracle"].agg(["mean", "size"]).reset_index()
    return g.rename(columns={"mean": "accuracy", "size": "n"})


def accuracy_by_kind(
    labelled: pd.DataFrame, tasks: pd.DataFrame, *, language: str = "en", benchmark: str = "MaXM"
) -> pd.DataFrame:
    """Oracle accuracy per model, condition and question kind (colour, count, shape, yes/no)."""
    kinds = tasks.set_index("task_id")["kind"]
    sub = _asked(labelled, language, benchmark)
    sub = sub.assign(kind=sub["task_id"].map(kinds))
    if sub["kind"].isna().any():
        missing = sub.loc[sub["kind"].isna(), "task_id"].iloc[0]
        raise ValueError(f"task {missing!r} of the labelled table is not in the tasks table")
    g = sub.groupby(["model", "condition", "kind"])["accuracy_oracle"].agg(["mean", "size"])
    return g.reset_index().rename(columns={"mean": "accuracy", "size": "n"})


def accuracy_by_language(
    labelled: pd.DataFrame, data_language: Mapping[str, str], *, benchmark: str = "MaXM"
) -> pd.DataFrame:
    """Oracle accuracy per model, condition and query language on ``benchmark``.

    ``data_language`` maps each model to the language of its visual instructions; the ``own``
    column marks the rows asked in it. A model trained on Chinese instructions is then judged
    on Chinese questions too, not only on the English ones of :func:`vlm_accuracy`.
    """
    sub = labelled[(labelled["benchmark"] == benchmark) & (labelled["intervention"] == "none")]
    if sub.empty:
        raise ValueError(f"no {benchmark} rows without intervention")
    unknown = sorted(set(sub["model"]) - set(data_language))
    if unknown:
        raise ValueError(f"model {unknown[0]!r} has no training-data language")
    g = sub.groupby(["model", "condition", "language"])["accuracy_oracle"].agg(["mean", "size"])
    out = g.reset_index().rename(columns={"mean": "accuracy", "size": "n"})
    out["data_language"] = out["model"].map(data_language)
    out["own"] = out["language"] == out["data_language"]
    return out[["model", "data_language", "condition", "language", "own", "accuracy", "n"]]


def reply_languages(
    labelled: pd.DataFrame, *, language: str = "en", benchmark: str = "MaXM"
) -> pd.DataFrame:
    """Share of each reply language (lexicon oracle; ``none`` for no lexicon word) per model
    and condition, over the questions of ``benchmark`` asked in ``language``.

    Which language a model falls back to is the mechanism the paper proposes: a VLM trained on
    English visual instructions drifts to English with an image; one trained on Chinese or
    German instructions may drift to those.
    """
    sub = _asked(labelled, language, benchmark)
    sub = sub[sub["intervention"] == "none"]
    reply_language = [oracle_language(r, hint=language) or "none" for r in sub["reply"]]
    counts = (
        sub.assign(reply_language=reply_language)
        .groupby(["model", "condition", "reply_language"])
        .size()
    )
    n = counts.groupby(level=["model", "condition"]).transform("sum")
    out = pd.DataFrame({"share": counts / n, "n": n}).reset_index()
    return out[["model", "condition", "reply_language", "share", "n"]]


PROBED = ("shape", "colour", "size")


@torch.inference_mode()
def vision_probe(
    vision_dir: str | Path,
    images: np.ndarray,
    scenes: Sequence,
    *,
    feature_layer: int = -2,
    test_share: float = 0.2,
    seed: int = 0,
) -> pd.DataFrame:
    """Held-out accuracy of linear probes for each object's attributes from frozen ViT features.

    The features are those the LLaVA projector reads (``feature_layer``, the penultimate layer
    as LLaVA-1.5's ``vision_feature_layer``): the patch tokens covering the object's cell,
    concatenated. A probe near 1 means the encoder hands the attribute to the projector.
    """
    from sklearn.linear_model import LogisticRegression
    from transformers import CLIPVisionModel

    from ifl.train.organism import pixel_tensor

    if len(images) != len(scenes):
        raise ValueError(f"{len(images)} images but {len(scenes)} scenes")
    vision = CLIPVisionModel.from_pretrained(vision_dir).eval()
    size = int(vision.config.image_size)
    hidden = vision(
        pixel_values=pixel_tensor(np.asarray(images), size), output_hidden_states=True
    ).hidden_states[feature_layer][:, 1:]
    grid = int(round(hidden.shape[1] ** 0.5))
    per_cell = grid // 2  # the world's 2 x 2 cells, each covering per_cell x per_cell patches
    tokens = hidden.reshape(len(images), grid, grid, -1).numpy()
    feats, labels = [], {a: [] for a in PROBED}
    for i, scene in enumerate(scenes):
        for obj in scene.objects:
            r, c = divmod(obj.cell, 2)
            cell = tokens[i, r * per_cell : (r + 1) * per_cell, c * per_cell : (c + 1) * per_cell]
            feats.append(cell.reshape(-1))
            for a in PROBED:
                labels[a].append(getattr(obj, a))
    X = np.asarray(feats)
    order = np.random.default_rng(seed).permutation(len(X))
    n_test = max(1, int(round(test_share * len(X))))
    test, train = order[:n_test], order[n_test:]
    rows = []
    for a in PROBED:
        y = np.asarray(labels[a])
        probe = LogisticRegression(max_iter=2000).fit(X[train], y[train])
        rows.append(
            {
                "encoder": Path(vision_dir).name,
                "attribute": a,
                "accuracy": float(probe.score(X[test], y[test])),
                "n_test": int(n_test),
            }
        )
    return pd.DataFrame(rows)


def loss_curves(model_dirs: Sequence[str | Path]) -> pd.DataFrame:
    """The saved ``loss.csv`` of each checkpoint, labelled with the checkpoint's folder name."""
    frames = []
    for d in model_dirs:
        path = Path(d) / "loss.csv"
        if path.is_file():
            frames.append(pd.read_csv(path).assign(model=Path(d).name))
    if not frames:
        raise ValueError("no loss.csv found in the given model folders")
    return pd.concat(frames, ignore_index=True)


def run_span(bench_dir: str | Path, *, gap_s: float = 900.0) -> tuple[float, int]:
    """Busy wall time behind the current results, in minutes, and the number of timed jobs: the
    sum, over stretches of jobs that ran back to back (no idle gap over ``gap_s`` s), of each
    stretch's first start to last end.

    Each Snakemake benchmark file is written when its job ends; its ``s`` column is the job's
    wall time, so the job started ``s`` seconds before the file's modification time. A partial
    rerun hours after the full run (say, one notebook) adds its own few seconds, not the idle
    hours in between, and does not replace the full run's figure.
    """
    files = sorted(Path(bench_dir).glob("*.tsv"))
    if not files:
        raise ValueError(f"no benchmark files in {str(bench_dir)!r}")
    ends = np.array([f.stat().st_mtime for f in files])
    starts = ends - np.array([float(pd.read_csv(f, sep="\t")["s"].iloc[0]) for f in files])
    order = np.argsort(starts, kind="stable")
    busy, first, last = 0.0, starts[order[0]], ends[order[0]]
    for i in order[1:]:
        if starts[i] > last + gap_s:  # idle machine in between: close the stretch
            busy, first = busy + last - first, starts[i]
        last = max(last, ends[i])
    return float((busy + last - first) / 60), len(files)
