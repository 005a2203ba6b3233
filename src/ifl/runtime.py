"""Device, threads and seeding: one place for how a job sets up torch.

torch is imported inside the functions so that light subcommands start fast.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def setup(device: str = "auto", threads: int = 1, seed: int = 0) -> torch.device:
    """Seed every generator, fix the CPU thread count and return the torch device.

    Deterministic algorithms are requested so that the same seed gives the same tables
    bit for bit on the CPU.
    """
    import torch

    torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device")
    return torch.device(device)


def from_config(cfg: dict) -> torch.device:
    """:func:`setup` with the config's device, threads and seed."""
    return setup(cfg["device"], cfg["threads"], cfg["seed"])
