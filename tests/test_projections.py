"""Tests for ifl.represent.projections: UMAP/t-SNE embeddings, modality gap, 2-D KDE."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from ifl.represent.projections import embed_2d, kde_2d, modality_gap

torch.set_num_threads(1)


def _two_clusters(n: int = 200, p: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    X = rng.standard_normal((n, p)) + 8.0 * labels[:, None]
    return X, labels


def _separated(emb: np.ndarray, labels: np.ndarray) -> bool:
    """Every point is closer to its own cluster's centroid than to the other one."""
    c0, c1 = emb[labels == 0].mean(0), emb[labels == 1].mean(0)
    closer_to_1 = np.linalg.norm(emb - c1, axis=1) < np.linalg.norm(emb - c0, axis=1)
    return bool(np.all(closer_to_1 == (labels == 1)))


# Fewer iterations keep the t-SNE tests fast; the geometry below is easy enough for 400.
FAST_TSNE = {"max_iter": 400}


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    # t-SNE's OpenMP gradient spins badly on shared cores; one thread is faster here.
    with threadpool_limits(limits=1):
        yield


@pytest.mark.parametrize(("method", "kwargs"), [("umap", {}), ("tsne", FAST_TSNE)])
def test_embedding_is_deterministic_and_separates_clusters(method: str, kwargs: dict) -> None:
    X, labels = _two_clusters()
    a = embed_2d(X, method, seed=3, **kwargs)
    b = embed_2d(torch.from_numpy(X), method, seed=3, **kwargs)
    assert a.shape == (200, 2) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert _separated(a, labels)
    # The seed matters wherever randomness enters (UMAP; t-SNE with random init).
    extra = {"init": "random"} if method == "tsne" else {}
    c = embed_2d(X, method, seed=3, **kwargs, **extra)
    np.testing.assert_array_equal(c, embed_2d(X, method, seed=3, **kwargs, **extra))
    assert not np.array_equal(c, embed_2d(X, method, seed=4, **kwargs, **extra))


def test_tsne_perplexity_is_clipped_for_small_inputs() -> None:
    # sklearn rejects perplexity >= n; the default 30 must be clipped to (n - 1) / 3 = 3.
    X, _ = _two_clusters(n=10)
    assert embed_2d(X, "tsne", **FAST_TSNE).shape == (10, 2)


def test_umap_accepts_overrides_and_small_inputs() -> None:
    X, labels = _two_clusters(n=12)
    emb = embed_2d(X, "umap", n_neighbors=50, min_dist=0.5)
    assert emb.shape == (12, 2) and np.isfinite(emb).all()


def test_umap_repeated_rows_are_deterministic_and_share_coordinates() -> None:
    # Token embeddings repeat (the same word in many questions); ties in the neighbour search
    # once made every call give a different layout.
    X, _ = _two_clusters(n=60)
    rows = np.random.default_rng(0).integers(0, 60, 400)
    a, b = embed_2d(X[rows], "umap"), embed_2d(X[rows], "umap")
    np.testing.assert_array_equal(a, b)
    first = {r: i for i, r in reversed(list(enumerate(rows)))}
    np.testing.assert_array_equal(a, a[[first[r] for r in rows]])
    with pytest.raises(ValueError, match="at least 4 distinct rows, got 2"):
        embed_2d(X[[0, 1, 0, 1, 0]], "umap")


def test_embed_rejects_bad_input() -> None:
    X, _ = _two_clusters(n=20)
    with pytest.raises(ValueError, match="method must be one of.*'pca'"):
        embed_2d(X, "pca")
    with pytest.raises(ValueError, match=r"2-D.*\(20,\)"):
        embed_2d(X[:, 0])
    with pytest.raises(ValueError, match=r"at least 4 rows.*\(3, 10\)"):
        embed_2d(X[:3], "tsne", **FAST_TSNE)


def test_modality_gap_closed_form() -> None:
    rng = np.random.default_rng(1)
    mu_img, mu_txt = np.array([3.0, 0.0, 1.0]), np.array([0.0, 4.0, 1.0])
    noise_a, noise_b = rng.standard_normal((50, 3)), rng.standard_normal((70, 3))
    img = noise_a - noise_a.mean(0) + mu_img  # sample means equal mu exactly
    txt = noise_b - noise_b.mean(0) + mu_txt
    assert modality_gap(img, txt) == pytest.approx(5.0, abs=1e-12)
    assert modality_gap(torch.from_numpy(img), txt) == pytest.approx(5.0, abs=1e-12)
    assert modality_gap(img, img[::-1]) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match=r"same width.*\(50, 3\).*\(70, 2\)"):
        modality_gap(img, txt[:, :2])


def test_kde_matches_gaussian_closed_form() -> None:
    # KDE of N(0, I) samples with Scott's factor h has expectation N(0, (1 + h^2) I) at the
    # origin (sample covariance ~ I), so the density there is ~ 1 / (2 pi (1 + h^2)).
    rng = np.random.default_rng(2)
    n = 4000
    pts = rng.standard_normal((n, 2))
    xx, yy, dens = kde_2d(pts, grid=81, pad=0.0)
    assert xx.shape == yy.shape == dens.shape == (81, 81)
    assert np.all(np.diff(xx[0]) > 0) and np.all(np.diff(yy[:, 0]) > 0)
    h2 = n ** (-2 / 6)
    centre = dens[np.argmin(np.abs(yy[:, 0])), np.argmin(np.abs(xx[0]))]
    assert centre == pytest.approx(1 / (2 * np.pi * (1 + h2)), rel=0.1)
    # With padding the mesh holds essentially all of the mass.
    xx, yy, dens = kde_2d(pts, grid=200, pad=0.3)
    cell = (xx[0, 1] - xx[0, 0]) * (yy[1, 0] - yy[0, 0])
    assert dens.sum() * cell == pytest.approx(1.0, abs=0.01)


def test_kde_rejects_bad_input() -> None:
    rng = np.random.default_rng(3)
    with pytest.raises(ValueError, match=r"n x 2.*\(10, 3\)"):
        kde_2d(rng.standard_normal((10, 3)))
    with pytest.raises(ValueError, match="grid"):
        kde_2d(rng.standard_normal((10, 2)), grid=1)
    line = np.column_stack([np.arange(10.0), 2 * np.arange(10.0)])
    with pytest.raises(ValueError, match="singular"):
        kde_2d(line)
