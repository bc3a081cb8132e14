"""plan_work and byte-range reads: deterministic, balanced shards that read every record exactly once."""

from __future__ import annotations

import gzip
import itertools
import json
import random
from pathlib import Path

import pytest

from nemotron.data.blend_spec import BlendSpec, DatasetSpec, load_blend_spec
from nemotron.data.shard_plan import plan_work
from nemotron.data.sources import SourceRange, iter_records, whole_dataset_ranges


def spec(path: Path, name: str = "ds", weight: float = 1.0) -> DatasetSpec:
    return DatasetSpec(name=name, path=str(path), weight=weight, text_field="text")


def write_jsonl(path: Path, count: int, seed: int = 0) -> Path:
    """`count` lines of varied length (some multi-byte characters), newline-terminated."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(count):
            handle.write(json.dumps({"text": f"doc {i} " + "é✓x" * rng.randint(0, 40)}, ensure_ascii=False) + "\n")
    return path


def keyed(records) -> list[tuple[str, str | None, bool]]:
    """Key, text and whether it is malformed (the message names a line or a byte offset, by range)."""
    return [(r.key, r.text, r.problem is not None) for r in records]


def read_ranges(ranges, dataset: DatasetSpec) -> list[tuple[str, str | None, bool]]:
    return [x for rng in ranges for x in keyed(iter_records(rng, dataset))]


def whole(dataset: DatasetSpec) -> list[tuple[str, str | None, bool]]:
    return read_ranges(whole_dataset_ranges(dataset), dataset)


def cut(path: Path, positions: list[int]) -> list[SourceRange]:
    """Ranges [0, p1), [p1, p2), ..., [pn, EOF) of one file."""
    bounds = [0, *sorted(positions), path.stat().st_size]
    return [SourceRange(str(path), a, b, splittable=True) for a, b in itertools.pairwise(bounds)]


# -- byte ranges of one JSONL file ------------------------------------------------------------


@pytest.fixture
def tricky_jsonl(tmp_path) -> Path:
    """Short and long lines, blank lines, CRLF, a malformed line, multi-byte text, no final newline."""
    lines = [
        json.dumps({"text": "a"}),
        "",
        json.dumps({"text": "ünïcödé ✓ " * 3}, ensure_ascii=False),
        "   ",
        json.dumps({"text": "crlf line"}) + "\r",
        "{not json",
        json.dumps({"text": "x" * 50}),
        json.dumps({"text": "b"}),
        "",
        "",
        json.dumps({"text": "last, without newline"}),
    ]
    path = tmp_path / "tricky.jsonl"
    path.write_bytes("\n".join(lines).encode("utf-8"))
    return path


def test_a_single_cut_anywhere_reads_every_line_once(tricky_jsonl):
    dataset = spec(tricky_jsonl)
    expected = whole(dataset)
    assert len(expected) == 7 and sum(1 for _, _, problem in expected if problem) == 1
    size = tricky_jsonl.stat().st_size
    data = tricky_jsonl.read_bytes()
    newlines = [i for i, b in enumerate(data) if b == ord("\n")]
    assert newlines and size - 1 not in newlines  # some cuts fall at, before and after a newline
    for position in range(size + 1):  # every byte: 0, mid-line, at and after a newline, inside a character, EOF
        assert read_ranges(cut(tricky_jsonl, [position]), dataset) == expected, position


def test_many_cuts_read_every_line_once(tmp_path, tricky_jsonl):
    for path in (tricky_jsonl, write_jsonl(tmp_path / "big.jsonl", 300)):
        dataset = spec(path)
        expected = whole(dataset)
        size = path.stat().st_size
        rng = random.Random(42)
        for _ in range(300):
            positions = [rng.randint(0, size) for _ in range(rng.randint(1, 12))]
            assert read_ranges(cut(path, positions), dataset) == expected, positions
        # cuts every few bytes: most ranges hold no line start at all
        assert read_ranges(cut(path, list(range(0, size, 7))), dataset) == expected
        # repeated cuts (empty ranges) and cuts at 0 and EOF
        assert read_ranges(cut(path, [0, 0, size // 2, size // 2, size, size]), dataset) == expected


def test_keys_name_the_line_start_whatever_the_range(tricky_jsonl):
    dataset = spec(tricky_jsonl)
    data = tricky_jsonl.read_bytes()
    for key, _, _ in whole(dataset):
        name, offset = key.rsplit(":", 1)
        assert name == "tricky.jsonl"
        assert int(offset) == 0 or data[int(offset) - 1] == ord("\n")


# -- plans ----------------------------------------------------------------------------------


@pytest.fixture
def sized_blend(tmp_path) -> BlendSpec:
    """Three JSONL datasets of about 20 KB, 60 KB and 1 KB (the last one in two files)."""
    write_jsonl(tmp_path / "small.jsonl", 160, seed=1)
    write_jsonl(tmp_path / "large.jsonl", 480, seed=2)
    write_jsonl(tmp_path / "tiny" / "a.jsonl", 4, seed=3)
    write_jsonl(tmp_path / "tiny" / "b.jsonl", 4, seed=4)
    (tmp_path / "blend.json").write_text(
        json.dumps(
            {
                "datasets": [
                    {"name": "small", "path": "small.jsonl", "weight": 1},
                    {"name": "large", "path": "large.jsonl", "weight": 2},
                    {"name": "tiny", "path": "tiny", "weight": 0.5},
                ]
            }
        )
    )
    return load_blend_spec(tmp_path / "blend.json")


def dataset_bytes(dataset: DatasetSpec) -> int:
    return sum(Path(r.path).stat().st_size for r in whole_dataset_ranges(dataset))


def item_bytes(item) -> int:
    return sum((r.end if r.end is not None else Path(r.path).stat().st_size) - r.start for r in item.ranges)


def test_plans_are_deterministic(sized_blend):
    for num_shards in (1, 3, 8, 50):
        assert plan_work(sized_blend, num_shards) == plan_work(sized_blend, num_shards)
    assert plan_work(sized_blend, 8) != plan_work(sized_blend, 9)


@pytest.mark.parametrize("num_shards", [1, 2, 5, 8, 13, 40])
def test_plans_have_about_num_shards_items_proportional_to_bytes(sized_blend, num_shards):
    items = plan_work(sized_blend, num_shards)
    datasets = sized_blend.datasets
    assert abs(len(items) - num_shards) <= len(datasets)
    total = sum(dataset_bytes(d) for d in datasets)
    for dataset in datasets:
        mine = [i for i in items if i.dataset == dataset.name]
        assert mine, dataset.name  # at least one per dataset, however small
        assert [i.shard for i in mine] == list(range(len(mine)))
        assert [i.id for i in mine] == [f"{dataset.name}/shard_{n:05d}" for n in range(len(mine))]
        share = num_shards * dataset_bytes(dataset) / total
        assert len(mine) in (max(1, int(share)), max(1, int(share) + 1)), (dataset.name, len(mine), share)
        # the dataset's bytes are shared out evenly (within a byte) and completely
        sizes = [item_bytes(i) for i in mine]
        assert sum(sizes) == dataset_bytes(dataset)
        if dataset.name != "tiny":
            assert max(sizes) - min(sizes) <= 1, sizes


def test_planned_items_read_every_record_once(sized_blend):
    for num_shards in (1, 2, 5, 8, 13, 40, 200):
        items = plan_work(sized_blend, num_shards)
        for dataset in sized_blend.datasets:
            got = read_ranges([r for i in items if i.dataset == dataset.name for r in i.ranges], dataset)
            assert got == whole(dataset), (num_shards, dataset.name)


def test_num_shards_must_be_positive(sized_blend):
    with pytest.raises(ValueError, match="num_shards must be >= 1"):
        plan_work(sized_blend, 0)


def test_files_that_cannot_be_cut_are_never_cut(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "mixed"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", 200, seed=5)
    with gzip.open(folder / "b.jsonl.gz", "wt", encoding="utf-8") as handle:
        for i in range(2000):
            handle.write(json.dumps({"text": f"gz doc {i} " + "y" * (i % 50)}) + "\n")
    pq.write_table(pa.table({"text": [f"row {i} " + "z" * (i % 70) for i in range(3000)]}), folder / "c.parquet")
    (folder / "d.txt").write_text("a plain text document\n" * 2000)
    (folder / "e.jsonl").write_text("")  # empty
    dataset = spec(folder)
    items = plan_work(BlendSpec(tmp_path / "blend.json", (dataset,)), 16)
    assert len(items) > 1
    for name in ("b.jsonl.gz", "c.parquet", "d.txt", "e.jsonl"):
        ranges = [r for i in items for r in i.ranges if Path(r.path).name == name]
        assert len(ranges) == 1, (name, ranges)
        assert (ranges[0].start, ranges[0].end, ranges[0].splittable) == (0, None, False), name
    assert len([r for i in items for r in i.ranges if Path(r.path).name == "a.jsonl"]) > 1  # JSONL is cut
    assert read_ranges([r for i in items for r in i.ranges], dataset) == whole(dataset)
    assert len(whole(dataset)) == 200 + 2000 + 3000 + 1


def test_sample_plans_one_whole_item_per_dataset(sized_blend):
    items = plan_work(sized_blend, 64, sample=10)
    assert [i.id for i in items] == ["small/shard_00000", "large/shard_00000", "tiny/shard_00000"]
    for item, dataset in zip(items, sized_blend.datasets, strict=True):
        assert item_bytes(item) == dataset_bytes(dataset)
        assert read_ranges(item.ranges, dataset) == whole(dataset)


def test_hub_datasets_are_one_item_and_planning_them_reads_nothing(tmp_path):
    hub = DatasetSpec(name="web", path="hf://no-such-org/no-such-dataset", weight=1.0, text_field="text")
    local = spec(write_jsonl(tmp_path / "l.jsonl", 100), name="local")
    items = plan_work(BlendSpec(tmp_path / "blend.json", (hub, local)), 10)
    web = [i for i in items if i.dataset == "web"]
    assert len(web) == 1 and web[0].ranges == (SourceRange("hf://no-such-org/no-such-dataset"),)
    assert len([i for i in items if i.dataset == "local"]) >= 1
