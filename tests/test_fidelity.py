"""The public fidelity API (ifl.fidelity): per-reply fidelity by its definition, the Wilson
interval against an independent implementation, and the coverage of both intervals on
simulated replies whose true fidelity is known."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from ifl.fidelity import (
    fidelity,
    fidelity_interval,
    image_induced_loss,
    paired_difference,
    reply_fidelity,
)

NAMES = {"de": "german", "zh": "chinese", "en": "english"}


def _oracle(texts):
    """A language identifier that reads the language off a tag at the start of each text."""
    return [NAMES.get(t.split(":")[0], "none") if ":" in t else "none" for t in texts]


def test_reply_fidelity_by_definition():
    replies = ["de: ja", "en: yes", "zh: 是", "", "de: nein"]
    table = reply_fidelity(replies, ["de", "de", "zh", "de", "en"], identifier=_oracle)
    assert table["detected"].tolist() == ["german", "english", "chinese", "none", "german"]
    assert table["fidelity"].tolist() == [1, 0, 1, 0, 0]  # empty reply: not faithful
    est = fidelity(replies, ["de", "de", "zh", "de", "en"], identifier=_oracle)
    assert est.estimate == pytest.approx(2 / 5) and est.n == 5


def test_default_identifier_is_lid176_offline():
    replies = ["Das Bild zeigt einen roten Kreis und zwei blaue Quadrate.",
               "The picture shows a red circle and two blue squares.",
               "图片上有一个红色的圆圈和两个蓝色的正方形。"]  # fmt: skip
    assert reply_fidelity(replies, ["de", "de", "zh"])["fidelity"].tolist() == [1, 0, 1]


def test_image_induced_loss_pairs_the_two_conditions():
    image = ["en: a", "de: b", "en: c", "de: d"]
    text = ["de: a", "de: b", "de: c", "en: d"]
    est = image_induced_loss(image, text, ["de"] * 4, identifier=_oracle)
    assert est.estimate == pytest.approx(2 / 4 - 3 / 4)  # fidelity(image) - fidelity(text)
    assert est.ci_low < est.estimate < est.ci_high


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (27, 40), (40, 40), (512, 1000)])
def test_wilson_interval_matches_statsmodels(k, n):
    est = fidelity_interval([1] * k + [0] * (n - k), level=0.9)
    low, high = proportion_confint(k, n, alpha=0.1, method="wilson")
    assert (est.ci_low, est.ci_high) == pytest.approx((low, high), abs=1e-12)


def test_paired_difference_edges():
    same = paired_difference([1, 0, 1, 1], [1, 0, 1, 1])
    assert same.estimate == 0 and same.ci_low < 0 < same.ci_high
    flipped = paired_difference([1] * 12, [0] * 12)
    assert flipped.estimate == 1 and flipped.ci_high == 1 and 0.5 < flipped.ci_low < 1
    with pytest.raises(ValueError, match="0 and 1"):
        paired_difference([0.5], [1])
    with pytest.raises(ValueError, match="not one of"):
        reply_fidelity(["x"], ["xx"], identifier=_oracle)


@pytest.mark.parametrize(
    ("cells", "n"),
    [
        ((0.60, 0.10, 0.25, 0.05), 40),  # image 0.70 vs text 0.85: IFL -0.15, correlated pairs
        ((0.80, 0.02, 0.15, 0.03), 25),  # shares near 1, few queries
        ((0.20, 0.20, 0.20, 0.40), 60),  # no loss, weak pairing
    ],
)
def test_coverage_on_simulated_replies(cells, n):
    """Pairs drawn from a 2 x 2 table (both faithful, image only, text only, neither) with
    known shares: the 95% intervals of the IFL and of fidelity(image) cover the truth in
    about 95% of 3,000 simulated audits."""
    rng = np.random.default_rng(0)
    a, b, c, _ = cells
    true_ifl, true_image = (a + b) - (a + c), a + b
    hits_ifl = hits_image = 0
    reps = 3000
    for _ in range(reps):
        cell = rng.choice(4, size=n, p=cells)
        image, text = np.isin(cell, (0, 1)).astype(float), np.isin(cell, (0, 2)).astype(float)
        d = paired_difference(image, text)
        hits_ifl += d.ci_low <= true_ifl <= d.ci_high
        f = fidelity_interval(image)
        hits_image += f.ci_low <= true_image <= f.ci_high
    for hits in (hits_ifl, hits_image):
        assert 0.925 <= hits / reps <= 0.98, hits / reps
