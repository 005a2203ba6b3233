"""Tokenise (prompt, target) pairs and dialogues once into arrays and collate random batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from ifl.models.prompts import IMAGE_TOKEN


@dataclass
class Encoded:
    """Token ids of prompt + target per example, where the target starts, and which of its
    tokens are the assistant's (all of a one-turn target; the replies of a dialogue)."""

    ids: list[np.ndarray]
    target_start: np.ndarray
    image: np.ndarray | None = None  # row of the image tensor per example, -1 for none
    answer: list[np.ndarray] | None = None  # bool per token; None = every target token

    def __post_init__(self) -> None:
        if self.answer is None:
            self.answer = [
                np.arange(len(ids)) >= start
                for ids, start in zip(self.ids, self.target_start, strict=True)
            ]

    def __len__(self) -> int:
        return len(self.ids)


Target = str | Sequence[str]


def encode(
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    targets: Sequence[Target],
    *,
    image_tokens: int = 0,
    image: Sequence[int] | None = None,
    max_len: int = 256,
) -> Encoded:
    """Tokenise prompts (with BOS, ``<image>`` expanded to ``image_tokens`` ids) and targets.

    A target is the assistant's reply, or a dialogue's continuation as segments that alternate
    reply, user turn, reply, ... (see :func:`ifl.models.prompts.followup`); replies are the
    ``answer`` tokens.
    """
    if len(prompts) != len(targets):
        raise ValueError(f"{len(prompts)} prompts but {len(targets)} targets")
    if image_tokens:
        prompts = [p.replace(IMAGE_TOKEN, IMAGE_TOKEN * image_tokens) for p in prompts]
    p_ids = tokenizer(list(prompts), add_special_tokens=True)["input_ids"]
    segments = [[t] if isinstance(t, str) else list(t) for t in targets]
    flat = [seg for segs in segments for seg in segs]
    flat_ids = iter(tokenizer(flat, add_special_tokens=False)["input_ids"]) if flat else iter(())
    ids, answer = [], []
    for p, segs in zip(p_ids, segments, strict=True):
        seq, is_answer = list(p), [False] * len(p)
        for k in range(len(segs)):
            t = next(flat_ids)
            seq += t
            is_answer += [k % 2 == 0] * len(t)
        ids.append(np.asarray(seq[:max_len], dtype=np.int64))
        answer.append(np.asarray(is_answer[:max_len], dtype=bool))
    start = np.asarray([min(len(p), max_len) for p in p_ids], dtype=np.int64)
    img = None if image is None else np.asarray(image, dtype=np.int64)
    return Encoded(ids, start, img, answer)


def collate(data: Encoded, rows: np.ndarray, pad_id: int, *, loss_on_prompt: bool = False) -> dict:
    """Right-padded ``input_ids``, ``attention_mask``, ``labels`` and ``answer`` for ``rows``.

    Labels are every token after BOS (``loss_on_prompt``) or the answer tokens only;
    ``answer`` marks the answer tokens in either case.
    """
    seqs = [data.ids[i] for i in rows]
    width = max(len(s) for s in seqs)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    labels = np.full((len(rows), width), -100, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    answer = np.zeros((len(rows), width), dtype=bool)
    for j, (i, s) in enumerate(zip(rows, seqs, strict=True)):
        n = len(s)
        input_ids[j, :n] = s
        mask[j, :n] = 1
        answer[j, :n] = data.answer[i]
        keep = np.arange(n) >= 1 if loss_on_prompt else data.answer[i]
        labels[j, :n] = np.where(keep, s, -100)
    return {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(mask),
        "labels": torch.from_numpy(labels),
        "answer": torch.from_numpy(answer),
    }


class LengthBatches:
    """Random batches of rows with similar lengths, drawn reproducibly from a numpy generator.

    Rows are drawn with replacement exactly as independent batches would be (so every example
    keeps its share of the training signal), ``pool`` batches at a time; the pool is sorted by
    length, cut into batches and those are served in random order. Padding to the longest row
    of a batch then wastes little, which on a mix of 20- and 200-token dialogues is most of the
    compute of an unsorted batch.

    Sorting must change the speed, not the objective: a token-mean loss per batch would give a
    batch of one-word answers the weight of a batch of long descriptions. ``norm`` is therefore
    the mean number of ``labelled`` tokens per batch of the current pool; a loss summed over a
    batch's tokens and divided by ``norm`` weighs every token as an unsorted batch would.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        *,
        labelled: Sequence[int] | np.ndarray | None = None,
        pool: int = 16,
    ):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if batch_size < 1 or len(self.lengths) == 0:
            raise ValueError(
                f"need rows and batch_size >= 1, got {len(self.lengths)} rows, {batch_size}"
            )
        self.labelled = self.lengths if labelled is None else np.asarray(labelled, dtype=np.int64)
        self.batch_size, self.pool = batch_size, pool
        self.norm = 1.0
        self._queue: list[np.ndarray] = []

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        """Row indices of the next batch."""
        if not self._queue:
            rows = rng.integers(len(self.lengths), size=self.batch_size * self.pool)
            self.norm = max(1.0, float(self.labelled[rows].sum()) / self.pool)
            rows = rows[np.argsort(self.lengths[rows], kind="stable")]
            chunks = np.split(rows, self.pool)
            self._queue = [chunks[i] for i in rng.permutation(self.pool)]
        return self._queue.pop()


def lengths(data: Encoded) -> np.ndarray:
    """Token count of every example."""
    return np.fromiter((len(s) for s in data.ids), dtype=np.int64, count=len(data.ids))


def labelled_counts(data: Encoded, *, loss_on_prompt: bool = False) -> np.ndarray:
    """Tokens that :func:`collate` labels in every example (all but BOS, or the answers)."""
    if loss_on_prompt:
        return np.maximum(lengths(data) - 1, 0)
    return np.fromiter((int(a.sum()) for a in data.answer), dtype=np.int64, count=len(data))
