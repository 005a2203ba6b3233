"""Centred kernel alignment (CKA) between two representations of the same inputs.

Follows Kornblith et al. 2019 ("Similarity of Neural Network Representations Revisited") and the
functions of their public Colab (``gram_linear``, ``gram_rbf``, ``center_gram``, ``cka``), using
the biased HSIC estimator throughout.

Linear CKA is computed in feature space,
``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)``, never forming the n x n Gram matrix. Rows
are processed in chunks: each chunk is centred on the fly (a chunk-sized copy only), multiplied in
the input precision and accumulated in float64. Centring each chunk before the product, rather
than using ``X^T X - n mu mu^T``, avoids catastrophic cancellation in float32 when hidden states
have large column means (common in LLM residual streams). Torch tensors stay in torch, on their
device.

RBF CKA needs the n x n Gram matrix. When n exceeds ``max_rows``, a uniform random subsample of
``max_rows`` rows, drawn without replacement with ``numpy.random.default_rng(seed)`` and kept in
their original order, is used for both X and Y.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

# Bytes per centred chunk (128 MB; 2-4x larger chunks measured no faster): few float64
# accumulation passes, small next to the inputs.
_CHUNK_BYTES = 1 << 27

Array = Any  # numpy array, torch tensor, or anything numpy.asarray accepts


# ----------------------------------------------------------------------------------------------
# input handling


def _as_matrix(X: Array, name: str) -> np.ndarray | torch.Tensor:
    """Return X as a floating numpy array or torch tensor (no copy when already floating)."""
    if isinstance(X, torch.Tensor):
        X = X.detach()
        if not torch.is_floating_point(X):
            X = X.to(torch.float64)
    else:
        X = np.asarray(X)
        if not np.issubdtype(X.dtype, np.floating):
            X = X.astype(np.float64)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n x features), got shape {tuple(X.shape)}")
    return X


def _as_pair(X: Array, Y: Array) -> tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]:
    """Validate a pair of representations; if either is a tensor, make both tensors."""
    X, Y = _as_matrix(X, "X"), _as_matrix(Y, "Y")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(
            "X and Y must have the same number of rows (the same inputs), got shapes "
            f"{tuple(X.shape)} and {tuple(Y.shape)}"
        )
    if X.shape[0] < 2:
        raise ValueError(
            f"CKA needs at least 2 rows, got shapes {tuple(X.shape)} and {tuple(Y.shape)}"
        )
    if isinstance(X, torch.Tensor) and not isinstance(Y, torch.Tensor):
        Y = torch.as_tensor(Y, device=X.device)
    elif isinstance(Y, torch.Tensor) and not isinstance(X, torch.Tensor):
        X = torch.as_tensor(X, device=Y.device)
    return X, Y


def _to_numpy64(X: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(X, torch.Tensor):
        return X.detach().to("cpu", torch.float64).numpy()
    return np.asarray(X, dtype=np.float64)


def _check_square(K: Array, name: str) -> np.ndarray:
    K = _to_numpy64(K)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"{name} must be a square Gram matrix, got shape {K.shape}")
    if K.shape[0] < 2:
        raise ValueError(f"{name} must have at least 2 rows, got shape {K.shape}")
    return K


# ----------------------------------------------------------------------------------------------
# Gram-matrix formulation (Kornblith et al. 2019)


def gram_linear(X: Array) -> np.ndarray:
    """Linear kernel Gram matrix ``X X^T`` (n x n, float64)."""
    X = _to_numpy64(_as_matrix(X, "X"))
    return X @ X.T


def gram_rbf(X: Array, threshold: float = 1.0) -> np.ndarray:
    """RBF Gram matrix ``exp(-d^2 / (2 sigma^2))`` with ``sigma^2 = threshold^2 * median(d^2)``.

    As in Kornblith's ``gram_rbf``, the median runs over the whole n x n matrix of squared
    distances, diagonal zeros included.
    """
    if not np.isfinite(threshold) or threshold <= 0:
        raise ValueError(f"threshold must be a positive finite number, got {threshold}")
    X = _to_numpy64(_as_matrix(X, "X"))
    # In-place steps keep a single n x n buffer; np.dot(X, X.T) dispatches to BLAS syrk.
    sq_dist = np.dot(X, X.T)
    sq_norms = np.diag(sq_dist).copy()
    sq_dist *= -2.0
    sq_dist += sq_norms[:, None]
    sq_dist += sq_norms[None, :]
    # Clipping removes tiny negative distances from rounding; it does not move the median.
    np.maximum(sq_dist, 0.0, out=sq_dist)
    median = np.median(sq_dist)
    if median <= 0:
        raise ValueError(
            f"median squared distance is {median}: over half of the row pairs of X (shape "
            f"{X.shape}) coincide, so the RBF bandwidth is undefined"
        )
    sq_dist *= -1.0 / (2.0 * threshold**2 * median)
    return np.exp(sq_dist, out=sq_dist)


def center_gram(K: Array) -> np.ndarray:
    """Double-centre a symmetric Gram matrix: ``H K H`` with ``H = I - 11^T / n``."""
    K = _check_square(K, "K")
    row_means = K.mean(axis=0)
    Kc = K - row_means[:, None]
    Kc -= row_means[None, :]
    Kc += row_means.mean()
    return Kc


def hsic_biased(K: Array, L: Array) -> float:
    """Biased HSIC estimator ``tr(K H L H) / (n - 1)^2`` (Kornblith et al. 2019, eq. 3).

    Both matrices are centred here; centring is idempotent, so already centred Gram matrices
    give the same value.
    """
    K, L = _check_square(K, "K"), _check_square(L, "L")
    if K.shape != L.shape:
        raise ValueError(f"K and L must have the same shape, got {K.shape} and {L.shape}")
    n = K.shape[0]
    return float(np.vdot(center_gram(K), center_gram(L)) / (n - 1) ** 2)


def _normalised_centred(K: np.ndarray, name: str) -> np.ndarray:
    Kc = center_gram(K)
    norm = np.linalg.norm(Kc)
    if norm == 0:
        raise ValueError(f"{name} is constant after centring (shape {Kc.shape}); CKA is undefined")
    Kc /= norm
    return Kc


def cka_from_grams(K: Array, L: Array) -> float:
    """CKA from two Gram matrices: ``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))``."""
    K, L = _check_square(K, "K"), _check_square(L, "L")
    if K.shape != L.shape:
        raise ValueError(f"K and L must have the same shape, got {K.shape} and {L.shape}")
    return float(np.vdot(_normalised_centred(K, "K"), _normalised_centred(L, "L")))


# ----------------------------------------------------------------------------------------------
# linear CKA in feature space


def _compute_dtype(*mats: np.ndarray | torch.Tensor) -> Any:
    """float64 if any input is float64, else float32 (half precisions are promoted)."""
    if isinstance(mats[0], torch.Tensor):
        return torch.float64 if any(m.dtype == torch.float64 for m in mats) else torch.float32
    return np.float64 if any(m.dtype == np.float64 for m in mats) else np.float32


def _chunk_size(chunk_rows: int | None, *mats: np.ndarray | torch.Tensor) -> int:
    if chunk_rows is not None:
        if int(chunk_rows) != chunk_rows or chunk_rows < 1:
            raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows}")
        return int(chunk_rows)
    width = sum(m.shape[1] for m in mats)
    return max(1, _CHUNK_BYTES // max(1, 4 * width))


def _column_mean(X: np.ndarray | torch.Tensor, chunk: int, name: str) -> np.ndarray | torch.Tensor:
    """Column means, accumulated over row chunks in float64."""
    n = X.shape[0]
    if isinstance(X, torch.Tensor):
        total = torch.zeros(X.shape[1], dtype=torch.float64, device=X.device)
        for s in range(0, n, chunk):
            # A float64 reduction in torch is ~10x slower than summing in the input precision
            # per chunk; mean errors only enter the centred products at second order.
            total += X[s : s + chunk].sum(0, dtype=_compute_dtype(X))
        finite = bool(torch.isfinite(total).all())
    else:
        total = np.zeros(X.shape[1], dtype=np.float64)
        for s in range(0, n, chunk):
            total += X[s : s + chunk].sum(axis=0, dtype=np.float64)
        finite = bool(np.isfinite(total).all())
    if not finite:
        raise ValueError(f"{name} (shape {tuple(X.shape)}) contains NaN or infinite values")
    return total / n


def _centred_chunk(X: Any, mean: Any, s: int, e: int, dtype: Any) -> Any:
    if isinstance(X, torch.Tensor):
        return X[s:e].to(dtype) - mean.to(dtype)
    return X[s:e].astype(dtype, copy=False) - mean.astype(dtype)


def _accumulate(
    X: Any, Y: Any | None, mx: Any, my: Any | None, chunk: int, dtype: Any, want_self: bool
) -> tuple[Any, Any, Any]:
    """Accumulate ``Xc^T Yc`` and, if asked, ``Xc^T Xc`` and ``Yc^T Yc`` in float64."""
    is_torch = isinstance(X, torch.Tensor)

    def zeros(p: int, q: int) -> Any:
        if is_torch:
            return torch.zeros(p, q, dtype=torch.float64, device=X.device)
        return np.zeros((p, q), dtype=np.float64)

    def self_product(c: Any) -> Any:
        # np.dot(c.T, c) on one buffer dispatches to BLAS syrk: half the flops of a general gemm.
        return c.T @ c if is_torch else np.dot(c.T, c)

    xy = zeros(X.shape[1], Y.shape[1]) if Y is not None else None
    xx = zeros(X.shape[1], X.shape[1]) if want_self else None
    yy = zeros(Y.shape[1], Y.shape[1]) if want_self and Y is not None else None
    for s in range(0, X.shape[0], chunk):
        e = min(s + chunk, X.shape[0])
        xc = _centred_chunk(X, mx, s, e, dtype)
        if xx is not None:
            xx += self_product(xc)
        if Y is not None:
            yc = _centred_chunk(Y, my, s, e, dtype)
            xy += xc.T @ yc if is_torch else np.dot(xc.T, yc)
            if yy is not None:
                yy += self_product(yc)
    return xy, xx, yy


def _frobenius_sq(A: Any) -> float:
    if isinstance(A, torch.Tensor):
        return float(torch.sum(A * A))
    return float(np.vdot(A, A))


def _self_norm(X: Any, mean: Any, chunk: int, name: str) -> float:
    """``||Xc^T Xc||_F`` for one representation."""
    _, xx, _ = _accumulate(X, None, mean, None, chunk, _compute_dtype(X), want_self=True)
    norm = float(np.sqrt(_frobenius_sq(xx)))
    if norm == 0:
        raise ValueError(f"{name} (shape {tuple(X.shape)}) has zero variance; CKA is undefined")
    return norm


def linear_cka(X: Array, Y: Array, *, chunk_rows: int | None = None) -> float:
    """Linear CKA between two representations of the same n inputs (rows).

    ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` with column-centred X (n x p) and Y
    (n x q), equal to CKA on the linear Gram matrices. Numpy or torch inputs (torch stays on its
    device). ``chunk_rows`` sets how many rows are centred and multiplied at a time (default:
    about 512 MB of float32 per chunk); the result does not depend on it beyond rounding.
    """
    X, Y = _as_pair(X, Y)
    chunk = _chunk_size(chunk_rows, X, Y)
    mx, my = _column_mean(X, chunk, "X"), _column_mean(Y, chunk, "Y")
    xy, xx, yy = _accumulate(X, Y, mx, my, chunk, _compute_dtype(X, Y), want_self=True)
    nx, ny = np.sqrt(_frobenius_sq(xx)), np.sqrt(_frobenius_sq(yy))
    if nx == 0 or ny == 0:
        name, M = ("X", X) if nx == 0 else ("Y", Y)
        raise ValueError(f"{name} (shape {tuple(M.shape)}) has zero variance; CKA is undefined")
    return float(_frobenius_sq(xy) / (nx * ny))


# ----------------------------------------------------------------------------------------------
# RBF CKA


def _subsample_rows(n: int, max_rows: int | None, seed: int) -> np.ndarray | None:
    """Sorted uniform random row indices without replacement, or None to keep every row."""
    if max_rows is None:
        return None
    if int(max_rows) != max_rows or max_rows < 2:
        raise ValueError(f"max_rows must be an integer >= 2 or None, got {max_rows}")
    if n <= max_rows:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=int(max_rows), replace=False))


def _rows_numpy(X: np.ndarray | torch.Tensor, idx: np.ndarray | None) -> np.ndarray:
    if idx is not None:
        X = X[torch.as_tensor(idx, device=X.device)] if isinstance(X, torch.Tensor) else X[idx]
    return _to_numpy64(X)


def rbf_cka(
    X: Array,
    Y: Array,
    threshold: float = 1.0,
    *,
    max_rows: int | None = 5000,
    seed: int = 0,
) -> float:
    """RBF-kernel CKA (Kornblith et al. 2019), bandwidth ``threshold`` x median distance.

    When n > ``max_rows``, the same uniform random subsample of ``max_rows`` rows (seeded by
    ``seed``) is used for X and Y; ``max_rows=None`` uses every row (n x n memory).
    """
    X, Y = _as_pair(X, Y)
    idx = _subsample_rows(X.shape[0], max_rows, seed)
    # Normalise each Gram matrix before building the next, so at most three n x n arrays live.
    K = _normalised_centred(gram_rbf(_rows_numpy(X, idx), threshold), "RBF Gram of X")
    L = _normalised_centred(gram_rbf(_rows_numpy(Y, idx), threshold), "RBF Gram of Y")
    return float(np.vdot(K, L))


# ----------------------------------------------------------------------------------------------
# layer-by-layer heatmaps


def cka_heatmap(
    layers_a: Sequence[Array],
    layers_b: Sequence[Array],
    *,
    kind: Literal["linear", "rbf"] = "linear",
    threshold: float = 1.0,
    max_rows: int | None = 5000,
    seed: int = 0,
    chunk_rows: int | None = None,
) -> np.ndarray:
    """Matrix ``M[i, j] = CKA(layers_a[i], layers_b[j])`` for linear or RBF CKA.

    Per-layer quantities are computed once: self norms for linear CKA, normalised centred Gram
    matrices of ``layers_b`` for RBF CKA (memory ``len(layers_b) * m^2 * 8`` bytes with
    ``m = min(n, max_rows)``). All layers must share the same rows.
    """
    if kind not in ("linear", "rbf"):
        raise ValueError(f"kind must be 'linear' or 'rbf', got {kind!r}")
    A, B = _common_layers(layers_a, layers_b)
    out = np.empty((len(A), len(B)), dtype=np.float64)
    same = layers_a is layers_b
    if kind == "rbf":
        idx = _subsample_rows(A[0].shape[0], max_rows, seed)

        def gram(M: Any, name: str) -> np.ndarray:
            return _normalised_centred(gram_rbf(_rows_numpy(M, idx), threshold), name)

        grams_b = [gram(M, f"layers_b[{j}]") for j, M in enumerate(B)]
        for i, M in enumerate(A):
            Ka = grams_b[i] if same else gram(M, f"layers_a[{i}]")
            out[i] = [np.vdot(Ka, Kb) for Kb in grams_b]
        return out

    def stats(layers: list[Any], prefix: str) -> list[tuple[Any, float]]:
        result = []
        for k, M in enumerate(layers):
            chunk = _chunk_size(chunk_rows, M)
            mean = _column_mean(M, chunk, f"{prefix}[{k}]")
            result.append((mean, _self_norm(M, mean, chunk, f"{prefix}[{k}]")))
        return result

    stats_a = stats(A, "layers_a")
    stats_b = stats_a if same else stats(B, "layers_b")
    for i, (Xa, (ma, na)) in enumerate(zip(A, stats_a, strict=True)):
        for j, (Xb, (mb, nb)) in enumerate(zip(B, stats_b, strict=True)):
            chunk = _chunk_size(chunk_rows, Xa, Xb)
            dtype = _compute_dtype(Xa, Xb)
            xy, _, _ = _accumulate(Xa, Xb, ma, mb, chunk, dtype, want_self=False)
            out[i, j] = _frobenius_sq(xy) / (na * nb)
    return out


def _common_layers(layers_a: Sequence[Array], layers_b: Sequence[Array]) -> tuple[list, list]:
    """Validate layer lists (same rows, >= 2) and give them one type (torch if any is torch)."""
    if len(layers_a) == 0 or len(layers_b) == 0:
        raise ValueError(
            f"layers_a and layers_b must be non-empty, got {len(layers_a)} and {len(layers_b)}"
        )
    A = [_as_matrix(M, f"layers_a[{i}]") for i, M in enumerate(layers_a)]
    B = [_as_matrix(M, f"layers_b[{j}]") for j, M in enumerate(layers_b)]
    for M in A + B:
        _as_pair(A[0], M)  # raises on mismatched rows or too few rows, naming the shapes
    tensors = [M for M in A + B if isinstance(M, torch.Tensor)]
    if tensors:
        device = tensors[0].device
        A = [torch.as_tensor(M, device=device) for M in A]
        B = [torch.as_tensor(M, device=device) for M in B]
    return A, B


def triangle_mask(n_a: int, n_b: int) -> np.ndarray:
    """Cells ``(i, j)`` on or below the diagonal of an ``n_a`` x ``n_b`` layer grid (relative
    depth ``i / (n_a - 1) >= j / (n_b - 1)``; the plain ``i >= j`` when square)."""
    if n_a < 1 or n_b < 1:
        raise ValueError(f"layer counts must be positive, got {n_a} and {n_b}")
    i, j = np.meshgrid(np.arange(n_a), np.arange(n_b), indexing="ij")
    return (
        i * max(n_b - 1, 1) >= j * max(n_a - 1, 1)
        if n_a > 1 and n_b > 1
        else np.ones((n_a, n_b), bool)
    )


def triangle_heatmap(linear: Array, rbf: Array) -> np.ndarray:
    """Combine two square CKA matrices in the paper's layout.

    Entries on and below the diagonal (i >= j) come from ``linear``, entries above it from
    ``rbf``.
    """
    L, R = np.asarray(linear, dtype=np.float64), np.asarray(rbf, dtype=np.float64)
    if L.ndim != 2 or L.shape[0] != L.shape[1]:
        raise ValueError(f"linear must be a square matrix, got shape {L.shape}")
    if R.shape != L.shape:
        raise ValueError(f"rbf must have the shape of linear {L.shape}, got {R.shape}")
    return np.where(triangle_mask(*L.shape), L, R)
