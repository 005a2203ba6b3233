"""ifl.organism_targets: the worst cell and the misses of each target, on hand-made tables."""

from __future__ import annotations

import pandas as pd
import pytest

from ifl.organism_targets import organism_targets

CFG = {
    "organism": {"base_llm": {"mix": {"en": 1}}},
    "backbones": {"leo": {"mix": {"en": 1, "de": 1}}},
    "grid": [
        {"llm": "leo", "vision": "clip", "data": "en"},
        {"llm": "leo", "vision": "clip", "data": "de"},
    ],
}


def _write(tmp_path, **tables) -> None:
    for name, cols in tables.items():
        pd.DataFrame(cols).to_csv(tmp_path / f"organism_{name}.csv", index=False)


@pytest.fixture
def tables(tmp_path):
    _write(
        tmp_path,
        vlm_fidelity={
            "model": ["leo-clip-en"] * 3 + ["leo-clip-de"],
            "benchmark": ["MaXM", "MaXM", "MaXM", "VisIT"],
            "language": ["de", "en", "zh", "de"],  # zh is outside leo's mix: not a cell
            "condition": ["text", "text", "text", "text"],
            "fidelity": [0.75, 1.0, 0.0, 0.9],
            "n": [100] * 4,
        },
        accuracy_language={
            "model": ["leo-clip-en", "leo-clip-en", "leo-clip-de", "leo-clip-de", "leo-clip-de"],
            "condition": ["image", "text", "image", "text", "image"],
            "language": ["en", "en", "de", "de", "en"],
            "own": [True, True, True, True, False],
            "accuracy": [0.8, 0.9, 0.6, 0.7, 0.1],
            "n": [100] * 5,
        },
        llm_text={
            "backbone": ["leo", "leo", "base_llm"],
            "language": ["de", "de", "en"],
            "kind": ["colour", "yesno", "colour"],
            "accuracy": [0.9, 0.5, 1.0],
            "fidelity": [1.0, 0.8, 1.0],
            "n": [100, 300, 100],
        },
        llm_lookup={"checkpoint": ["induction", "base_llm", "leo"], "accuracy": [0.99, 0.95, 0.91]},
    )  # fmt: skip
    return tmp_path


def test_targets_report_the_worst_cell_and_the_misses(tables):
    out = organism_targets(tables, CFG).set_index("target")
    fid = out.filter(like="VLM text-condition", axis=0).iloc[0]
    assert (fid["cells"], fid["below"], fid["worst"], fid["worst_cell"]) == (
        3,
        1,
        0.75,
        "leo-clip-en / MaXM / de",
    )
    own = out.filter(like="training-data language", axis=0).iloc[0]
    assert (own["cells"], own["below"], own["worst"], own["met"]) == (4, 1, 0.6, False)
    english = out.filter(like="English-data", axis=0).iloc[0]
    assert (english["cells"], english["worst"], english["met"]) == (
        2,
        0.8,
        True,
    )  # de model left out
    acc = out.filter(like="Backbone text accuracy", axis=0).iloc[0]
    assert (acc["cells"], acc["below"], acc["worst_cell"]) == (3, 1, "leo / de / yesno")
    # fidelity pooled over kinds by their counts: (100 * 1.0 + 300 * 0.8) / 400 = 0.85
    fid_llm = out.filter(like="Backbone text fidelity", axis=0).iloc[0]
    assert (fid_llm["worst"], fid_llm["below"]) == (0.85, 1)
    assert out.filter(like="lookup", axis=0).iloc[0]["met"]


def test_a_target_without_cells_is_an_error(tables):
    cfg = {**CFG, "grid": [{"llm": "leo", "vision": "clip", "data": "zh"}]}
    with pytest.raises(ValueError, match="has no cells"):
        organism_targets(tables, cfg)
