"""The copy task and the zero-shot lookup of ifl.train.induction, against models with known
behaviour."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ifl.train.induction import copy_batch, lookup_accuracy

VOCAB = (10, 60)


def test_copy_batch_repeats_one_span_at_a_variable_offset() -> None:
    x, labels = copy_batch(np.random.default_rng(0), 200, vocab=VOCAB, bos_id=1, length=32,
                           min_span=4, max_span=8)  # fmt: skip
    assert x.shape == labels.shape == (200, 33) and (x[:, 0] == 1).all()
    assert ((x[:, 1:] >= VOCAB[0]) & (x[:, 1:] < VOCAB[1])).all()
    offsets = set()
    for row, lab in zip(x.numpy(), labels.numpy(), strict=True):
        where = np.flatnonzero(lab != -100)
        assert 3 <= len(where) <= 7 and (np.diff(where) == 1).all()  # span - 1 labels, contiguous
        again, span = where[0] - 1, len(where) + 1
        # the copy equals an earlier span of the same length, and the labels are the copy itself
        starts = [
            s
            for s in range(1, again - span + 1)
            if (row[s : s + span] == row[again : again + span]).all()
        ]
        assert starts, "no earlier occurrence of the copied span"
        assert (lab[where] == row[where]).all()
        offsets.add(again - starts[0])
    assert len(offsets) > 10  # variable, or the model learns a positional shortcut
    with pytest.raises(ValueError, match="max_span=20, length=32"):
        copy_batch(np.random.default_rng(0), 1, vocab=VOCAB, bos_id=1, length=32, min_span=4,
                   max_span=20)  # fmt: skip


class _Lookup(torch.nn.Module):
    """A stand-in LM whose last logit row copies a fixed rule: ``induction`` finds the previous
    occurrence of the last token and predicts what followed it; otherwise it predicts the value
    of the first pair."""

    def __init__(self, induction: bool, vocab_size: int = VOCAB[1]):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))
        self.induction, self.vocab_size = induction, vocab_size

    def forward(self, input_ids: torch.Tensor) -> SimpleNamespace:
        ids = input_ids.numpy()
        logits = torch.zeros(ids.shape[0], ids.shape[1], self.vocab_size)
        for r, seq in enumerate(ids):
            if self.induction:
                prev = np.flatnonzero(seq[:-1] == seq[-1])[-1]
                guess = seq[prev + 1]
            else:
                guess = seq[2]
            logits[r, -1, guess] = 1.0
        return SimpleNamespace(logits=logits)


def test_lookup_accuracy_is_one_for_induction_and_one_in_pairs_for_a_fixed_guess() -> None:
    model = _Lookup(induction=True).train()
    assert lookup_accuracy(model, vocab=VOCAB, bos_id=1, pairs=4, n=300) == 1.0
    assert model.training  # the mode is restored
    fixed = lookup_accuracy(_Lookup(induction=False), vocab=VOCAB, bos_id=1, pairs=4, n=4000)
    # the asked key is the first one with probability 1/4 (values are distinct)
    expected = 0.25
    assert abs(fixed - expected) < 3 * np.sqrt(expected * (1 - expected) / 4000)
