"""2-D projections of hidden states (UMAP, t-SNE), the modality gap and a 2-D KDE.

``embed_2d`` draws the UMAP panels of the paper's Figure 2 (McInnes et al. 2018); ``modality_gap``
and ``kde_2d`` reproduce the LRM-LLaVA (Li et al. 2025) comparison of mean projector outputs
against mean text features (t-SNE + kernel density).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import gaussian_kde

METHODS = ("umap", "tsne")


def _as_points(X: Any, name: str, min_rows: int = 1) -> np.ndarray:
    """Return X as a finite 2-D float64 numpy array with at least ``min_rows`` rows."""
    if isinstance(X, torch.Tensor):
        X = X.detach().to("cpu", torch.float64).numpy()
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n x features), got shape {X.shape}")
    if X.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError(f"{name} (shape {X.shape}) contains NaN or infinite values")
    return X


def embed_2d(X: Any, method: str = "umap", *, seed: int = 0, **kwargs: Any) -> np.ndarray:
    """Embed the rows of X (n x p, numpy or torch) in 2-D; deterministic for a given seed.

    ``"umap"``: umap-learn with ``random_state=seed`` (which makes it single-threaded),
    ``n_neighbors=15`` (capped at n - 1) and ``min_dist=0.1`` unless overridden in ``kwargs``.
    ``"tsne"``: scikit-learn TSNE with ``random_state=seed`` and perplexity (default 30) clipped
    to (n - 1) / 3. Remaining ``kwargs`` go to the estimator. Returns an n x 2 float64 array.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    X = _as_points(X, "X", min_rows=4)
    n = X.shape[0]
    if method == "tsne":
        from sklearn.manifold import TSNE

        params: dict[str, Any] = {"perplexity": 30.0, "init": "pca"} | kwargs
        params["perplexity"] = min(float(params["perplexity"]), (n - 1) / 3)
        model = TSNE(n_components=2, random_state=seed, **params)
        return np.asarray(model.fit_transform(X), dtype=np.float64)

    import umap  # slow import (numba); only paid when UMAP is asked for

    # Repeated rows (the same token's input embedding, say) tie in the neighbour search, and
    # umap-learn breaks those ties differently from one call to the next: embed each distinct
    # row once and give its copies its coordinates.
    distinct, copies = np.unique(X, axis=0, return_inverse=True)
    if len(distinct) < 4:
        raise ValueError(f"X needs at least 4 distinct rows, got {len(distinct)}")
    params = {"n_neighbors": 15, "min_dist": 0.1, "n_jobs": 1} | kwargs
    params["n_neighbors"] = min(int(params["n_neighbors"]), len(distinct) - 1)
    model = umap.UMAP(n_components=2, random_state=seed, **params)
    with warnings.catch_warnings():
        # Small inputs make umap-learn warn about spectral init or graph size; not actionable.
        warnings.filterwarnings("ignore", category=UserWarning, module="umap")
        xy = np.asarray(model.fit_transform(distinct), dtype=np.float64)
    return xy[copies.reshape(-1)]


def modality_gap(image_feats: Any, text_feats: Any) -> float:
    """Euclidean distance between the mean image and the mean text feature vector.

    As in LRM-LLaVA: ``||mean(image_feats) - mean(text_feats)||_2``; the row counts may differ,
    the feature widths must match.
    """
    img = _as_points(image_feats, "image_feats")
    txt = _as_points(text_feats, "text_feats")
    if img.shape[1] != txt.shape[1]:
        raise ValueError(
            f"image_feats and text_feats must have the same width, got shapes {img.shape} and "
            f"{txt.shape}"
        )
    return float(np.linalg.norm(img.mean(axis=0) - txt.mean(axis=0)))


def kde_2d(
    points: Any, grid: int = 100, *, pad: float = 0.1, bw_method: Any = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian KDE of 2-D points evaluated on a ``grid`` x ``grid`` mesh.

    The mesh spans the points' bounding box widened by ``pad`` times its range on each side;
    ``bw_method`` goes to ``scipy.stats.gaussian_kde`` (default Scott's rule). Returns
    ``(xx, yy, density)``, each ``grid`` x ``grid``, with ``xx`` varying along columns.
    """
    P = _as_points(points, "points", min_rows=3)
    if P.shape[1] != 2:
        raise ValueError(f"points must be n x 2, got shape {P.shape}")
    if int(grid) != grid or grid < 2:
        raise ValueError(f"grid must be an integer >= 2, got {grid}")
    if not np.isfinite(pad) or pad < 0:
        raise ValueError(f"pad must be a non-negative finite number, got {pad}")
    try:
        kde = gaussian_kde(P.T, bw_method=bw_method)
    except np.linalg.LinAlgError as err:
        raise ValueError(
            f"points (shape {P.shape}) lie on a line or a point; their 2-D density is singular"
        ) from err
    lo, hi = P.min(axis=0), P.max(axis=0)
    span = hi - lo
    xs = np.linspace(lo[0] - pad * span[0], hi[0] + pad * span[0], int(grid))
    ys = np.linspace(lo[1] - pad * span[1], hi[1] + pad * span[1], int(grid))
    xx, yy = np.meshgrid(xs, ys)
    density = kde(np.vstack([xx.ravel(), yy.ravel()])).reshape(xx.shape)
    return xx, yy, density


def project_points(
    meta: pd.DataFrame, arrays: Mapping[int, np.ndarray], *, method: str = "umap", seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """2-D coordinates of every point per layer (image and text tokens embedded jointly), and
    the modality gap per layer (distance between the mean image and mean text token state)."""
    coords, gaps = [], []
    image = (meta["modality"] == "image").to_numpy()
    for layer, X in sorted(arrays.items()):
        xy = embed_2d(X, method, seed=seed)
        coords.append(meta.assign(layer=layer, method=method, x=xy[:, 0], y=xy[:, 1]))
        gaps.append(
            {
                "layer": layer,
                "modality_gap": modality_gap(X[image], X[~image]),
                "n_image": int(image.sum()),
                "n_text": int((~image).sum()),
            }
        )
    return pd.concat(coords, ignore_index=True), pd.DataFrame(gaps)
