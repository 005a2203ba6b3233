"""Atomic writes: a failure inside the block leaves the previous result untouched."""

from __future__ import annotations

import pytest

from ifl.io import atomic_dir, atomic_file


def test_atomic_file_keeps_old_on_failure(tmp_path):
    target = tmp_path / "t.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]
    with atomic_file(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_atomic_dir_replaces_whole_directory(tmp_path):
    target = tmp_path / "model"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(KeyError), atomic_dir(target) as tmp:
        (tmp / "b").write_text("2")
        raise KeyError("x")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    with atomic_dir(target) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_read_parquets_stacks_shards_in_order(tmp_path):
    import pandas as pd

    from ifl.io import read_parquets, write_parquet

    for i in range(3):
        write_parquet(pd.DataFrame({"shard": [i, i]}), tmp_path / f"s{i}.parquet")
    df = read_parquets([tmp_path / f"s{i}.parquet" for i in (2, 0, 1)])
    assert df["shard"].tolist() == [2, 2, 0, 0, 1, 1] and df.index.tolist() == list(range(6))
