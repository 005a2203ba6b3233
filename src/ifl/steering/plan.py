"""What the inside-the-model rules run: the steering variants, the grid models each analysis
takes (steered, swept, compared by CKA, projected in 2-D), the steering layers and the runs of a
model (Table 5's and the layer x strength sweep's). Light: the DAG imports it to plan its jobs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ifl.config import vlm_name

#: how a sentence becomes one vector (:func:`ifl.steering.vectors.layer_states`)
REDUCTIONS = ("last", "mean")
#: which positions are steered (:func:`ifl.steering.vectors.steering`)
POSITIONS = ("generated", "all")
#: how each row's language vector is chosen (:func:`ifl.steering.run.select_languages`)
SELECTIONS = ("oracle", "auto")
VARIANTS = tuple(f"{r}-{p}" for r in REDUCTIONS for p in POSITIONS)


def variant_name(reduce: str, positions: str) -> str:
    """``"last-generated"`` etc.: the name of a (reduce, positions) steering variant."""
    if reduce not in REDUCTIONS or positions not in POSITIONS:
        raise ValueError(f"no steering variant for reduce={reduce!r}, positions={positions!r}")
    return f"{reduce}-{positions}"


def parse_variant(name: str) -> tuple[str, str]:
    """``(reduce, positions)`` of a variant name such as ``"mean-all"``."""
    if name not in VARIANTS:
        raise ValueError(f"unknown steering variant {name!r}; expected one of {VARIANTS}")
    reduce, positions = name.split("-")
    return reduce, positions


def primary_variant(steering: Mapping[str, Any]) -> str:
    """The variant of the config's ``steering.reduce`` and ``steering.positions``."""
    return variant_name(steering["reduce"], steering["positions"])


def variants(steering: Mapping[str, Any]) -> list[str]:
    """Variants to run, the primary one first (it always runs)."""
    primary = primary_variant(steering)
    return [primary] + [v for v in steering.get("variants", VARIANTS) if v != primary]


def _grid_names(cfg: Mapping[str, Any]) -> list[str]:
    """The models the analyses may name: the design grid's, or the audited ones."""
    if cfg.get("preset") == "audit":
        from ifl.models.audited import audit_models

        return [m.name for m in audit_models(cfg)]
    return [vlm_name(e) for e in cfg["grid"]]


def _check_models(names: Sequence[str], grid: Sequence[str], key: str) -> list[str]:
    for name in names:
        if name not in grid:
            raise ValueError(
                f"steering.{key}: {name!r} is not a model of this run; allowed: {', '.join(grid)}"
            )
    return list(names)


def steer_models(cfg: Mapping[str, Any]) -> list[str]:
    """Grid VLMs that are steered: ``steering.models``, or those trained on English data (the
    paper steers four English-trained LLaVAs), or the first grid model if none is. In the audit
    preset: ``steering.models``, or every audited model."""
    grid = _grid_names(cfg)
    chosen = cfg["steering"].get("models")
    if chosen:
        return _check_models(chosen, grid, "models")
    if cfg.get("preset") == "audit":
        return grid
    english = [vlm_name(e) for e in cfg["grid"] if e["data"] == "en"]
    return english or grid[:1]


def sweep_model(cfg: Mapping[str, Any]) -> str | None:
    """The model of the layer x strength sweep (None when the sweep is off)."""
    sweep = cfg["steering"].get("sweep", {})
    if not sweep.get("enabled", True):
        return None
    name = sweep.get("model")
    return (
        _check_models([name], _grid_names(cfg), "sweep.model")[0] if name else steer_models(cfg)[0]
    )


def cka_pair(cfg: Mapping[str, Any]) -> tuple[str, str]:
    """The two models compared by CKA: ``steering.cka_models``, else the paper's pair (Yi trained
    in Chinese vs Leo trained in German, CLIP) when in the grid, else the first two grid models."""
    grid = _grid_names(cfg)
    chosen = cfg["steering"].get("cka_models")
    if chosen:
        a, b = _check_models(chosen, grid, "cka_models")
        return a, b
    if {"yi-clip-zh", "leo-clip-de"} <= set(grid):
        return "yi-clip-zh", "leo-clip-de"
    return (grid[0], grid[1]) if len(grid) > 1 else (grid[0], grid[0])


def projection_model(cfg: Mapping[str, Any]) -> str:
    """The model whose tokens are projected in 2-D (default: the first steered model)."""
    name = cfg["steering"].get("projection_model")
    return (
        _check_models([name], _grid_names(cfg), "projection_model")[0]
        if name
        else steer_models(cfg)[0]
    )


def resolve_layer(layer: int | None, n_layers: int) -> int:
    """The steering layer: ``layer``, or ``round(n_layers / 3)`` when None (paper: 10 of 30)."""
    from ifl.models.layers import default_steer_layer

    if layer is None:
        return default_steer_layer(n_layers)
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n_layers:
        raise ValueError(f"steering layer {layer!r} is outside 0..{n_layers - 1} for this model")
    return layer


def projection_layers(layer: int | None, n_layers: int) -> tuple[int, list[int]]:
    """The state index of the steering layer and the states projected in 2-D: the input
    embeddings (0), the steering layer's output and the last layer's (state ``k`` = output of
    decoder layer ``k - 1``)."""
    steer_state = resolve_layer(layer, n_layers) + 1
    return steer_state, sorted({0, steer_state, n_layers})


def sweep_layers(layers: Sequence[int] | None, n_layers: int) -> list[int]:
    """Layers of the sweep: ``layers``, or the quarter depths ``round(k n / 4)``, k = 1..3."""
    if layers is None:
        return sorted({min(round(k * n_layers / 4), n_layers - 1) for k in (1, 2, 3)})
    return sorted({resolve_layer(int(x), n_layers) for x in layers})


@dataclass(frozen=True)
class SteerRun:
    """One steered generation of a model: a variant, a selection, a layer and a strength."""

    study: str  # "remedy" (Table 5) or "sweep"
    variant: str
    selection: str
    layer: int
    strength: float
    conditions: tuple[str, ...] = ("image",)

    @property
    def name(self) -> str:
        """File-name-safe label of the run."""
        conds = "+".join(self.conditions)
        return (
            f"{self.study}-{self.variant}-{self.selection}-L{self.layer}-s{self.strength:g}-{conds}"
        )

    @property
    def intervention(self) -> str:
        """The ``intervention`` column of its replies (unique per run, so row ids stay unique)."""
        return (
            f"steer:{self.study}:{self.variant}:{self.selection}:L{self.layer}:s{self.strength:g}"
        )


def remedy_runs(steering: Mapping[str, Any], n_layers: int) -> list[SteerRun]:
    """The Table 5 runs of a model: every variant with oracle selection (the primary one also
    on the text condition when ``text_check``), then the primary one with auto selection."""
    layer = resolve_layer(steering.get("layer"), n_layers)
    strength = float(steering["strength"])
    names = variants(steering)
    runs = []
    for i, v in enumerate(names):
        conds = ("image", "text") if i == 0 and steering.get("text_check", True) else ("image",)
        runs.append(SteerRun("remedy", v, "oracle", layer, strength, conds))
    if steering.get("auto_selection", True):
        runs.append(SteerRun("remedy", names[0], "auto", layer, strength))
    return runs


def sweep_runs(steering: Mapping[str, Any], n_layers: int) -> list[SteerRun]:
    """The layer x strength grid of the sweep (primary variant, oracle selection, image only)."""
    sweep = steering.get("sweep", {})
    primary = primary_variant(steering)
    return [
        SteerRun("sweep", primary, "oracle", layer, float(s))
        for layer in sweep_layers(sweep.get("layers"), n_layers)
        for s in sweep.get("strengths", [0.5, 1.0, 2.0, 4.0])
    ]
