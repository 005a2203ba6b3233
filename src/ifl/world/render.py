"""Draw scenes into small RGB images (pure numpy, deterministic) and save them as PNG."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from ifl.world.scenes import Scene

# Saturated, well separated colours on a dark-grey background; no anti-aliasing, so every
# object pixel carries exactly its colour (tests and vision models can rely on it).
RGB: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 190, 60),
    "blue": (40, 90, 235),
    "yellow": (240, 220, 30),
    "purple": (150, 60, 200),
    "white": (245, 245, 245),
}
BACKGROUND: tuple[int, int, int] = (48, 48, 48)
# Object side in pixels at the reference image size of 32 (cells are 16x16).
_SIDE_AT_32 = {"small": 6, "large": 12}


@cache
def shape_mask(shape: str, side: int) -> np.ndarray:
    """Boolean ``side x side`` mask of a shape, sampled at pixel centres."""
    if side < 1:
        raise ValueError(f"side must be >= 1, got {side}")
    yy, xx = np.mgrid[0:side, 0:side]
    u = (xx + 0.5) / side
    if shape == "circle":
        v = (yy + 0.5) / side
        mask = (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25
    elif shape == "square":
        mask = np.ones((side, side), dtype=bool)
    elif shape == "triangle":
        # Apex at the top centre, base on the bottom row; (yy + 1) keeps a visible tip.
        v = (yy + 1) / side
        mask = np.abs(u - 0.5) <= v / 2
    else:
        raise ValueError(f"unknown shape {shape!r}")
    mask.setflags(write=False)
    return mask


def object_side(size_name: str, image_size: int) -> int:
    """Side in pixels of a ``small``/``large`` object in an image of ``image_size``."""
    if size_name not in _SIDE_AT_32:
        raise ValueError(f"unknown size {size_name!r}")
    return max(1, round(_SIDE_AT_32[size_name] * image_size / 32))


def render(scene: Scene, size: int = 32, *, jitter_seed: int | None = None) -> np.ndarray:
    """Render ``scene`` into a ``size x size x 3`` uint8 image.

    Objects sit centred in their 16x16 (at size 32) cell, or shifted by a deterministic
    jitter drawn from ``jitter_seed`` so that they stay inside the cell.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 8 or size % 2:
        raise ValueError(f"size must be an even int >= 8, got {size!r}")
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = BACKGROUND
    cell = size // 2
    rng = None if jitter_seed is None else np.random.default_rng(jitter_seed)
    for obj in scene.objects:
        side = object_side(obj.size, size)
        room = cell - side
        if rng is None:
            dx = dy = room // 2
        else:
            dx, dy = (int(v) for v in rng.integers(0, room + 1, size=2))
        x0 = (obj.cell % 2) * cell + dx
        y0 = (obj.cell // 2) * cell + dy
        patch = image[y0 : y0 + side, x0 : x0 + side]
        patch[shape_mask(obj.shape, side)] = RGB[obj.colour]
    return image


def save_png(array: np.ndarray, path: str | Path) -> Path:
    """Write an H x W x 3 uint8 array as a PNG (parents created); returns the path."""
    from PIL import Image

    arr = np.asarray(array)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 uint8 array, got {arr.dtype} {arr.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(arr)).save(path, format="PNG")
    return path
