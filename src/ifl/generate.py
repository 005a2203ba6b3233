"""Batched, resumable reply generation for the image and the text condition.

Queries are sorted by length and generated in left-padded batches with the KV cache; each
shard checkpoints finished batches under ``<out>.part/`` so an interrupted job resumes where it
stopped, and the final table is identical to an uninterrupted run's.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from tqdm.auto import tqdm

from ifl.io import write_parquet
from ifl.models import families
from ifl.models.prompts import IMAGE_TOKEN
from ifl.models.prompts import render as organism_prompt

CONDITIONS = ("image", "text")
CHECKPOINT_EVERY = 4  # batches per checkpoint file


def load_vlm(path: str | Path, device: torch.device, *, trust_remote_code: bool = False):
    """Load a VLM checkpoint of any supported family and its processor (bf16 on CUDA, fp32 on
    CPU; :func:`ifl.models.families.load_vlm`)."""
    return families.load_vlm(path, device, trust_remote_code=trust_remote_code)


def settings(cfg: Mapping) -> dict:
    """The generation keyword arguments of :func:`run` from a validated config."""
    g = cfg["generate"]
    return {
        "batch_size": g["batch_size"],
        "max_new_tokens": g["max_new_tokens"],
        "do_sample": g["do_sample"],
        "temperature": g["temperature"],
        "seed": cfg["seed"],
    }


#: ``(question, image, description) -> prompt``, e.g. :func:`ifl.models.registry.make_prompter`.
Prompter = Callable[[str, bool, str | None], str]


def queries(
    tasks: pd.DataFrame,
    conditions: tuple[str, ...] = CONDITIONS,
    prompter: Prompter | None = None,
) -> pd.DataFrame:
    """One row per (task, condition): the prompt and, in the image condition, the image path.

    ``prompter`` renders a query in a checkpoint's own format (the paper preset passes
    :func:`ifl.models.registry.make_prompter`'s); None gives the organism's LLaVA-1.5 format.
    """
    render = prompter or organism_prompt
    rows = []
    for t in tasks.itertuples(index=False):
        for cond in conditions:
            with_image = cond == "image"
            rows.append(
                {
                    "task_id": t.task_id,
                    "benchmark": t.benchmark,
                    "language": t.language,
                    "condition": cond,
                    "prompt": render(t.question, with_image, None if with_image else t.description),
                    "image": t.image if with_image else None,
                }
            )
    return pd.DataFrame(rows)


def shard(df: pd.DataFrame, index: int, n_shards: int) -> pd.DataFrame:
    """The queries of every ``n_shards``-th task, from task ``index`` on.

    A stable split that needs no coordination; both conditions of a task stay in one shard so
    that shards cost about the same.
    """
    if not 0 <= index < n_shards:
        raise ValueError(f"shard index {index} outside 0..{n_shards - 1}")
    order = pd.factorize(df["task_id"])[0]
    return df[order % n_shards == index].reset_index(drop=True)


def _batches(
    q: pd.DataFrame,
    batch_size: int,
    max_new: Mapping[str, int] | int,
    lengths: list[int] | None = None,
) -> list[pd.DataFrame]:
    # Same condition and token budget within a batch; similar lengths to waste little padding.
    q = q.assign(_budget=q["benchmark"].map(max_new) if isinstance(max_new, Mapping) else max_new)
    if q["_budget"].isna().any():
        missing = sorted(set(q.loc[q["_budget"].isna(), "benchmark"]))
        raise ValueError(f"generate.max_new_tokens has no entry for benchmark {missing[0]!r}")
    # Token counts when known: characters are a poor proxy across scripts (a CJK character is
    # several byte-level tokens, an ASCII word often one).
    q = q.assign(_len=q["prompt"].str.len() if lengths is None else lengths)
    q = q.sort_values(["condition", "_budget", "_len", "task_id"], kind="stable")
    out = []
    for _, group in q.groupby(["condition", "_budget"], sort=True):
        out += [group.iloc[i : i + batch_size] for i in range(0, len(group), batch_size)]
    return out


def _fingerprint(model, q: pd.DataFrame, settings: Mapping) -> str:
    """What the checkpoints depend on: the queries, the settings and (a sample of) the weights."""
    h = hashlib.sha256(json.dumps(dict(settings), sort_keys=True, default=str).encode())
    cols = ["task_id", "condition", "prompt", "image"]
    h.update(pd.util.hash_pandas_object(q[cols].astype(str), index=False).to_numpy().tobytes())
    for p in model.parameters():  # a strided sample: cheap even for 7B, changes with any training
        h.update(p.detach().flatten()[::4099][:256].float().cpu().numpy().tobytes())
    return h.hexdigest()


def eos_ids(model, tokenizer) -> list[int]:
    """Tokens that end a reply: the tokenizer's EOS and those of the model's generation config
    (chat models end a turn with their own token, e.g. Gemma's ``<end_of_turn>``)."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if configured is None:
        configured = []
    elif isinstance(configured, int):
        configured = [configured]
    ids = [tokenizer.eos_token_id, *configured]
    return list(dict.fromkeys(int(i) for i in ids if i is not None))


@torch.inference_mode()
def generate_batch(
    model,
    processor,
    batch: pd.DataFrame,
    *,
    max_new_tokens: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int = 0,
) -> tuple[list[str], list[int]]:
    """Replies and their token counts for one batch of queries of a single condition."""
    images = None
    if batch["image"].notna().all():
        images = families.image_batch(
            [np.asarray(Image.open(p).convert("RGB")) for p in batch["image"]]
        )
    inputs = processor(
        text=batch["prompt"].tolist(), images=images, return_tensors="pt", padding=True
    )
    inputs = inputs.to(model.device)
    if "pixel_values" in inputs:
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    tok = processor.tokenizer
    kwargs = {"do_sample": do_sample}
    if do_sample:
        torch.manual_seed(seed)
        kwargs["temperature"] = temperature
    stop = eos_ids(model, tok)
    out = model.generate(
        **inputs,
        max_new_tokens=max_new_tokens,
        pad_token_id=tok.pad_token_id,
        eos_token_id=stop,
        use_cache=True,
        **kwargs,
    )
    new = out[:, inputs["input_ids"].shape[1] :]
    ends = torch.tensor([tok.pad_token_id, *stop], device=new.device)
    n_tokens = [int((~torch.isin(row, ends)).sum()) for row in new]
    replies = [r.strip() for r in tok.batch_decode(new, skip_special_tokens=True)]
    return replies, n_tokens


def run(
    model,
    processor,
    q: pd.DataFrame,
    out_path: str | Path,
    *,
    batch_size: int,
    max_new_tokens: Mapping[str, int] | int,
    do_sample: bool = False,
    temperature: float = 1.0,
    seed: int = 0,
    model_name: str = "",
    intervention: str = "none",
    context: Callable[[pd.DataFrame], AbstractContextManager] | None = None,
) -> pd.DataFrame:
    """Generate every query of ``q`` and write the table to ``out_path`` atomically.

    ``model_name`` fills the ``model`` column. ``context(batch)`` may wrap each batch's generation (e.g. a steering hook); ``intervention``
    names it in the output. Finished batches are checkpointed so that a rerun resumes.
    """
    out_path = Path(out_path)
    part = out_path.with_name(out_path.name + ".part")
    settings = {
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "do_sample": do_sample,
        "temperature": temperature,
        "seed": seed,
        "intervention": intervention,
        "checkpoint_every": CHECKPOINT_EVERY,
    }
    stamp, fingerprint = part / "fingerprint.txt", _fingerprint(model, q, settings)
    if part.exists() and (not stamp.is_file() or stamp.read_text() != fingerprint):
        shutil.rmtree(part)  # checkpoints of other queries, settings or weights: start over
    part.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint)
    texts = [p.replace(IMAGE_TOKEN, "") for p in q["prompt"]]  # same image tokens in a condition
    lengths = [len(ids) for ids in processor.tokenizer(texts)["input_ids"]]
    batches = _batches(q, batch_size, max_new_tokens, lengths)
    chunks = [batches[i : i + CHECKPOINT_EVERY] for i in range(0, len(batches), CHECKPOINT_EVERY)]
    bar = tqdm(total=len(q), desc=f"generate {out_path.stem}", unit="reply", mininterval=5)
    for c, chunk in enumerate(chunks):
        path = part / f"chunk-{c:05d}.parquet"
        if path.exists():
            bar.update(sum(len(b) for b in chunk))
            continue
        rows = []
        for b, batch in enumerate(chunk):
            with context(batch) if context else nullcontext():
                replies, n_tok = generate_batch(
                    model,
                    processor,
                    batch,
                    max_new_tokens=int(batch["_budget"].iloc[0]),
                    do_sample=do_sample,
                    temperature=temperature,
                    seed=seed + 1000 * c + b,
                )
            rows.append(batch.drop(columns=["_budget", "_len"]).assign(reply=replies, tokens=n_tok))
            bar.update(len(batch))
        write_parquet(pd.concat(rows, ignore_index=True), path)
    bar.close()
    parts = [pd.read_parquet(p) for p in sorted(part.glob("chunk-*.parquet"))]
    empty = q.iloc[:0].assign(reply=pd.Series(dtype=str), tokens=pd.Series(dtype=int))
    table = pd.concat(parts, ignore_index=True) if parts else empty
    table = table.assign(intervention=intervention, seed=seed).sort_values(
        ["task_id", "condition"], kind="stable"
    )
    table.insert(0, "model", model_name)
    table = table.reset_index(drop=True)
    write_parquet(table, out_path)
    shutil.rmtree(part, ignore_errors=True)
    return table
