"""Tests for ifl.represent.cka against closed forms and an independent Kornblith reimplementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ifl.represent.cka import (
    cka_from_grams,
    cka_heatmap,
    gram_linear,
    gram_rbf,
    hsic_biased,
    linear_cka,
    rbf_cka,
    triangle_heatmap,
)

torch.set_num_threads(1)


def _data(n: int = 60, p: int = 8, q: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    Y = X[:, :q] @ rng.standard_normal((q, q)) + 0.5 * rng.standard_normal((n, q))
    return X, Y


# Independent reimplementation of Kornblith et al.'s Colab (gram_rbf, center_gram, cka).
def _ref_gram_rbf(x: np.ndarray, threshold: float = 1.0) -> np.ndarray:
    dot_products = x.dot(x.T)
    sq_norms = np.diag(dot_products)
    sq_distances = -2 * dot_products + sq_norms[:, None] + sq_norms[None, :]
    sq_median_distance = np.median(sq_distances)
    return np.exp(-sq_distances / (2 * threshold**2 * sq_median_distance))


def _ref_center(gram: np.ndarray) -> np.ndarray:
    n = gram.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    return H @ gram @ H


def _ref_cka(gram_x: np.ndarray, gram_y: np.ndarray) -> float:
    gx, gy = _ref_center(gram_x), _ref_center(gram_y)
    return float(gx.ravel() @ gy.ravel() / (np.linalg.norm(gx) * np.linalg.norm(gy)))


def _ref_linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    num = np.linalg.norm(Yc.T @ Xc) ** 2
    return float(num / (np.linalg.norm(Xc.T @ Xc) * np.linalg.norm(Yc.T @ Yc)))


def test_self_similarity_is_one() -> None:
    X, _ = _data()
    assert linear_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    assert rbf_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    assert rbf_cka(X, X, threshold=0.3) == pytest.approx(1.0, abs=1e-12)


def test_one_dimensional_linear_cka_is_squared_correlation() -> None:
    # For single columns, linear CKA reduces to the squared Pearson correlation.
    rng = np.random.default_rng(1)
    x = rng.standard_normal(200)
    y = 0.7 * x + rng.standard_normal(200)
    r = np.corrcoef(x, y)[0, 1]
    assert linear_cka(x[:, None], y[:, None]) == pytest.approx(r**2, rel=1e-12)


def test_linear_invariant_to_orthogonal_maps_and_isotropic_scaling() -> None:
    X, Y = _data()
    base = linear_cka(X, Y)
    Q, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((X.shape[1], X.shape[1])))
    assert linear_cka(X @ Q, Y) == pytest.approx(base, abs=1e-12)
    assert linear_cka(3.7 * X, 0.01 * Y) == pytest.approx(base, abs=1e-12)
    assert linear_cka(X + 5.0, Y - 2.0) == pytest.approx(base, abs=1e-12)


def test_linear_not_invariant_to_general_invertible_maps() -> None:
    X, Y = _data()
    A = np.diag([1.0] * (X.shape[1] - 1) + [50.0])  # invertible, but stretches one axis
    assert linear_cka(X, X @ A) < 0.5
    assert abs(linear_cka(X @ A, Y) - linear_cka(X, Y)) > 0.05


def test_symmetric() -> None:
    X, Y = _data()
    assert linear_cka(X, Y) == pytest.approx(linear_cka(Y, X), abs=1e-14)
    assert rbf_cka(X, Y) == pytest.approx(rbf_cka(Y, X), abs=1e-14)


def test_feature_space_matches_gram_formulation() -> None:
    X, Y = _data(n=50, p=70, q=30)
    feature = linear_cka(X, Y)
    assert abs(feature - cka_from_grams(gram_linear(X), gram_linear(Y))) < 1e-10
    assert abs(feature - _ref_cka(X @ X.T, Y @ Y.T)) < 1e-10
    assert abs(feature - _ref_linear_cka(X, Y)) < 1e-12


@pytest.mark.parametrize("threshold", [0.5, 1.0, 2.0])
def test_rbf_matches_kornblith_reference(threshold: float) -> None:
    X, Y = _data(n=80)
    expected = _ref_cka(_ref_gram_rbf(X, threshold), _ref_gram_rbf(Y, threshold))
    assert rbf_cka(X, Y, threshold) == pytest.approx(expected, abs=1e-10)
    np.testing.assert_allclose(gram_rbf(X, threshold), _ref_gram_rbf(X, threshold), atol=1e-12)


def test_rbf_bandwidth_uses_median_including_diagonal() -> None:
    # Squared distances of 0, 1, 2, 4: median 2.5 with the four diagonal zeros, 4 without.
    X = np.array([[0.0], [1.0], [2.0], [4.0]])
    d2 = (X - X.T) ** 2
    median_all = np.median(d2)
    assert median_all == 2.5 and np.median(d2[~np.eye(4, dtype=bool)]) == 4.0
    np.testing.assert_allclose(gram_rbf(X), np.exp(-d2 / (2 * median_all)), atol=1e-14)


def test_hsic_biased_closed_form_and_centring_idempotent() -> None:
    X, Y = _data(n=30)
    K, L = gram_linear(X), gram_rbf(Y)
    n = K.shape[0]
    H = np.eye(n) - 1.0 / n
    expected = np.trace(K @ H @ L @ H) / (n - 1) ** 2
    assert hsic_biased(K, L) == pytest.approx(expected, rel=1e-12)
    assert hsic_biased(H @ K @ H, H @ L @ H) == pytest.approx(expected, rel=1e-12)
    assert cka_from_grams(K, L) == pytest.approx(
        hsic_biased(K, L) / np.sqrt(hsic_biased(K, K) * hsic_biased(L, L)), rel=1e-12
    )


def test_torch_and_numpy_agree() -> None:
    X, Y = _data()
    tX, tY = torch.from_numpy(X), torch.from_numpy(Y)
    assert linear_cka(tX, tY) == pytest.approx(linear_cka(X, Y), abs=1e-12)
    assert linear_cka(tX, Y) == pytest.approx(linear_cka(X, Y), abs=1e-12)
    assert rbf_cka(tX, tY) == pytest.approx(rbf_cka(X, Y), abs=1e-12)
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    t32 = linear_cka(torch.from_numpy(X32), torch.from_numpy(Y32))
    assert t32 == pytest.approx(linear_cka(X32, Y32), abs=1e-6)
    assert t32 == pytest.approx(linear_cka(X, Y), abs=1e-5)


@pytest.mark.parametrize("chunk_rows", [1, 7, 59, 60, 1000])
def test_chunking_matches_unchunked_formula(chunk_rows: int) -> None:
    X, Y = _data()
    expected = _ref_linear_cka(X, Y)
    assert linear_cka(X, Y, chunk_rows=chunk_rows) == pytest.approx(expected, abs=1e-12)
    tX, tY = torch.from_numpy(X), torch.from_numpy(Y)
    assert linear_cka(tX, tY, chunk_rows=chunk_rows) == pytest.approx(expected, abs=1e-12)


def test_float32_with_large_column_means_stays_accurate() -> None:
    # Hidden states often have huge column offsets; X^T X - n mu mu^T in float32 would lose them.
    X, Y = _data(n=2000, p=16, q=16)
    offset = np.linspace(-3e3, 3e3, 16)
    expected = _ref_linear_cka(X, Y)
    X32, Y32 = (X + offset).astype(np.float32), (Y - offset).astype(np.float32)
    assert linear_cka(X32, Y32, chunk_rows=256) == pytest.approx(expected, abs=1e-4)
    t = linear_cka(torch.from_numpy(X32), torch.from_numpy(Y32), chunk_rows=256)
    assert t == pytest.approx(expected, abs=1e-4)


def test_rbf_subsample_is_documented_uniform_draw() -> None:
    X, Y = _data(n=300)
    idx = np.sort(np.random.default_rng(5).choice(300, size=40, replace=False))
    expected = _ref_cka(_ref_gram_rbf(X[idx]), _ref_gram_rbf(Y[idx]))
    assert rbf_cka(X, Y, max_rows=40, seed=5) == pytest.approx(expected, abs=1e-10)
    assert rbf_cka(X, Y, max_rows=40, seed=5) == rbf_cka(X, Y, max_rows=40, seed=5)
    assert rbf_cka(X, Y, max_rows=40, seed=6) != rbf_cka(X, Y, max_rows=40, seed=5)
    assert rbf_cka(X, Y, max_rows=None) == rbf_cka(X, Y, max_rows=300)
    tX = torch.from_numpy(X)
    assert rbf_cka(tX, Y, max_rows=40, seed=5) == pytest.approx(expected, abs=1e-10)


def test_heatmap_entries_and_triangle_layout() -> None:
    rng = np.random.default_rng(3)
    layers = [rng.standard_normal((40, 6))]
    for _ in range(3):
        layers.append(np.tanh(layers[-1] @ rng.standard_normal((6, 6))))
    lin = cka_heatmap(layers, layers)
    rbf = cka_heatmap(layers, layers, kind="rbf")
    for i in range(4):
        for j in range(4):
            assert lin[i, j] == pytest.approx(_ref_linear_cka(layers[i], layers[j]), abs=1e-12)
            assert rbf[i, j] == pytest.approx(rbf_cka(layers[i], layers[j]), abs=1e-12)
    np.testing.assert_allclose(np.diag(lin), 1.0, atol=1e-12)
    np.testing.assert_allclose(lin, lin.T, atol=1e-12)
    # Rectangular and mixed numpy/torch inputs.
    rect = cka_heatmap(layers[:2], [torch.from_numpy(M) for M in layers[1:]], kind="rbf")
    np.testing.assert_allclose(rect, rbf[:2, 1:], atol=1e-12)
    rect_lin = cka_heatmap([torch.from_numpy(layers[0])], layers, chunk_rows=9)
    np.testing.assert_allclose(rect_lin, lin[:1], atol=1e-12)

    tri = triangle_heatmap(lin, rbf)
    assert tri[2, 1] == lin[2, 1] and tri[1, 1] == lin[1, 1] and tri[1, 2] == rbf[1, 2]
    assert tri[0, 3] == rbf[0, 3] and tri[3, 0] == lin[3, 0]


@pytest.mark.parametrize(
    ("X", "Y", "pattern", "heatmap_pattern"),
    [
        (
            np.zeros((10, 3)),
            np.zeros((11, 3)),
            r"same number of rows.*\(10, 3\).*\(11, 3\)",
            r"same number of rows.*\(10, 3\).*\(11, 3\)",
        ),
        (
            np.ones((1, 3)),
            np.ones((1, 4)),
            r"at least 2 rows.*\(1, 3\).*\(1, 4\)",
            r"at least 2 rows.*\(1, 3\)",
        ),
        (np.ones(10), np.ones((10, 2)), r"X must be 2-D.*\(10,\)", r"layers_a\[0\].*\(10,\)"),
        (
            np.ones((10, 2)),
            np.ones((10, 2, 2)),
            r"Y must be 2-D.*\(10, 2, 2\)",
            r"layers_b\[0\].*\(10, 2, 2\)",
        ),
    ],
)
def test_validation_errors(
    X: np.ndarray, Y: np.ndarray, pattern: str, heatmap_pattern: str
) -> None:
    with pytest.raises(ValueError, match=pattern):
        linear_cka(X, Y)
    with pytest.raises(ValueError, match=pattern):
        rbf_cka(X, Y)
    with pytest.raises(ValueError, match=heatmap_pattern):
        cka_heatmap([X], [Y])


def test_degenerate_inputs_raise() -> None:
    X, _ = _data()
    with pytest.raises(ValueError, match="zero variance"):
        linear_cka(X, np.ones((X.shape[0], 3)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        linear_cka(X, np.where(np.eye(X.shape[0], 3) > 0, np.nan, 1.0))
    with pytest.raises(ValueError, match="median squared distance"):
        rbf_cka(X, np.zeros((X.shape[0], 2)))
    with pytest.raises(ValueError, match="threshold"):
        rbf_cka(X, X, threshold=0.0)
    with pytest.raises(ValueError, match="chunk_rows"):
        linear_cka(X, X, chunk_rows=0)
    with pytest.raises(ValueError, match="kind"):
        cka_heatmap([X], [X], kind="cosine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rbf must have the shape"):
        triangle_heatmap(np.eye(3), np.eye(2))
    with pytest.raises(ValueError, match="max_rows"):
        rbf_cka(X, X, max_rows=1)
