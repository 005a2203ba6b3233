"""Scenes of the model organism: 1-4 objects on a 2x2 grid, drawn from a seeded generator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "white")
SIZES: tuple[str, ...] = ("small", "large")
# Cells of the 2x2 grid in reading order: top left, top right, bottom left, bottom right.
POSITIONS: tuple[str, ...] = ("top_left", "top_right", "bottom_left", "bottom_right")
MAX_OBJECTS = 4


@dataclass(frozen=True)
class Obj:
    """One object: a shape of a colour and size in a grid cell (0..3, reading order)."""

    shape: str
    colour: str
    size: str
    cell: int

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("shape", self.shape, SHAPES),
            ("colour", self.colour, COLOURS),
            ("size", self.size, SIZES),
        ):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; expected one of {allowed}")
        if isinstance(self.cell, bool) or not isinstance(self.cell, int | np.integer):
            raise ValueError(f"cell must be an int in 0..3, got {self.cell!r}")
        if not 0 <= int(self.cell) < len(POSITIONS):
            raise ValueError(f"cell must be in 0..3, got {self.cell!r}")
        object.__setattr__(self, "cell", int(self.cell))

    @property
    def position(self) -> str:
        """The cell's position name (e.g. ``"top_left"``)."""
        return POSITIONS[self.cell]


@dataclass(frozen=True)
class Scene:
    """1-4 objects, at most one per cell, stored in reading (cell) order."""

    objects: tuple[Obj, ...]

    def __post_init__(self) -> None:
        objects = tuple(self.objects)
        if not 1 <= len(objects) <= MAX_OBJECTS:
            raise ValueError(f"a scene has 1-{MAX_OBJECTS} objects, got {len(objects)}")
        cells = [o.cell for o in objects]
        if len(set(cells)) != len(cells):
            raise ValueError(f"at most one object per cell, got cells {cells}")
        # Canonical order makes equal scenes compare (and serialise) equal.
        object.__setattr__(self, "objects", tuple(sorted(objects, key=lambda o: o.cell)))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict that :meth:`from_dict` reverses."""
        return {
            "objects": [
                {"shape": o.shape, "colour": o.colour, "size": o.size, "cell": o.cell}
                for o in self.objects
            ]
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scene:
        """Rebuild a scene from :meth:`to_dict` output."""
        try:
            objects = tuple(
                Obj(o["shape"], o["colour"], o["size"], int(o["cell"])) for o in data["objects"]
            )
        except (KeyError, TypeError) as err:
            raise ValueError(
                f"not a scene dict (objects of shape/colour/size/cell): {data!r}"
            ) from err
        return cls(objects)


def sample_scene(rng: np.random.Generator) -> Scene:
    """Draw a scene: uniform object count, distinct cells, uniform attributes."""
    n = int(rng.integers(1, MAX_OBJECTS + 1))
    cells = sorted(int(c) for c in rng.choice(len(POSITIONS), size=n, replace=False))
    objects = []
    for cell in cells:
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        colour = COLOURS[int(rng.integers(len(COLOURS)))]
        size = SIZES[int(rng.integers(len(SIZES)))]
        objects.append(Obj(shape, colour, size, cell))
    return Scene(tuple(objects))
