"""Quality checks of the model organism: is it a fair stand-in for the paper's models?

* the LID model recognises the world's sentences in each language (``lid_rates``);
* each LLM backbone answers text-only questions in the query language (``llm_text_fidelity``);
* each VLM answers English short questions about its images correctly (``vlm_accuracy``);
* the training loss curves (``loss_curves``) and the wall time of the run (``run_span_minutes``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from ifl.models.prompts import prompt
from ifl.world.items import describe, make_item, realise
from ifl.world.oracle import oracle_language
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
def llm_text_fidelity(
    llm_dir: str | Path,
    tasks: pd.DataFrame,
    languages: Sequence[str],
    *,
    backbone: str,
    batch_size: int = 32,
    max_new_tokens: int = 8,
    device: torch.device | None = None,
) -> pd.DataFrame:
    """Fidelity of a text-only backbone on the text condition (description + question), per language.

    The reply's language is read by the oracle (the lexicon), so this is the true fidelity.
    """
    tok = AutoTokenizer.from_pretrained(llm_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(llm_dir).to(device or "cpu").eval()
    sub = tasks[tasks["language"].isin(languages) & (tasks["benchmark"] != "LLaVA-W")]
    prompts = [
        prompt(q, image=False, description=d)
        for q, d in zip(sub["question"], sub["description"], strict=True)
    ]
    replies: list[str] = []
    for i in range(0, len(prompts), batch_size):
        enc = tok(prompts[i : i + batch_size], return_tensors="pt", padding=True).to(model.device)
        out = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        replies += tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    faithful = [
        oracle_language(r, hint=lang) == lang
        for r, lang in zip(replies, sub["language"], strict=True)
    ]
    df = pd.DataFrame({"language": sub["language"].to_numpy(), "faithful": faithful})
    g = df.groupby("language")["faithful"].agg(["mean", "size"]).reset_index()
    return g.rename(columns={"mean": "fidelity", "size": "n"}).assign(backbone=backbone)[
        ["backbone", "language", "fidelity", "n"]
    ]


def vlm_accuracy(
    labelled: pd.DataFrame, *, language: str = "en", benchmark: str = "MaXM"
) -> pd.DataFrame:
    """Oracle accuracy per model on short questions with the image, in ``language``."""
    sub = labelled[
        (labelled["language"] == language)
        & (labelled["benchmark"] == benchmark)
        & (labelled["condition"] == "image")
    ]
    if sub.empty:
        raise ValueError(f"no {benchmark} image rows in language {language!r}")
    g = sub.groupby("model")["accuracy_oracle"].agg(["mean", "size"]).reset_index()
    return g.rename(columns={"mean": "accuracy", "size": "n"})


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


def run_span_minutes(bench_dir: str | Path) -> float:
    """Wall time spanned by the benchmarked jobs: last end minus first start, in minutes.

    Each Snakemake benchmark file is written when its job ends; its ``s`` column is the job's
    wall time, so the job started ``s`` seconds before the file's modification time.
    """
    files = sorted(Path(bench_dir).glob("*.tsv"))
    if not files:
        raise ValueError(f"no benchmark files in {str(bench_dir)!r}")
    ends = np.array([f.stat().st_mtime for f in files])
    secs = np.array([float(pd.read_csv(f, sep="\t")["s"].iloc[0]) for f in files])
    return float((ends.max() - (ends - secs).min()) / 60)
