"""Tests for ifl.annotate: stratified gold sampling (appendix B) and annotation sheets."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from ifl.annotate import (
    DEFAULT_LANGUAGE_MULTIPLIERS,
    SHEET_COLUMNS,
    export_sheet,
    fill_sheet,
    gold_weights,
    import_sheet,
    inclusion_probabilities,
    read_annotated,
    sample_gold,
    to_sheet,
    write_sheet,
)
from ifl.labels import annotated_sheet


def _frame(cells: dict[tuple[str, str], int]) -> pd.DataFrame:
    """Rows per (benchmark, language) cell, shuffled, with a non-trivial index."""
    rows = [(b, lang) for (b, lang), n in cells.items() for _ in range(n)]
    df = pd.DataFrame(rows, columns=["benchmark", "language"])
    df = df.sample(frac=1.0, random_state=0)
    df.index = [f"r{i}" for i in range(len(df))]
    return df


# ---------------------------------------------------------------- weights and allocation


def test_gold_weights_closed_form() -> None:
    df = _frame({("maxm", "de"): 30, ("maxm", "en"): 30, ("palo", "ru"): 20, ("palo", "it"): 20})
    w = gold_weights(df)
    share = {"maxm": 0.6, "palo": 0.4}
    expected = [
        (1 / share[b]) * DEFAULT_LANGUAGE_MULTIPLIERS.get(lang, 1)
        for b, lang in zip(df["benchmark"], df["language"], strict=True)
    ]
    np.testing.assert_allclose(w, expected)
    assert w[(df["language"] == "de").to_numpy()][0] == pytest.approx(4 / 0.6)
    assert w[(df["language"] == "ru").to_numpy()][0] == pytest.approx(0.5 / 0.4)


def test_gold_weights_rejects_bad_multiplier() -> None:
    df = _frame({("a", "de"): 3})
    with pytest.raises(ValueError, match="'de'"):
        gold_weights(df, multipliers={"de": -1})
    with pytest.raises(ValueError, match="'benchmark'"):
        gold_weights(df.drop(columns="benchmark"))
    df.loc[df.index[1], "language"] = None
    with pytest.raises(ValueError, match="'language'.*'r1'"):
        sample_gold(df, 1, seed=0)


def test_german_over_represented_four_times() -> None:
    df = _frame({("a", "de"): 100, ("a", "en"): 100})
    pi = inclusion_probabilities(df, 50)
    is_de = (df["language"] == "de").to_numpy()
    assert pi[is_de] == pytest.approx(np.full(100, 0.4))
    assert pi[~is_de] == pytest.approx(np.full(100, 0.1))
    sample = sample_gold(df, 50, seed=1)
    assert (sample["language"] == "de").sum() == 40
    assert (sample["language"] == "en").sum() == 10


def test_benchmarks_weighted_by_inverse_share() -> None:
    df = _frame({("big", "en"): 300, ("small", "en"): 100})
    sample = sample_gold(df, 40, seed=0)
    assert sample["benchmark"].value_counts().to_dict() == {"big": 20, "small": 20}


def test_allocation_largest_remainder_sums_to_size() -> None:
    df = _frame({("a", "en"): 10, ("a", "fr"): 10, ("a", "es"): 10})
    pi = inclusion_probabilities(df, 10)
    counts = pd.Series(pi * 10, index=df["language"]).groupby(level=0).first().round()
    # 10/3 each: the one extra row goes to the first stratum in sorted order (en).
    assert counts.to_dict() == {"en": 4.0, "es": 3.0, "fr": 3.0}
    assert pi.sum() == pytest.approx(10)


def test_allocation_caps_small_strata_and_redistributes() -> None:
    df = _frame({("a", "de"): 3, ("a", "en"): 100})
    pi = inclusion_probabilities(df, 30)
    is_de = (df["language"] == "de").to_numpy()
    assert np.all(pi[is_de] == 1.0)  # share 30*12/112 = 3.2 > 3 rows: taken whole
    assert pi[~is_de] == pytest.approx(np.full(100, 0.27))
    assert pi.sum() == pytest.approx(30)


@pytest.mark.parametrize("size", [0, 1, 7, 33, 100, 157])
def test_pi_sums_to_size_and_within_bounds(size: int) -> None:
    df = _frame(
        {
            ("maxm", "de"): 11,
            ("maxm", "zh"): 40,
            ("maxm", "ur"): 9,
            ("palo", "en"): 50,
            ("palo", "ro"): 7,
            ("visit", "hi"): 40,
        }
    )
    pi = inclusion_probabilities(df, size)
    assert pi.sum() == pytest.approx(size)
    assert np.all((pi >= 0) & (pi <= 1))
    sample = sample_gold(df, size, seed=3)
    assert len(sample) == size
    assert sample.index.is_unique


def test_allocation_invariants_on_random_designs() -> None:
    rng = np.random.default_rng(0)
    langs = ["de", "zh", "hi", "ro", "en", "fr"]
    for _ in range(200):
        cells = {
            (f"b{b}", lang): int(rng.integers(1, 30))
            for b in range(int(rng.integers(1, 4)))
            for lang in rng.choice(langs, size=int(rng.integers(1, 6)), replace=False)
        }
        df = _frame(cells)
        size = int(rng.integers(0, len(df) + 1))
        pi = inclusion_probabilities(df, size)
        n_h = pd.Series(pi).groupby([df["benchmark"].to_numpy(), df["language"].to_numpy()])
        counts = n_h.sum().round().astype(int)
        assert counts.sum() == size
        assert np.allclose(n_h.sum(), counts)  # pi * N_h is an integer per stratum
        assert n_h.nunique().max() == 1  # equal probability within a stratum
        assert np.all((pi >= 0) & (pi <= 1))


def test_full_sample_takes_everything() -> None:
    df = _frame({("a", "de"): 5, ("b", "en"): 7})
    sample = sample_gold(df, 12, seed=0)
    assert set(sample.index) == set(df.index)
    assert np.all(sample["pi"] == 1.0)


def test_sample_rejects_bad_size() -> None:
    df = _frame({("a", "de"): 5, ("b", "en"): 7})
    with pytest.raises(ValueError, match="13"):
        sample_gold(df, 13, seed=0)
    with pytest.raises(ValueError, match="-1"):
        inclusion_probabilities(df, -1)
    with pytest.raises(ValueError, match="positive weight"):
        sample_gold(df, 8, seed=0, multipliers={"de": 0})
    assert len(sample_gold(df, 7, seed=0, multipliers={"de": 0})) == 7


def test_sample_keeps_rows_and_records_pi() -> None:
    df = _frame({("a", "de"): 20, ("a", "en"): 30, ("b", "zh"): 10})
    df["reply"] = [f"reply {i}" for i in range(len(df))]
    sample = sample_gold(df, 15, seed=7)
    assert list(sample["row_id"]) == list(sample.index)
    pd.testing.assert_frame_equal(sample[df.columns], df.loc[sample.index])
    pi_all = pd.Series(inclusion_probabilities(df, 15), index=df.index)
    np.testing.assert_allclose(sample["pi"], pi_all.loc[sample.index])
    # Original order is kept.
    positions = [df.index.get_loc(i) for i in sample.index]
    assert positions == sorted(positions)


def test_sample_deterministic_for_seed() -> None:
    df = _frame({("a", "de"): 20, ("a", "en"): 30, ("b", "zh"): 10})
    a = sample_gold(df, 15, seed=11)
    b = sample_gold(df, 15, seed=11)
    c = sample_gold(df, 15, seed=12)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.index) != list(c.index)


def test_empirical_inclusion_frequencies_match_pi() -> None:
    df = _frame({("a", "de"): 6, ("a", "en"): 14, ("a", "ro"): 8, ("b", "zh"): 5, ("b", "fr"): 9})
    size, draws = 12, 2000
    pi = inclusion_probabilities(df, size)
    hits = pd.Series(0, index=df.index)
    for seed in range(draws):
        hits.loc[sample_gold(df, size, seed=seed).index] += 1
    freq = hits.to_numpy() / draws
    # Binomial standard error per row; 4.5 SE keeps the family-wise false alarm rate tiny.
    se = np.sqrt(pi * (1 - pi) / draws)
    assert np.all(np.abs(freq - pi) <= 4.5 * se + 1e-12), np.max(np.abs(freq - pi) / (se + 1e-12))
    # Rows in the same stratum are equally likely: their spread is sampling noise only.
    assert np.abs(freq - pi).max() < 0.05


# ---------------------------------------------------------------- sheets


def _gold() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": ["m1", "m1", "m2"],
            "task_id": ["t1", "t2", "t3"],
            "benchmark": ["maxm", "palo", "maxm"],
            "language": ["de", "zh", "ar"],
            "condition": ["image", "text", "image"],
            "question": ["Welche Farbe?", "什么颜色？", "ما اللون؟"],
            "reference": ["rot", "红色", "أحمر"],
            "reply": ['Rot, "hell"\nund rund', "红色，圆形", "Red"],
            "pi": [0.5, 0.25, 1.0],
        },
        index=[101, 205, 309],
    ).assign(row_id=lambda d: d.index)


def _write_rows(path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=SHEET_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "x") for c in SHEET_COLUMNS})


def _answered(
    override: dict[tuple[int, str], str] | None = None, ids=("101", "205", "309")
) -> list[dict[str, str]]:
    rows = [
        {"id": i, "answer_language": "german", "matches_gold": "true", "correct": "false"}
        for i in ids
    ]
    for (i, col), value in (override or {}).items():
        rows[i][col] = value
    return rows


def test_export_sheet_blank_utf8_atomic(tmp_path) -> None:
    path = tmp_path / "sheets" / "gold.csv"
    export_sheet(_gold(), path)
    assert [p.name for p in path.parent.iterdir()] == ["gold.csv"]  # no temp file left behind
    raw = path.read_bytes().decode("utf-8")
    assert raw.splitlines()[0] == ",".join(SHEET_COLUMNS)
    back = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(back.columns) == SHEET_COLUMNS
    assert back["id"].tolist() == ["101", "205", "309"]
    assert back["reply"].tolist() == ['Rot, "hell"\nund rund', "红色，圆形", "Red"]
    for col in ("answer_language", "matches_gold", "correct"):
        assert (back[col] == "").all()


def test_export_sheet_missing_column(tmp_path) -> None:
    with pytest.raises(ValueError, match="reference"):
        export_sheet(_gold().drop(columns="reference"), tmp_path / "g.csv")


def test_write_sheet_failure_keeps_old_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "gold.csv"
    path.write_text("old", encoding="utf-8")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(OSError, match="disk full"):
        export_sheet(_gold(), path)
    assert path.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["gold.csv"]


def test_import_valid_sheet_typed(tmp_path) -> None:
    path = tmp_path / "s.csv"
    rows = _answered(
        {
            (1, "answer_language"): " Chinese ",
            (1, "matches_gold"): "TRUE",
            (1, "correct"): "NA",
            (2, "answer_language"): "other_latin",
            (2, "matches_gold"): "False",
            (2, "correct"): "",
        }
    )
    _write_rows(path, rows)
    sheet = import_sheet(path, expected_ids=["101", "205", "309"])
    assert list(sheet.columns) == SHEET_COLUMNS
    assert sheet["answer_language"].tolist() == ["german", "chinese", "other_latin"]
    assert str(sheet["matches_gold"].dtype) == "boolean"
    assert str(sheet["correct"].dtype) == "boolean"
    assert sheet["matches_gold"].tolist() == [True, True, False]
    assert sheet["correct"].isna().tolist() == [False, True, True]


@pytest.mark.parametrize(
    ("rows", "expected_ids", "pattern"),
    [
        (_answered({(1, "answer_language"): "klingon"}), None, r"'205'.*'klingon'"),
        (_answered({(2, "answer_language"): ""}), None, r"'309'.*empty"),
        (_answered({(0, "matches_gold"): "yes"}), None, r"'101'.*matches_gold.*'yes'"),
        (_answered({(2, "correct"): "1"}), None, r"'309'.*correct.*'1'"),
        (_answered(ids=("101", "205")), None, r"'309'.*missing"),
        (_answered(ids=("101", "205", "309", "205")), None, r"'205'.*duplicate"),
        (_answered(ids=("101", "205", "309", "999")), None, r"'999'.*unexpected"),
        (_answered(), ["101", "205"], r"'309'.*unexpected"),
    ],
)
def test_import_sheet_errors(tmp_path, rows, expected_ids, pattern) -> None:
    path = tmp_path / "s.csv"
    _write_rows(path, rows)
    ids = expected_ids if expected_ids is not None else ["101", "205", "309"]
    with pytest.raises(ValueError, match=pattern) as err:
        import_sheet(path, expected_ids=ids)
    assert "\n" not in str(err.value)


def test_import_sheet_missing_column(tmp_path) -> None:
    path = tmp_path / "s.csv"
    pd.DataFrame({"id": ["1"], "reply": ["x"]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="answer_language"):
        import_sheet(path, expected_ids=["1"])


def _oracle(row: pd.Series) -> tuple[str, bool | None, bool | None]:
    lang = {"de": "german", "zh": "chinese", "ar": "english"}[row["language"]]
    correct = None if row["condition"] == "text" else row["reference"] in row["reply"].lower()
    return lang, lang != "english", correct


def test_fill_write_import_round_trip(tmp_path) -> None:
    gold = _gold()
    filled = fill_sheet(to_sheet(gold), _oracle)
    assert filled["answer_language"].tolist() == ["german", "chinese", "english"]
    assert filled["matches_gold"].tolist() == [True, True, False]
    assert filled["correct"].isna().tolist() == [False, True, False]
    assert filled["correct"].iloc[0]
    path = tmp_path / "filled.csv"
    write_sheet(filled, path)
    back = import_sheet(path, expected_ids=gold["row_id"].astype(str))
    pd.testing.assert_frame_equal(back, filled)


@pytest.mark.parametrize(
    ("answer", "pattern"),
    [
        (("martian", True, True), "'martian'"),
        (("german", "yes", True), "matches_gold.*'yes'"),
        (("german", True, 1), "correct.*1"),
        (("german", True), "3-tuple"),
    ],
)
def test_fill_sheet_rejects_bad_answers(answer, pattern) -> None:
    sheet = to_sheet(_gold())
    with pytest.raises(ValueError, match=f"'101'.*{pattern}"):
        fill_sheet(sheet, lambda row: answer)


def test_to_sheet_rejects_duplicate_ids() -> None:
    gold = _gold().assign(id=["a", "b", "a"])
    with pytest.raises(ValueError, match="'a'"):
        to_sheet(gold)


def test_read_annotated_validates_a_sheet_on_its_own_ids(tmp_path) -> None:
    path = tmp_path / "annotated.csv"
    _write_rows(path, _answered())
    assert read_annotated(path)["id"].tolist() == ["101", "205", "309"]
    _write_rows(path, _answered(ids=("101", "205", "101")))
    with pytest.raises(ValueError, match="'101'.*duplicate"):
        read_annotated(path)


def test_annotated_sheet_names_the_sheet_to_fill_until_it_is_completed(tmp_path) -> None:
    sample = to_sheet(_gold())
    kw = {"oracle": False, "blank": "gold/sheet.csv", "key": "gold.sheet"}
    with pytest.raises(
        ValueError, match=r"annotate gold/sheet.csv .*at <gold.sheet in the config>"
    ):
        annotated_sheet(sample, pd.DataFrame(), completed=None, **kw)
    done = tmp_path / "done.csv"
    with pytest.raises(
        ValueError, match=f"three questions, the remedies' replies.*at {done}, then"
    ):
        annotated_sheet(
            sample, pd.DataFrame(), completed=str(done), replies=", the remedies' replies", **kw
        )
    _write_rows(done, _answered())
    sheet = annotated_sheet(sample, pd.DataFrame(), completed=str(done), **kw)
    assert sheet["answer_language"].tolist() == ["german"] * 3
