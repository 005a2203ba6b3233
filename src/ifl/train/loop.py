"""A small, deterministic training loop shared by every training stage."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm


def cosine_lr(step: int, steps: int, peak: float, warmup: float = 0.05) -> float:
    """Linear warm-up then cosine decay to 10% of the peak."""
    n_warm = max(1, int(steps * warmup))
    if step < n_warm:
        return peak * (step + 1) / n_warm
    progress = (step - n_warm) / max(1, steps - n_warm)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def fit(
    params: Iterable[torch.nn.Parameter],
    loss_fn: Callable[[np.random.Generator], torch.Tensor],
    *,
    steps: int,
    lr: float,
    seed: int,
    desc: str,
) -> pd.DataFrame:
    """Run ``steps`` AdamW steps of ``loss_fn`` (which draws its own batch) and return the loss curve.

    ``loss_fn`` receives a numpy generator seeded from ``seed`` so that batches, and hence the
    trained weights, are reproducible.
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError(f"{desc}: nothing to train (no parameter requires grad)")
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, betas=(0.9, 0.98))
    rng = np.random.default_rng(seed)
    curve = []
    bar = tqdm(range(steps), desc=desc, mininterval=5, unit="step")
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, steps, lr)
        loss = loss_fn(rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"{desc}: loss became {value} at step {step}; lower the lr")
        curve.append(value)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{value:.3f}")
    return pd.DataFrame({"stage": desc, "step": np.arange(len(curve)), "loss": curve})
