"""Sharded pretraining data prep end to end: real tokenizer, megatron-core bin/idx shards, receipts,
blend.json and Megatron GPT datasets built from it."""

from __future__ import annotations

import functools
import json
import re
import shutil
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from nemotron.data.blend_spec import load_blend_spec
from nemotron.data.errors import DataError
from nemotron.data.megatron_blend import read_blend, write_blend
from nemotron.data.pretrain_prep import PrepRequest, ShardRun, finalize, run_shards
from nemotron.data.receipts import ShardReceipt, receipt_path
from nemotron.data.shard_plan import plan_work
from nemotron.data.shard_worker import ShardSettings
from nemotron.data.sources import iter_records, whole_dataset_ranges
from nemotron.data.splits import SPLITS, SplitFractions
from nemotron.data.tokenizer import load_tokenizer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TINY_BLEND = REPO / "recipes/nano3/stage0_pretrain/data_blends/tiny.json"
TINY_TOKENIZER = REPO / "recipes/nano3/assets/tokenizer-tiny"
SEED = 1234
NUM_SHARDS = 4

warnings.filterwarnings("ignore", message="Transformer Engine and Apex are not installed")


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(str(TINY_TOKENIZER))


@pytest.fixture(scope="module")
def blend():
    return load_blend_spec(TINY_BLEND)


def make_request(
    blend,
    data_dir: Path,
    seed: int = SEED,
    valid=0.02,
    test=0.02,
    num_shards=NUM_SHARDS,
    workers=1,
    append_eod=True,
    batch_size=256,
    max_bad_records=0,
) -> PrepRequest:
    settings = ShardSettings(
        fractions=SplitFractions(valid, test, seed),
        append_eod=append_eod,
        min_doc_chars=0,
        max_doc_tokens=None,
        sample=None,
        batch_size=batch_size,
        settings_hash=f"test-seed{seed}-v{valid}-t{test}-eod{append_eod}",
    )
    return PrepRequest(blend, settings, data_dir, num_shards, workers, max_bad_records=max_bad_records)


def run_prep(blend, tokenizer, data_dir: Path, **options):
    """run_shards then finalize, as the stage does; blend.json in the data folder, relative prefixes."""
    request = make_request(blend, data_dir, **options)
    logs: list[str] = []
    started = time.perf_counter()
    loader = functools.partial(load_tokenizer, str(TINY_TOKENIZER))
    done = run_shards(request, loader, tokenizer.vocab_size, log=logs.append)
    data_dir.mkdir(parents=True, exist_ok=True)
    result = finalize(request, data_dir / "blend.json", done, started, log=logs.append, prefixes_relative_to=data_dir)
    return request, result, logs


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, blend, tokenizer):
    data_dir = tmp_path_factory.mktemp("prep") / "seed1234"
    request, result, logs = run_prep(blend, tokenizer, data_dir)
    return request, result, logs


def receipt(data_dir: Path, item) -> ShardReceipt:
    return ShardReceipt.from_json(receipt_path(data_dir, item.id).read_text())


def indexed(prefix: Path):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    return IndexedDataset(str(prefix))


def documents(prefix: Path) -> list[tuple[int, ...]]:
    """All documents of a bin/idx pair as tuples (copied out while the mmap is open)."""
    ds = indexed(prefix)
    return [tuple(ds[i].tolist()) for i in range(len(ds))]


def data_files(root: Path) -> dict[str, bytes]:
    """The bytes of every shard file (bin/idx) under a data folder, by relative path."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix in (".bin", ".idx")
    }


def receipt_bytes(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted((root / "receipts").rglob("*.json"))}


# -- the tiny blend through megatron-core ------------------------------------------------


def test_layout_receipts_and_stats(prepared, blend):
    request, result, logs = prepared
    data_dir = request.data_dir
    items = plan_work(blend, NUM_SHARDS)
    assert [i.id for i in items] == [
        "python-tutorial/shard_00000",
        "python-tutorial/shard_00001",
        "python-library/shard_00000",
        "python-library/shard_00001",
    ]
    assert result.shards == len(items) and result.shards_done_now == len(items)
    assert logs[0] == "4 shards planned, 0 of 4 already done, 4 to do with 1 worker(s)"
    assert not any("warning" in line for line in logs), logs
    assert sorted(p.name for p in data_dir.iterdir()) == ["blend.json", "receipts", "test", "train", "valid"]

    summed = {name: {s: [0, 0, 0] for s in SPLITS} for name in ("python-tutorial", "python-library")}
    for item in items:
        rec = receipt(data_dir, item)
        assert rec.item_id == item.id
        assert rec.settings_hash == request.settings.settings_hash
        assert [i.path for i in rec.inputs] == sorted({r.path for r in item.ranges})
        assert rec.empty == rec.short == rec.truncated == rec.bad == 0
        for split, out in rec.splits.items():
            assert out.prefix == (f"{split}/{item.dataset}/shard_{item.shard:05d}" if out.documents else "")
            prefix = data_dir / f"{split}/{item.dataset}/shard_{item.shard:05d}"
            for suffix, size in ((".bin", out.bin_size), (".idx", out.idx_size)):
                file = Path(f"{prefix}{suffix}")
                assert file.is_file() == bool(out.documents), (file, out)
                if out.documents:
                    assert file.stat().st_size == size
            summed[item.dataset][split][0] += out.documents
            summed[item.dataset][split][1] += out.tokens
            summed[item.dataset][split][2] += out.bytes
    # PrepResult adds up the receipts
    assert set(result.stats) == set(summed)
    for name, per_split in result.stats.items():
        for split, stats in per_split.items():
            assert [stats.documents, stats.tokens, stats.bytes] == summed[name][split], (name, split)
    totals = result.totals()
    assert sum(t.documents for t in totals.values()) == 221 + 319  # every line of the corpus is a document
    assert all(totals[s].documents > 0 for s in SPLITS)
    assert totals["train"].documents > 10 * (totals["valid"].documents + totals["test"].documents)
    assert result.empty_documents == result.bad_records == 0


def test_every_shard_reads_back_through_megatron_and_ends_documents_with_eod(prepared, blend, tokenizer):
    request, _, _ = prepared
    checked = 0
    for item in plan_work(blend, NUM_SHARDS):
        rec = receipt(request.data_dir, item)
        for split, out in rec.splits.items():
            if not out.documents:
                continue
            ds = indexed(request.data_dir / out.prefix)
            assert len(ds) == out.documents, (item.id, split)
            assert ds.sequence_lengths.dtype == np.int32
            assert int(ds.sequence_lengths.sum()) == out.tokens, (item.id, split)
            assert list(ds.document_indices) == list(range(out.documents + 1))  # one sequence per document
            assert ds.index.dtype == np.uint16  # vocab 8192 fits
            for i in range(len(ds)):
                tokens = ds[i]
                assert len(tokens) == ds.sequence_lengths[i] >= 2
                assert tokens[-1] == tokenizer.eod_id, (item.id, split, i)
                assert tokenizer.eod_id not in tokens[:-1]
                assert int(tokens.max()) < tokenizer.vocab_size
            checked += 1
    assert checked == 3 * 4  # every split of every shard has documents with these fractions


def test_documents_land_in_their_seeded_split_in_order(prepared, blend, tokenizer):
    """Every source document is in exactly the split its key's seeded hash picks, in source order."""
    request, _, _ = prepared
    fractions = SplitFractions(0.02, 0.02, SEED)
    specs = {spec.name: spec for spec in blend.datasets}
    seen: dict[str, list[str]] = {name: [] for name in specs}
    for item in plan_work(blend, NUM_SHARDS):
        spec = specs[item.dataset]
        expected: dict[str, list[str]] = {s: [] for s in SPLITS}
        for rng in item.ranges:
            for record in iter_records(rng, spec):
                assert record.problem is None, record
                seen[spec.name].append(record.key)
                if record.text and record.text.strip():
                    expected[fractions.assign(spec.name, record.key)].append(record.text)
        for split in SPLITS:
            prefix = request.data_dir / f"{split}/{item.dataset}/shard_{item.shard:05d}"
            got = documents(prefix) if expected[split] else []
            assert not expected[split] or Path(f"{prefix}.bin").is_file()
            want = [tuple(ids + [tokenizer.eod_id]) for ids in tokenizer.encode_batch(expected[split])]
            assert got == want, (item.id, split)
    for name, spec in specs.items():  # the shards read each record once: none lost, none twice
        whole = [r.key for rng in whole_dataset_ranges(spec) for r in iter_records(rng, spec)]
        assert seen[name] == whole


def test_blend_json_lists_every_shard_with_token_weighted_dataset_weights(prepared, blend):
    request, _, _ = prepared
    data_dir = request.data_dir
    raw = json.loads((data_dir / "blend.json").read_text())
    assert set(raw) == set(SPLITS)
    items = plan_work(blend, NUM_SHARDS)
    for split in SPLITS:
        weights, prefixes = raw[split][0::2], raw[split][1::2]
        assert prefixes == [f"{split}/{i.dataset}/shard_{i.shard:05d}" for i in items]  # relative to data_dir
        for spec in blend.datasets:
            mine = [(w, i) for w, i in zip(weights, items, strict=True) if i.dataset == spec.name]
            assert sum(w for w, _ in mine) == pytest.approx(spec.weight)
            tokens = {i.id: receipt(data_dir, i).splits[split].tokens for _, i in mine}
            for weight, item in mine:
                assert weight == pytest.approx(spec.weight * tokens[item.id] / sum(tokens.values()))
    blends = read_blend(data_dir / "blend.json")
    for split in SPLITS:
        assert blends[split][0] == [str(data_dir / p) for p in raw[split][1::2]]
        assert blends[split][1] == raw[split][0::2]
    # without prefixes_relative_to, prefixes are absolute
    absolute = data_dir.parent / "absolute-blend.json"
    finalize(request, absolute, ShardRun(), time.perf_counter(), log=lambda _: None)
    raw_abs = json.loads(absolute.read_text())
    assert raw_abs["train"][1::2] == [str(data_dir / p) for p in raw["train"][1::2]]
    assert raw_abs["train"][0::2] == raw["train"][0::2]


def test_a_relative_data_folder_gives_absolute_prefixes(prepared, blend, tmp_path, monkeypatch):
    request, _, _ = prepared
    shutil.copytree(request.data_dir, tmp_path / "relative-data")
    monkeypatch.chdir(tmp_path)
    elsewhere = tmp_path / "published" / "blend.json"
    elsewhere.parent.mkdir()
    finalize(make_request(blend, Path("relative-data")), elsewhere, ShardRun(), time.perf_counter(), log=lambda _: None)
    for split, (prefixes, _) in read_blend(elsewhere).items():
        for prefix in prefixes:
            assert prefix.startswith(str(tmp_path / "relative-data" / split)), prefix
            assert Path(f"{prefix}.bin").is_file()


def test_megatron_gpt_datasets_build_from_the_blend(prepared, blend, tokenizer, tmp_path):
    import torch
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.tokenizers import MegatronTokenizer

    request, _, _ = prepared
    data_dir = tmp_path / "copy"
    shutil.copytree(request.data_dir, data_dir)  # megatron writes index caches next to the data (path_to_cache None)
    # the copied folder's receipts still hold: finalize accepts it and writes its own blend.json
    copy_request = make_request(blend, data_dir)
    finalize(
        copy_request,
        data_dir / "blend.json",
        ShardRun(),
        time.perf_counter(),
        log=lambda _: None,
        prefixes_relative_to=data_dir,
    )
    megatron_tokenizer = MegatronTokenizer.from_pretrained(
        tokenizer_path=str(TINY_TOKENIZER), metadata_path={"library": "huggingface"}
    )
    assert megatron_tokenizer.vocab_size == tokenizer.vocab_size
    assert megatron_tokenizer.eod == tokenizer.eod_id
    blends = read_blend(data_dir / "blend.json")
    assert all(p.startswith(str(data_dir)) for s in SPLITS for p in blends[s][0])
    sizes = [200, 20, 20]
    config = GPTDatasetConfig(
        random_seed=1234,
        sequence_length=128,
        blend_per_split=[blends[s] for s in SPLITS],
        tokenizer=megatron_tokenizer,
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
        path_to_cache=None,
        mmap_bin_files=True,
    )
    datasets = BlendedMegatronDatasetBuilder(GPTDataset, sizes, lambda: True, config).build()
    assert len(datasets) == 3
    for split, dataset, size in zip(SPLITS, datasets, sizes, strict=True):
        assert dataset is not None
        # megatron rounds each prefix's share of the samples up: at most one extra per prefix
        assert size <= len(dataset) <= size + len(blends[split][0])
        dataset_ids = set()
        for i in range(len(dataset)):
            sample = dataset[i]
            tokens, labels = sample["tokens"], sample["labels"]
            assert tokens.shape == (128,) and labels.shape == (128,)
            assert tokens.dtype == torch.int64
            assert int(tokens.min()) >= 0 and int(tokens.max()) < tokenizer.vocab_size
            assert int(labels.max()) < tokenizer.vocab_size
            assert torch.equal(tokens[1:], labels[:-1])  # labels are the next tokens
            dataset_ids.add(int(sample["dataset_id"]))
        assert dataset_ids <= set(range(len(blends[split][0])))
        if split == "train":
            assert dataset_ids == set(range(4))  # every shard of both datasets is drawn from


def test_same_seed_gives_identical_bytes_whatever_the_batch_size(prepared, blend, tokenizer, tmp_path):
    request, result, _ = prepared
    _, again, _ = run_prep(blend, tokenizer, tmp_path / "again", batch_size=7)
    expected = data_files(request.data_dir)
    assert len(expected) == 2 * 4 * 3  # bin+idx, 4 shards, 3 splits
    assert data_files(tmp_path / "again") == expected
    assert (tmp_path / "again" / "blend.json").read_bytes() == (request.data_dir / "blend.json").read_bytes()
    assert receipt_bytes(tmp_path / "again") == receipt_bytes(request.data_dir)
    assert again.stats == result.stats


def test_different_seed_changes_split_assignment(prepared, blend, tokenizer, tmp_path):
    request, result, _ = prepared
    other_dir = tmp_path / "seed99"
    _, other, _ = run_prep(blend, tokenizer, other_dir, seed=99)
    assert other.stats != result.stats
    for name in result.stats:
        # the same documents in total, but a different set held out for valid
        assert sum(s.documents for s in other.stats[name].values()) == sum(
            s.documents for s in result.stats[name].values()
        )
        assert sum(s.tokens for s in other.stats[name].values()) == sum(s.tokens for s in result.stats[name].values())
        original = {
            d for p in sorted((request.data_dir / "valid" / name).glob("*.bin")) for d in documents(p.with_suffix(""))
        }
        changed = {d for p in sorted((other_dir / "valid" / name).glob("*.bin")) for d in documents(p.with_suffix(""))}
        assert len(original) == result.stats[name]["valid"].documents
        assert len(changed) == other.stats[name]["valid"].documents
        assert original != changed


def test_rerun_skips_finished_shards_and_finalize_refuses_a_missing_one(prepared, blend, tokenizer, tmp_path):
    request, _, _ = prepared
    data_dir = tmp_path / "data"
    shutil.copytree(request.data_dir, data_dir)
    _, _, logs = run_prep(blend, tokenizer, data_dir)
    assert logs[0] == "4 shards planned, 4 of 4 already done, 0 to do with 1 worker(s)"
    item = plan_work(blend, NUM_SHARDS)[1]
    receipt_path(data_dir, item.id).unlink()
    with pytest.raises(DataError, match=re.escape(f"shard {item.id} in {data_dir} is missing")):
        finalize(
            make_request(blend, data_dir), data_dir / "blend.json", ShardRun(), time.perf_counter(), log=lambda _: None
        )
    # a different settings hash does not trust the receipts either
    other = make_request(blend, data_dir, append_eod=False)
    assert other.settings.settings_hash != request.settings.settings_hash
    with pytest.raises(DataError, match="missing or does not match its receipt"):
        finalize(other, data_dir / "blend.json", ShardRun(), time.perf_counter(), log=lambda _: None)


# -- small inputs: options and edge cases ------------------------------------------------


def small_blend(tmp_path: Path, docs: list[str], lines: list[str] | None = None):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs) + "".join(lines or []))
    path = tmp_path / "blend.json"
    path.write_text(json.dumps({"datasets": [{"name": "small", "path": "data.jsonl", "weight": 3}]}))
    return load_blend_spec(path)


def test_empty_splits_are_null_leave_no_files_and_are_warned(tmp_path, tokenizer):
    spec = small_blend(tmp_path, ["hello world", "   ", "", "def f(): pass", "x = 1"])
    data_dir = tmp_path / "out"
    _, result, logs = run_prep(spec, tokenizer, data_dir, valid=0.0, test=0.0, num_shards=1)
    assert result.empty_documents == 2
    assert result.stats["small"]["train"].documents == 3
    assert result.stats["small"]["train"].bytes == len("hello world") + len("def f(): pass") + len("x = 1")
    raw = json.loads((data_dir / "blend.json").read_text())
    assert raw == {"train": [3.0, "train/small/shard_00000"], "valid": None, "test": None}
    assert read_blend(data_dir / "blend.json")["valid"] is None
    assert sum("warning: split 'valid' received no documents" in line for line in logs) == 1
    assert sum("warning: split 'test' received no documents" in line for line in logs) == 1
    # no files at all for an empty split (megatron cannot even mmap empty ones), temporary ones included
    for split in ("valid", "test"):
        assert [p for p in (data_dir / split).rglob("*") if p.is_file()] == []
    assert sorted(p.name for p in (data_dir / "train" / "small").iterdir()) == ["shard_00000.bin", "shard_00000.idx"]
    assert (data_dir / "train" / "small" / "shard_00000.bin").stat().st_size > 0


def test_append_eod_false(tmp_path, tokenizer):
    docs = ["alpha beta", "gamma delta epsilon"]
    spec = small_blend(tmp_path, docs)
    _, with_eod, _ = run_prep(spec, tokenizer, tmp_path / "eod", valid=0.0, test=0.0, num_shards=1)
    _, without, _ = run_prep(spec, tokenizer, tmp_path / "noeod", valid=0.0, test=0.0, num_shards=1, append_eod=False)
    assert without.stats["small"]["train"].tokens == with_eod.stats["small"]["train"].tokens - 2
    assert documents(tmp_path / "noeod" / "train" / "small" / "shard_00000") == [
        tuple(ids) for ids in tokenizer.encode_batch(docs)
    ]


def test_bad_records_are_counted_and_fail_finalize_above_the_limit(tmp_path, tokenizer):
    spec = small_blend(tmp_path, ["ok one", "ok two"], ['{"body": "no text"}\n'])
    strict = r"1 malformed records \(max_bad_records=0\); first: .*data.jsonl:3: no field 'text'"
    with pytest.raises(DataError, match=strict):
        run_prep(spec, tokenizer, tmp_path / "strict", num_shards=1)
    _, result, _ = run_prep(spec, tokenizer, tmp_path / "lenient", num_shards=1, max_bad_records=1)
    assert result.bad_records == 1
    assert sum(s.documents for s in result.stats["small"].values()) == 2


# -- SplitFractions -------------------------------------------------------------------


@pytest.mark.parametrize(("valid", "test"), [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (0.7, 0.4), (-0.1, 0.0), (0.0, -0.01)])
def test_split_fractions_rejects_bad_values(valid, test):
    with pytest.raises(ValueError, match="valid \\+ test < 1"):
        SplitFractions(valid, test, 1)


@pytest.mark.parametrize(("valid", "test"), [(0.0, 0.0), (0.1, 0.2), (0.49, 0.5)])
def test_split_fractions_accepts_good_values(valid, test):
    fractions = SplitFractions(valid, test, 1)
    assert (fractions.valid, fractions.test, fractions.seed) == (valid, test, 1)


def test_split_assignment_is_deterministic_and_proportional():
    keys = [f"web.jsonl:{i * 97}" for i in range(20000)]
    fractions = SplitFractions(0.1, 0.2, 7)
    assignment = [fractions.assign("web", k) for k in keys]
    assert assignment == [SplitFractions(0.1, 0.2, 7).assign("web", k) for k in keys]
    counts = {s: assignment.count(s) / len(assignment) for s in SPLITS}
    assert counts["valid"] == pytest.approx(0.1, abs=0.01)
    assert counts["test"] == pytest.approx(0.2, abs=0.01)
    other_seed = [SplitFractions(0.1, 0.2, 8).assign("web", k) for k in keys]
    other_name = [fractions.assign("code", k) for k in keys]
    assert other_seed != assignment and other_name != assignment
    assert all(SplitFractions(0.0, 0.0, 7).assign("web", k) == "train" for k in keys[:1000])


# -- blend.json round trip --------------------------------------------------------------


def test_write_read_blend_round_trip(tmp_path):
    folder = tmp_path / "artifact"
    folder.mkdir()
    write_blend(folder / "blend.json", {"train": [(0.25, "train/a"), (0.75, "train/b")], "valid": [(1.0, "valid/a")]})
    assert json.loads((folder / "blend.json").read_text()) == {
        "train": [0.25, "train/a", 0.75, "train/b"],
        "valid": [1.0, "valid/a"],
        "test": None,
    }
    assert [p.name for p in folder.iterdir()] == ["blend.json"]  # no temp file left
    moved = tmp_path / "moved"
    folder.rename(moved)  # relative prefixes: the artifact can move
    blends = read_blend(moved / "blend.json")
    assert blends == {
        "train": ([str(moved / "train/a"), str(moved / "train/b")], [0.25, 0.75]),
        "valid": ([str(moved / "valid/a")], [1.0]),
        "test": None,
    }
    assert all(Path(p).is_absolute() for p in blends["train"][0])


def test_read_blend_errors(tmp_path):
    with pytest.raises(DataError, match="cannot read blend"):
        read_blend(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(DataError, match="cannot read blend"):
        read_blend(bad)
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"train": [1.0, "train/a", 2.0]}))
    with pytest.raises(DataError, match="split 'train' must alternate weight and prefix"):
        read_blend(odd)
