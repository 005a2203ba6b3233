"""A small, deterministic training loop shared by every training stage."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

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
    probes: Mapping[str, Callable[[], float | Mapping[str, float]]] | None = None,
    probe_every: int = 100,
) -> pd.DataFrame:
    """Run ``steps`` AdamW steps of ``loss_fn`` (which draws its own batch) and return the loss curve.

    ``loss_fn`` receives a numpy generator seeded from ``seed`` so that batches, and hence the
    trained weights, are reproducible. ``probes`` are measured every ``probe_every`` steps and
    after the last; the curve gets one column each (NaN between measurements), or one column
    ``name.key`` per key of a probe that returns a mapping. A probe must not draw from the
    global random state (it would change later batches).
    """
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError(f"{desc}: nothing to train (no parameter requires grad)")
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0, betas=(0.9, 0.98))
    rng = np.random.default_rng(seed)
    curve: list[dict[str, float]] = []
    probes = dict(probes or {})
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
        row = {"loss": value}
        if (step + 1) % probe_every == 0 or step == steps - 1:
            for name, probe in probes.items():
                got = probe()
                items = got.items() if isinstance(got, Mapping) else [(None, got)]
                row |= {name if k is None else f"{name}.{k}": float(v) for k, v in items}
        curve.append(row)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{value:.3f}")
    table = pd.DataFrame(curve, columns=None if curve else ["loss"], dtype=float)
    return pd.concat([pd.DataFrame({"stage": desc, "step": np.arange(len(curve))}), table], axis=1)
