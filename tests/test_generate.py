"""ifl.generate on a tiny organism VLM: the reply table, batching, resumption, seeding, shards."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import pandas as pd
import pytest
import torch
from _organism_fixtures import Organism, organism
from pandas.testing import assert_frame_equal

from ifl import generate

torch.set_num_threads(1)
MAX_NEW = 6
COLUMNS = [
    "model", "task_id", "benchmark", "language", "condition", "prompt", "image", "reply",
    "tokens", "intervention", "seed",
]  # fmt: skip


@pytest.fixture(scope="session")
def org(tmp_path_factory: pytest.TempPathFactory) -> Organism:
    return organism(tmp_path_factory)


@pytest.fixture(scope="module")
def vlm(org: Organism):
    return generate.load_vlm(org.vlm_dir, torch.device("cpu"))


@pytest.fixture(scope="module")
def q(org: Organism) -> pd.DataFrame:
    return generate.queries(org.tasks)


class BatchCounter:
    """A ``context`` for ``generate.run`` that counts batches and can interrupt at one of them."""

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.interrupt_at = interrupt_at
        self.batches: list[pd.DataFrame] = []

    def __call__(self, batch: pd.DataFrame):
        if len(self.batches) == self.interrupt_at:
            raise KeyboardInterrupt
        self.batches.append(batch)
        return nullcontext()


def _run(vlm, q: pd.DataFrame, out: Path, **kwargs) -> pd.DataFrame:
    model, processor = vlm
    kwargs = {"batch_size": 8, "max_new_tokens": MAX_NEW, "model_name": "tiny", **kwargs}
    return generate.run(model, processor, q, out, **kwargs)


# --- the table ---------------------------------------------------------------------------------


def test_queries_one_row_per_task_and_condition(org: Organism, q: pd.DataFrame) -> None:
    assert len(q) == 2 * len(org.tasks)
    assert not q.duplicated(["task_id", "condition"]).any()
    image, text = q[q["condition"] == "image"], q[q["condition"] == "text"]
    assert image["prompt"].str.contains("<image>").all() and image["image"].notna().all()
    assert not text["prompt"].str.contains("<image>").any() and text["image"].isna().all()
    # the text condition replaces the image by the scene's description in the query language
    desc = org.tasks.set_index("task_id")["description"]
    assert all(desc[t] in p for t, p in zip(text["task_id"], text["prompt"], strict=True))


def test_run_writes_one_sorted_reply_per_query(vlm, q: pd.DataFrame, tmp_path: Path) -> None:
    out = tmp_path / "gen.parquet"
    table = _run(vlm, q, out, seed=7, intervention="probe")
    written = pd.read_parquet(out)
    assert list(written.columns) == COLUMNS
    assert len(written) == len(q)
    key = ["task_id", "condition"]
    assert written.set_index(key).index.equals(q.sort_values(key).set_index(key).index)
    assert (written["model"] == "tiny").all() and (written["intervention"] == "probe").all()
    assert (written["seed"] == 7).all()
    assert written["tokens"].between(1, MAX_NEW).all()
    assert written["reply"].str.len().gt(0).all()
    assert not out.with_name(out.name + ".part").exists()  # checkpoints cleaned up
    # the returned table is the written one
    assert_frame_equal(table.reset_index(drop=True), written)


def test_token_budget_per_benchmark(vlm, q: pd.DataFrame, tmp_path: Path) -> None:
    budget = {"MaXM": 1, "LLaVA-W": 5, "VisIT": 3, "MultiQ": 2}
    table = _run(vlm, q, tmp_path / "gen.parquet", max_new_tokens=budget)
    assert (table["tokens"] <= table["benchmark"].map(budget)).all()
    assert (table.loc[table["benchmark"] == "MaXM", "tokens"] == 1).all()
    with pytest.raises(ValueError, match="VisIT"):
        _run(
            vlm, q, tmp_path / "bad.parquet", max_new_tokens={"MaXM": 1, "LLaVA-W": 1, "MultiQ": 1}
        )


# --- batching ----------------------------------------------------------------------------------


class TokenRecorder:
    """Wraps ``model.generate`` to keep each query's new token ids (up to the first EOS)."""

    def __init__(self, model, eos_id: int) -> None:
        self.model, self.eos_id, self.generate = model, eos_id, model.generate
        self.tokens: dict[tuple[str, str], list[int]] = {}
        self.batch: pd.DataFrame | None = None
        self.prompt_widths: list[torch.Tensor] = []

    def context(self, batch: pd.DataFrame):
        self.batch = batch
        return nullcontext()

    def __call__(self, **inputs):
        out = self.generate(**inputs)
        width = inputs["input_ids"].shape[1]
        self.prompt_widths.append(inputs["attention_mask"].sum(dim=1))
        for (task, cond), row in zip(
            self.batch[["task_id", "condition"]].itertuples(index=False),
            out[:, width:],
            strict=True,
        ):
            ids = row.tolist()
            self.tokens[task, cond] = (
                ids[: ids.index(self.eos_id) + 1] if self.eos_id in ids else ids
            )
        return out


def _token_ids(vlm, q: pd.DataFrame, out: Path, batch_size: int) -> TokenRecorder:
    model, processor = vlm
    recorder = TokenRecorder(model, processor.tokenizer.eos_token_id)
    model.generate = recorder
    try:
        _run(vlm, q, out, batch_size=batch_size, context=recorder.context)
    finally:
        del model.generate  # back to the class's method
    return recorder


def test_batched_greedy_equals_one_by_one(vlm, q: pd.DataFrame, tmp_path: Path) -> None:
    batched = _token_ids(vlm, q, tmp_path / "batched.parquet", batch_size=8)
    single = _token_ids(vlm, q, tmp_path / "single.parquet", batch_size=1)
    # the comparison can fail: replies differ between queries and batches are really left-padded
    assert len({tuple(t) for t in single.tokens.values()}) > len(q) // 2
    assert any(len(set(w.tolist())) > 1 for w in batched.prompt_widths)
    assert batched.tokens.keys() == single.tokens.keys() and len(single.tokens) == len(q)
    differ = [k for k in single.tokens if batched.tokens[k] != single.tokens[k]]
    assert not differ, f"left padding changed {len(differ)} replies, e.g. {differ[:3]}"
    assert_frame_equal(
        pd.read_parquet(tmp_path / "batched.parquet"), pd.read_parquet(tmp_path / "single.parquet")
    )


def test_right_padding_would_be_caught(vlm, q: pd.DataFrame, tmp_path: Path) -> None:
    """The equality above is sensitive: right padding (the classic bug) changes replies."""
    model, processor = vlm
    single = _run(vlm, q, tmp_path / "single.parquet", batch_size=1)
    processor.tokenizer.padding_side = "right"
    try:
        right = _run(vlm, q, tmp_path / "right.parquet", batch_size=8)
    finally:
        processor.tokenizer.padding_side = "left"
    assert (right["reply"].to_numpy() != single["reply"].to_numpy()).any()


# --- interruption and resumption ---------------------------------------------------------------


@pytest.mark.parametrize("do_sample", [False, True], ids=["greedy", "sampled"])
def test_interrupted_run_resumes_to_the_same_table(
    vlm, q: pd.DataFrame, tmp_path: Path, do_sample: bool
) -> None:
    kwargs = {"batch_size": 2, "do_sample": do_sample, "seed": 11}
    full = BatchCounter()
    reference = _run(vlm, q, tmp_path / "reference.parquet", context=full, **kwargs)
    n_batches = len(full.batches)
    stop = generate.CHECKPOINT_EVERY + 2  # inside the second chunk: the first one is on disk
    assert n_batches > stop

    out = tmp_path / "resumed.parquet"
    part = out.with_name(out.name + ".part")
    with pytest.raises(KeyboardInterrupt):
        _run(vlm, q, out, context=BatchCounter(interrupt_at=stop), **kwargs)
    assert not out.exists()
    assert sorted(p.name for p in part.glob("chunk-*.parquet")) == ["chunk-00000.parquet"]

    second = BatchCounter()
    resumed = _run(vlm, q, out, context=second, **kwargs)
    # the finished chunk was read back, not regenerated
    assert len(second.batches) == n_batches - generate.CHECKPOINT_EVERY
    done = pd.concat(full.batches[: generate.CHECKPOINT_EVERY]).index
    redone = pd.concat(second.batches).index
    assert not set(done) & set(redone) and len(set(done) | set(redone)) == len(q)
    assert_frame_equal(pd.read_parquet(out), pd.read_parquet(tmp_path / "reference.parquet"))
    assert_frame_equal(resumed.reset_index(drop=True), reference.reset_index(drop=True))
    assert not part.exists()


def test_resume_with_other_settings_starts_over(vlm, q: pd.DataFrame, tmp_path: Path) -> None:
    reference = _run(vlm, q, tmp_path / "reference.parquet", batch_size=4)
    out = tmp_path / "gen.parquet"
    with pytest.raises(KeyboardInterrupt):
        stop = BatchCounter(interrupt_at=generate.CHECKPOINT_EVERY + 1)
        _run(vlm, q, out, batch_size=2, context=stop)
    rerun = _run(vlm, q, out, batch_size=4)  # e.g. generate.batch_size changed in the config
    assert_frame_equal(rerun.reset_index(drop=True), reference.reset_index(drop=True))


# --- seeding -----------------------------------------------------------------------------------


def test_sampling_is_reproducible_with_a_seed(vlm, q: pd.DataFrame, tmp_path: Path) -> None:
    kwargs = {"do_sample": True, "max_new_tokens": 12}
    first = _run(vlm, q, tmp_path / "a.parquet", seed=5, **kwargs)
    torch.manual_seed(1234)  # the global generator's state must not matter
    second = _run(vlm, q, tmp_path / "b.parquet", seed=5, **kwargs)
    assert_frame_equal(
        pd.read_parquet(tmp_path / "a.parquet"), pd.read_parquet(tmp_path / "b.parquet")
    )
    assert_frame_equal(first, second)
    other = _run(vlm, q, tmp_path / "c.parquet", seed=6, **kwargs)
    assert (other["reply"].to_numpy() != first["reply"].to_numpy()).any()


def test_greedy_and_sampling_differ(vlm, q: pd.DataFrame, tmp_path: Path) -> None:
    greedy = _run(vlm, q, tmp_path / "greedy.parquet", max_new_tokens=12)
    sampled = _run(vlm, q, tmp_path / "sampled.parquet", max_new_tokens=12, do_sample=True)
    differ = greedy["reply"].to_numpy() != sampled["reply"].to_numpy()
    assert differ.mean() > 0.5


# --- shards ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_shards", [1, 2, 3, 7])
def test_shards_partition_the_queries(q: pd.DataFrame, n_shards: int) -> None:
    shards = [generate.shard(q, i, n_shards) for i in range(n_shards)]
    sizes = [len(s) for s in shards]
    n_cond = q.groupby("task_id").size().max()
    assert sum(sizes) == len(q) and max(sizes) - min(sizes) <= n_cond
    for s in shards:  # both conditions of a task stay together
        assert set(s["task_id"]).isdisjoint(set(q["task_id"]) - set(s["task_id"]))
        assert (s.groupby("task_id").size() == n_cond).all()
    key = ["task_id", "condition"]
    merged = pd.concat(shards, ignore_index=True)
    assert not merged.duplicated(key).any()
    assert_frame_equal(
        merged.sort_values(key).reset_index(drop=True), q.sort_values(key).reset_index(drop=True)
    )
    assert_frame_equal(generate.shard(q, 0, n_shards), shards[0])  # stable


@pytest.mark.parametrize(("index", "n_shards"), [(-1, 2), (2, 2), (5, 3), (0, 0)])
def test_bad_shard_index_is_an_error(q: pd.DataFrame, index: int, n_shards: int) -> None:
    with pytest.raises(ValueError, match=str(index)):
        generate.shard(q, index, n_shards)
