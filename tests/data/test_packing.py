"""SFT sequence packing: plans place every document once within pack_size, rows keep boundaries, Parquet round-trips."""

from __future__ import annotations

import errno
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from nemotron.data.errors import DataError
from nemotron.data.packing import (
    PACKING_ALGORITHMS,
    PackedRow,
    materialize,
    plan_packs,
    read_packed_parquet,
    write_packed_parquet,
)
from nemotron.storage_errors import StorageError


def skewed_lengths(count: int, seed: int = 0, pack_size: int = 512) -> list[int]:
    """Mostly short documents, some long ones, a few over pack_size and a few empty."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(mean=4.0, sigma=1.2, size=count).astype(int), 1, 3 * pack_size)
    lengths[::97] = 0
    return [int(n) for n in lengths]


def documents(lengths: list[int], seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Distinct ids per document (document i's ids start at 1000 * i) and a random 0/1 loss mask."""
    rng = np.random.default_rng(seed)
    ids = [np.arange(1000 * i, 1000 * i + n, dtype=np.int64) for i, n in enumerate(lengths)]
    masks = [rng.integers(0, 2, size=n).astype(np.uint8) for n in lengths]
    return ids, masks


def plain_first_fit(order: list[int], sizes: list[int], pack_size: int) -> list[list[int]]:
    """First fit as written in textbooks: scan the packs in order (O(n * packs))."""
    bins: list[list[int]] = []
    room: list[int] = []
    for doc in order:
        pack = next((b for b, free in enumerate(room) if free >= sizes[doc]), len(bins))
        if pack == len(bins):
            bins.append([])
            room.append(pack_size)
        bins[pack].append(doc)
        room[pack] -= sizes[doc]
    return bins


@pytest.mark.parametrize("algorithm", PACKING_ALGORITHMS)
@pytest.mark.parametrize("overflow", ["truncate", "drop"])
def test_every_document_is_placed_once_and_no_pack_overflows(algorithm: str, overflow: str) -> None:
    lengths = skewed_lengths(3000)
    plan = plan_packs(lengths, 512, algorithm, seed=3, overflow=overflow)
    placed = [doc for bin_ in plan.bins for doc in bin_]
    counts = Counter(placed + list(plan.dropped) + list(plan.empty))
    assert sorted(counts) == list(range(len(lengths))) and set(counts.values()) == {1}
    assert all(bin_ for bin_ in plan.bins)
    assert max(sum(plan.placed_length(d) for d in bin_) for bin_ in plan.bins) <= 512
    assert set(plan.empty) == {i for i, n in enumerate(lengths) if n == 0}
    over = {i for i, n in enumerate(lengths) if n > 512}
    assert over and set(plan.truncated if overflow == "truncate" else plan.dropped) == over


@pytest.mark.parametrize("algorithm", ["first_fit_shuffle", "first_fit_decreasing"])
def test_the_tree_search_gives_plain_first_fit(algorithm: str) -> None:
    lengths = [n for n in skewed_lengths(2000, seed=5) if 0 < n <= 512]
    plan = plan_packs(lengths, 512, algorithm, seed=11)
    order = list(range(len(lengths)))
    if algorithm == "first_fit_shuffle":
        random.Random(11).shuffle(order)
    else:
        order.sort(key=lambda d: -lengths[d])
    assert [list(b) for b in plan.bins] == plain_first_fit(order, lengths, 512)


@pytest.mark.parametrize("algorithm", PACKING_ALGORITHMS)
def test_rows_keep_document_boundaries(algorithm: str) -> None:
    lengths = skewed_lengths(400, seed=1, pack_size=128)
    ids, masks = documents(lengths)
    plan = plan_packs(lengths, 128, algorithm, seed=0)
    rows = list(materialize(plan, ids, masks))
    assert len(rows) == len(plan.bins)
    for row, bin_ in zip(rows, plan.bins, strict=True):
        assert row.input_ids.dtype == np.int32 and row.loss_mask.dtype == np.uint8
        assert row.seq_start_id.dtype == np.int32 and row.seq_start_id[0] == 0
        assert len(row.input_ids) == len(row.loss_mask) <= 128
        spans = row.documents()
        assert len(spans) == len(bin_)
        for (start, end), doc in zip(spans, bin_, strict=True):
            keep = min(lengths[doc], 128)  # a truncated document keeps its first pack_size tokens
            assert np.array_equal(row.input_ids[start:end], ids[doc][:keep])
            assert np.array_equal(row.loss_mask[start:end], masks[doc][:keep])


def test_the_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    lengths = skewed_lengths(2000, seed=2)
    first = plan_packs(lengths, 512, "first_fit_shuffle", seed=7)
    assert plan_packs(lengths, 512, "first_fit_shuffle", seed=7) == first
    assert plan_packs(lengths, 512, "first_fit_shuffle", seed=8).bins != first.bins
    decreasing = plan_packs(lengths, 512, "first_fit_decreasing", seed=7)
    assert plan_packs(lengths, 512, "first_fit_decreasing", seed=8).bins == decreasing.bins  # no randomness


def test_first_fit_decreasing_packs_skewed_lengths_at_least_as_tightly() -> None:
    lengths = skewed_lengths(5000, seed=4)
    shuffle = plan_packs(lengths, 512, "first_fit_shuffle", seed=0).stats()
    decreasing = plan_packs(lengths, 512, "first_fit_decreasing", seed=0).stats()
    concatenative = plan_packs(lengths, 512, "concatenative", seed=0).stats()
    assert decreasing.real_tokens == shuffle.real_tokens == concatenative.real_tokens
    assert decreasing.efficiency >= shuffle.efficiency >= concatenative.efficiency
    assert decreasing.packs <= shuffle.packs


def test_concatenative_keeps_input_order() -> None:
    lengths = [5, 4, 3, 6, 2, 8, 1, 1, 0, 9]
    plan = plan_packs(lengths, 10, "concatenative", seed=0)
    assert plan.bins == ((0, 1), (2, 3), (4, 5), (6, 7), (9,))
    assert [d for b in plan.bins for d in b] == [i for i, n in enumerate(lengths) if n]


def test_over_long_documents_are_truncated_or_dropped_and_counted() -> None:
    lengths = [3, 12, 5, 10, 11]
    truncated = plan_packs(lengths, 10, "first_fit_decreasing", seed=0, overflow="truncate")
    assert truncated.truncated == (1, 4) and truncated.dropped == ()
    assert truncated.stats().real_tokens == 3 + 10 + 5 + 10 + 10
    dropped = plan_packs(lengths, 10, "first_fit_decreasing", seed=0, overflow="drop")
    assert dropped.dropped == (1, 4) and dropped.truncated == ()
    assert sorted(d for b in dropped.bins for d in b) == [0, 2, 3]
    stats = dropped.stats()
    assert (stats.documents, stats.packed_documents, stats.dropped, stats.truncated) == (5, 3, 2, 0)


def test_stats_report_tokens_slots_efficiency_and_loss_tokens() -> None:
    lengths = [6, 6, 4, 0, 12]
    masks = [np.array([0, 0, 1, 1, 1, 1]), np.ones(6), np.zeros(4), np.zeros(0), np.ones(12)]
    plan = plan_packs(lengths, 10, "first_fit_decreasing", seed=0)
    stats = plan.stats(masks)
    assert plan.bins == ((4,), (0, 2), (1,))
    assert (stats.packs, stats.real_tokens, stats.slots) == (3, 26, 30)
    assert stats.efficiency == pytest.approx(26 / 30)
    assert (stats.truncated, stats.dropped, stats.empty) == (1, 0, 1)
    assert stats.loss_tokens == 4 + 6 + 0 + 10  # the truncated document counts its first 10 tokens
    assert plan.stats().loss_tokens is None
    assert "efficiency 86.67%" in stats.summary()


def test_parquet_round_trip_with_arrow_types_and_zstd(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    lengths = skewed_lengths(4000, seed=6, pack_size=256)
    ids, masks = documents(lengths, seed=6)
    plan = plan_packs(lengths, 256, "first_fit_shuffle", seed=1)
    rows = list(materialize(plan, ids, masks))
    assert len(rows) > 1024  # more than one row group
    path = tmp_path / "train" / "shard_00000.parquet"
    path.parent.mkdir()
    assert write_packed_parquet(iter(rows), path) == len(rows)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]

    schema = pq.read_schema(path)
    assert schema.field("input_ids").type == pa.list_(pa.int32())
    assert schema.field("loss_mask").type == pa.list_(pa.uint8())
    assert schema.field("seq_start_id").type == pa.list_(pa.int32())
    metadata = pq.ParquetFile(path).metadata
    assert metadata.num_rows == len(rows) and metadata.num_row_groups >= 2
    codecs = {
        metadata.row_group(g).column(c).compression
        for g in range(metadata.num_row_groups)
        for c in range(metadata.num_columns)
    }
    assert codecs == {"ZSTD"}

    back = read_packed_parquet(path)
    assert len(back) == len(rows)
    for got, want in zip(back, rows, strict=True):
        for field in ("input_ids", "loss_mask", "seq_start_id"):
            assert np.array_equal(getattr(got, field), getattr(want, field))
            assert getattr(got, field).dtype == getattr(want, field).dtype


def test_an_empty_plan_writes_an_empty_file(tmp_path: Path) -> None:
    plan = plan_packs([0, 0], 8, "first_fit_shuffle", seed=0)
    rows = list(materialize(plan, [[], []], [[], []]))
    assert rows == [] and plan.stats().efficiency == 0.0
    assert write_packed_parquet(rows, tmp_path / "empty.parquet") == 0
    assert read_packed_parquet(tmp_path / "empty.parquet") == []


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path: Path) -> None:
    def rows_then_failure():
        row = PackedRow(np.arange(4, dtype=np.int32), np.ones(4, dtype=np.uint8), np.zeros(1, dtype=np.int32))
        for _ in range(1500):  # past the first row group, so a partial file exists when it fails
            yield row
        raise RuntimeError("tokenizer crashed")

    with pytest.raises(RuntimeError, match="tokenizer crashed"):
        write_packed_parquet(rows_then_failure(), tmp_path / "shard.parquet")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_refuses_the_write_is_a_storage_error_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(src: object, dst: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dst))

    monkeypatch.setattr(os, "replace", read_only)
    row = PackedRow(np.arange(4, dtype=np.int32), np.ones(4, dtype=np.uint8), np.zeros(1, dtype=np.int32))
    with pytest.raises(StorageError, match="cannot write packed sequences at .*set sft_output_dir to a writable"):
        write_packed_parquet([row], tmp_path / "shard.parquet", setting="sft_output_dir")
    assert list(tmp_path.iterdir()) == []


def test_reading_a_file_without_the_packed_columns_names_them(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"input_ids": [[1, 2]]}), tmp_path / "other.parquet")
    with pytest.raises(DataError, match="no column loss_mask, seq_start_id"):
        read_packed_parquet(tmp_path / "other.parquet")


def test_a_large_plan_completes() -> None:
    lengths = np.random.default_rng(9).lognormal(mean=6.0, sigma=1.0, size=200_000).astype(np.int64) + 1
    for algorithm in PACKING_ALGORITHMS:
        stats = plan_packs(lengths, 4096, algorithm, seed=0).stats()
        assert stats.packed_documents == 200_000 and 0.5 < stats.efficiency <= 1.0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"pack_size": 0}, "pack_size must be >= 1, got 0. Set pack_size"),
        ({"pack_size": 2**31}, "pack_size must be <= 2147483647"),
        ({"pack_size": 4.5}, "pack_size must be an integer, got 4.5"),
        ({"algorithm": "first_fit_shufle"}, "packing='first_fit_shufle'.*did you mean 'first_fit_shuffle'"),
        ({"algorithm": "best_fit"}, "set packing to one of first_fit_shuffle, first_fit_decreasing, concatenative"),
        ({"overflow": "trunc"}, "overflow='trunc'.*did you mean 'truncate'.*set overflow to 'truncate'"),
        ({"seed": -1}, "seed must be >= 0, got -1"),
        ({"lengths": [3, -1]}, "document 1 has a negative length"),
        ({"lengths": [1.5, 2.0]}, "lengths must be a flat sequence of integers"),
    ],
)
def test_bad_settings_name_the_setting_and_the_fix(settings: dict, message: str) -> None:
    args = {"lengths": [1, 2, 3], "pack_size": 8, "algorithm": "first_fit_shuffle", "seed": 0, "overflow": "truncate"}
    args.update(settings)
    with pytest.raises(DataError, match=message):
        plan_packs(args["lengths"], args["pack_size"], args["algorithm"], args["seed"], overflow=args["overflow"])


@pytest.mark.parametrize(
    ("ids", "masks", "message"),
    [
        ([[1, 2], [3, 4, 5]], [[1, 1], [1, 1, 1]], "the plan has 3 documents but 2 token id lists"),
        ([[1, 2], [3, 4], [5]], [[1, 1], [1, 1], [1]], "document 1: the plan has 3 tokens but its ids have 2"),
        ([[1, 2], [3, 4, 5], [-6]], [[1, 1], [1, 1, 1], [1]], "document 2: token ids must be integers"),
        ([[1, 2], [3, 4, 5], [2**31]], [[1, 1], [1, 1, 1], [1]], "document 2: token ids must be integers"),
        ([[1, 2], [3, 4, 5], [6]], [[1, 2], [1, 1, 1], [1]], "document 0: the loss mask must hold only 0 and 1"),
    ],
)
def test_materialize_rejects_documents_that_do_not_match_the_plan(ids: list, masks: list, message: str) -> None:
    plan = plan_packs([2, 3, 1], 8, "concatenative", seed=0)
    with pytest.raises(DataError, match=message):
        list(materialize(plan, ids, masks))


def test_importing_packing_does_not_import_pyarrow() -> None:
    code = "import sys, nemotron.data.packing; print('pyarrow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
