"""The copy task that gives the organism's tiny LMs an induction head, and the lookup that tests it.

Reading a description ("A small red square is at the top left. ...") to answer "What colour is
the square?" means finding an earlier token and copying what sits next to it: the job of an
induction head (a previous-token head feeding a content-matching head). Tiny Llamas do not form
one from the organism's dialogues alone; they do, abruptly, from a copy task on random tokens in
which a span reappears at a *variable* offset (with a fixed offset they learn a positional
shortcut instead). The LMs are first trained on that task, then the task stays in the mix of the
dialogue pretraining so that the head survives it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def copy_batch(
    rng: np.random.Generator,
    batch_size: int,
    *,
    vocab: tuple[int, int],
    bos_id: int,
    length: int,
    min_span: int,
    max_span: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random token sequences in which one span is repeated later; labels on the repeat only.

    Each row is ``<s>`` and ``length`` tokens drawn uniformly from ``range(*vocab)``; a span of
    ``min_span``-``max_span`` tokens starts at a random position and is copied to a random later
    position. The first token of the copy cannot be predicted; the others are the labels.
    """
    if not 1 <= min_span <= max_span or 2 * max_span > length:
        raise ValueError(
            f"copy task needs 1 <= min_span <= max_span and 2 * max_span <= length, got "
            f"min_span={min_span}, max_span={max_span}, length={length}"
        )
    x = rng.integers(vocab[0], vocab[1], size=(batch_size, length + 1))
    x[:, 0] = bos_id
    labels = np.full_like(x, -100)
    for row in range(batch_size):
        span = int(rng.integers(min_span, max_span + 1))
        first = 1 + int(rng.integers(0, length - 2 * span + 1))
        again = int(rng.integers(first + span, length - span + 2))
        x[row, again : again + span] = x[row, first : first + span]
        labels[row, again + 1 : again + span] = x[row, again + 1 : again + span]
    return torch.from_numpy(x), torch.from_numpy(labels)


def content_vocab(tokenizer: Any) -> tuple[int, int]:
    """The id range of ordinary tokens: every id after the special ones, up to the vocabulary."""
    return max(tokenizer.all_special_ids) + 1, len(tokenizer)


def copy_loss(
    model: Any,
    rng: np.random.Generator,
    task: Mapping[str, int],
    *,
    vocab: tuple[int, int],
    bos_id: int,
    batch_size: int,
) -> torch.Tensor:
    """Next-token cross-entropy of ``model`` (a causal LM) on one :func:`copy_batch`."""
    x, labels = copy_batch(
        rng,
        batch_size,
        vocab=vocab,
        bos_id=bos_id,
        length=task["length"],
        min_span=task["min_span"],
        max_span=task["max_span"],
    )
    device = next(model.parameters()).device
    hidden = model.model(input_ids=x.to(device)).last_hidden_state[:, :-1]
    y = labels[:, 1:].to(device)
    keep = y != -100
    return F.cross_entropy(model.lm_head(hidden[keep]), y[keep])


@torch.inference_mode()
def lookup_accuracy(
    model: Any,
    *,
    vocab: tuple[int, int],
    bos_id: int,
    pairs: int = 4,
    n: int = 500,
    seed: int = 0,
) -> float:
    """Zero-shot key/value lookup: ``<s> k1 v1 ... kP vP kq`` -> ``vq``, as greedy top-1 accuracy.

    Keys and values are distinct random tokens; the model has never been trained on this task,
    so it succeeds only by the induction mechanism (find the earlier ``kq``, copy what follows
    it). A model that copies some value in context scores ``1 / pairs`` by chance.
    """
    rng = np.random.default_rng(seed)
    ids = np.arange(*vocab)
    # keys and values all distinct within a row: a value equal to a key would make the
    # "previous occurrence" of the asked key ambiguous even for an exact induction head
    drawn = np.stack([rng.choice(ids, 2 * pairs, replace=False) for _ in range(n)])
    keys, values = drawn[:, :pairs], drawn[:, pairs:]
    asked = rng.integers(pairs, size=n)
    rows = np.arange(n)
    seq = np.concatenate(
        [
            np.full((n, 1), bos_id),
            np.stack([keys, values], 2).reshape(n, -1),
            keys[rows, asked][:, None],
        ],
        1,
    )
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    logits = model(input_ids=torch.from_numpy(seq).to(device)).logits[:, -1]
    model.train(was_training)
    return float((logits.argmax(-1).cpu().numpy() == values[rows, asked]).mean())


def lookup_probe(model: Any, tokenizer: Any) -> dict[str, Any]:
    """:func:`lookup_accuracy` of ``model`` in ``tokenizer``'s content vocabulary, as a probe of
    :func:`ifl.train.loop.fit` (named ``lookup``)."""
    vocab = content_vocab(tokenizer)
    return {"lookup": lambda: lookup_accuracy(model, vocab=vocab, bos_id=tokenizer.bos_token_id)}
