"""prepare_pretrain_data end to end: real tokenizer, real megatron-core bin/idx, blend.json and GPT datasets."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from nemotron.data.blend_spec import load_blend_spec
from nemotron.data.errors import DataError
from nemotron.data.megatron_blend import read_blend, write_blend
from nemotron.data.pretrain_prep import PretrainPrepSettings, prepare_pretrain_data
from nemotron.data.sources import iter_documents
from nemotron.data.splits import SPLITS, SplitFractions
from nemotron.data.tokenizer import load_tokenizer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TINY_BLEND = REPO / "recipes/nano3/stage0_pretrain/data_blends/tiny.json"
TINY_TOKENIZER = REPO / "recipes/nano3/assets/tokenizer-tiny"
SEED = 1234

warnings.filterwarnings("ignore", message="Transformer Engine and Apex are not installed")


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(str(TINY_TOKENIZER))


@pytest.fixture(scope="module")
def blend():
    return load_blend_spec(TINY_BLEND)


def run_prep(blend, tokenizer, out_dir: Path, seed: int = SEED, valid=0.02, test=0.02, **settings):
    out_dir.mkdir(parents=True, exist_ok=True)
    logs: list[str] = []
    result = prepare_pretrain_data(
        PretrainPrepSettings(blend=blend, fractions=SplitFractions(valid, test, seed), **settings),
        tokenizer,
        out_dir,
        log=logs.append,
    )
    return result, logs


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, blend, tokenizer):
    out = tmp_path_factory.mktemp("prep") / "seed1234"
    result, logs = run_prep(blend, tokenizer, out)
    return out, result, logs


def indexed(prefix: Path):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    return IndexedDataset(str(prefix))


def documents(prefix: Path) -> list[tuple[int, ...]]:
    """All documents of a bin/idx pair as tuples (copied out while the mmap is open)."""
    ds = indexed(prefix)
    return [tuple(ds[i].tolist()) for i in range(len(ds))]


def all_files(root: Path) -> dict[str, bytes]:
    """The bytes of everything data prep writes: blend.json and each split's bin/idx files."""
    files = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob("*/*")) if p.suffix in (".bin", ".idx")}
    files["blend.json"] = (root / "blend.json").read_bytes()
    return files


# -- the tiny blend through megatron-core ------------------------------------------------


def test_layout_and_stats(prepared, blend):
    out, result, logs = prepared
    assert result.blend_file == "blend.json"
    assert result.dtype == "uint16"  # vocab 8192 fits
    assert set(result.stats) == {"python-tutorial", "python-library"}
    for name in result.stats:
        for split in SPLITS:
            assert (out / split / f"{name}.bin").is_file()
            assert (out / split / f"{name}.idx").is_file()
    totals = result.totals()
    assert sum(t.documents for t in totals.values()) == 221 + 319  # every line of the corpus is a document
    assert all(totals[s].documents > 0 for s in SPLITS)
    assert totals["train"].documents > 10 * (totals["valid"].documents + totals["test"].documents)
    assert result.empty_documents == 0
    assert any(line.startswith("dataset python-tutorial: 221 documents") for line in logs)
    assert not any("warning" in line for line in logs)
    assert sorted(p.name for p in out.iterdir()) == ["blend.json", "test", "train", "valid"]


def test_indexed_datasets_match_stats_and_end_with_eod(prepared, tokenizer):
    out, result, _ = prepared
    for name, per_split in result.stats.items():
        for split, stats in per_split.items():
            ds = indexed(out / split / name)
            assert len(ds) == stats.documents, (name, split)
            assert ds.sequence_lengths.dtype == np.int32
            assert int(ds.sequence_lengths.sum()) == stats.tokens, (name, split)
            assert list(ds.document_indices) == list(range(stats.documents + 1))  # one sequence per document
            assert ds.index.dtype == np.uint16
            for i in range(len(ds)):
                tokens = ds[i]
                assert len(tokens) == ds.sequence_lengths[i] >= 2
                assert tokens[-1] == tokenizer.eod_id, (name, split, i)
                assert tokenizer.eod_id not in tokens[:-1]
                assert int(tokens.max()) < tokenizer.vocab_size


def test_documents_hold_the_tokenized_source_text_in_order(prepared, blend, tokenizer):
    """Every source document lands, in order, in the split its seeded hash picks."""
    out, _, _ = prepared
    fractions = SplitFractions(0.02, 0.02, SEED)
    for spec in blend.datasets:
        expected: dict[str, list[str]] = {s: [] for s in SPLITS}
        index = 0
        for document in iter_documents(spec):
            if document.text.strip():
                expected[fractions.assign(spec.name, index)].append(document.text)
                index += 1
        for split in SPLITS:
            ds = indexed(out / split / spec.name)
            encoded = tokenizer.encode_batch(expected[split])
            assert len(ds) == len(encoded)
            for i, ids in enumerate(encoded):
                assert ds[i].tolist() == ids + [tokenizer.eod_id], (spec.name, split, i)


def test_blend_json(prepared):
    out, _, _ = prepared
    raw = json.loads((out / "blend.json").read_text())
    for split in SPLITS:
        assert raw[split] == [0.4, f"{split}/python-tutorial", 0.6, f"{split}/python-library"]
    blends = read_blend(out / "blend.json")
    assert blends["train"] == ([str(out / "train/python-tutorial"), str(out / "train/python-library")], [0.4, 0.6])


def test_megatron_gpt_datasets_build_from_the_blend(prepared, tokenizer, tmp_path):
    import torch
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
    from megatron.core.tokenizers import MegatronTokenizer

    source, _, _ = prepared
    out = tmp_path / "copy"
    shutil.copytree(source, out)  # megatron writes index caches next to the data when path_to_cache is None
    megatron_tokenizer = MegatronTokenizer.from_pretrained(
        tokenizer_path=str(TINY_TOKENIZER), metadata_path={"library": "huggingface"}
    )
    assert megatron_tokenizer.vocab_size == tokenizer.vocab_size
    assert megatron_tokenizer.eod == tokenizer.eod_id
    blends = read_blend(out / "blend.json")
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
    for dataset, size in zip(datasets, sizes):
        assert dataset is not None
        assert len(dataset) == size
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
        assert dataset_ids == {0, 1}  # both datasets of the blend are drawn from


def test_same_seed_gives_identical_bytes(prepared, blend, tokenizer, tmp_path):
    out, result, _ = prepared
    again, _ = run_prep(blend, tokenizer, tmp_path / "again", batch_size=7)  # batching must not matter
    expected = all_files(out)
    assert len(expected) == 1 + 2 * 2 * 3
    assert all_files(tmp_path / "again") == expected
    assert again.stats == result.stats


def test_different_seed_changes_split_assignment(prepared, blend, tokenizer, tmp_path):
    out, result, _ = prepared
    other, _ = run_prep(blend, tokenizer, tmp_path / "seed99", seed=99)
    assert other.stats != result.stats or all_files(tmp_path / "seed99") != all_files(out)
    for name in result.stats:
        # the same documents in total, but a different set held out for valid
        assert sum(s.documents for s in other.stats[name].values()) == sum(
            s.documents for s in result.stats[name].values()
        )
        assert sum(s.tokens for s in other.stats[name].values()) == sum(s.tokens for s in result.stats[name].values())
        original = set(documents(out / "valid" / name))
        changed = set(documents(tmp_path / "seed99" / "valid" / name))
        assert len(original) == result.stats[name]["valid"].documents
        assert len(changed) == other.stats[name]["valid"].documents
        assert original != changed


# -- small inputs: options and edge cases ------------------------------------------------


def small_blend(tmp_path: Path, docs: list[str]):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    path = tmp_path / "blend.json"
    path.write_text(json.dumps({"datasets": [{"name": "small", "path": "data.jsonl", "weight": 3}]}))
    return load_blend_spec(path)


def test_empty_splits_are_null_and_warned(tmp_path, tokenizer):
    spec = small_blend(tmp_path, ["hello world", "   ", "", "def f(): pass", "x = 1"])
    result, logs = run_prep(spec, tokenizer, tmp_path / "out", valid=0.0, test=0.0)
    assert result.empty_documents == 2
    assert result.stats["small"]["train"].documents == 3
    assert result.stats["small"]["train"].bytes == len("hello world") + len("def f(): pass") + len("x = 1")
    raw = json.loads((tmp_path / "out" / "blend.json").read_text())
    assert raw == {"train": [3.0, "train/small"], "valid": None, "test": None}
    assert read_blend(tmp_path / "out" / "blend.json")["valid"] is None
    assert sum("warning: split 'valid' received no documents" in line for line in logs) == 1
    assert sum("warning: split 'test' received no documents" in line for line in logs) == 1
    # no empty files are left for an empty split (megatron cannot even mmap them)
    assert not (tmp_path / "out" / "valid" / "small.bin").exists()
    assert not (tmp_path / "out" / "valid" / "small.idx").exists()
    assert (tmp_path / "out" / "train" / "small.bin").stat().st_size > 0


def test_append_eod_false(tmp_path, tokenizer):
    docs = ["alpha beta", "gamma delta epsilon"]
    spec = small_blend(tmp_path, docs)
    with_eod, _ = run_prep(spec, tokenizer, tmp_path / "eod", valid=0.0, test=0.0)
    without, _ = run_prep(spec, tokenizer, tmp_path / "noeod", valid=0.0, test=0.0, append_eod=False)
    assert without.stats["small"]["train"].tokens == with_eod.stats["small"]["train"].tokens - 2
    assert documents(tmp_path / "noeod" / "train" / "small") == [tuple(ids) for ids in tokenizer.encode_batch(docs)]


def test_bad_source_fails_prep(tmp_path, tokenizer):
    (tmp_path / "data.jsonl").write_text('{"text": "ok"}\n{"body": "no text"}\n')
    path = tmp_path / "blend.json"
    path.write_text(json.dumps({"datasets": [{"name": "small", "path": "data.jsonl", "weight": 1}]}))
    with pytest.raises(DataError, match="data.jsonl:2: no field 'text'"):
        run_prep(load_blend_spec(path), tokenizer, tmp_path / "out")


# -- SplitFractions -------------------------------------------------------------------


@pytest.mark.parametrize(("valid", "test"), [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5), (0.7, 0.4), (-0.1, 0.0), (0.0, -0.01)])
def test_split_fractions_rejects_bad_values(valid, test):
    with pytest.raises(ValueError, match="valid \\+ test < 1"):
        SplitFractions(valid, test, 1)


@pytest.mark.parametrize(("valid", "test"), [(0.0, 0.0), (0.1, 0.2), (0.49, 0.5)])
def test_split_fractions_accepts_good_values(valid, test):
    SplitFractions(valid, test, 1)


def test_split_assignment_is_deterministic_and_proportional():
    fractions = SplitFractions(0.1, 0.2, 7)
    assignment = [fractions.assign("web", i) for i in range(20000)]
    assert assignment == [SplitFractions(0.1, 0.2, 7).assign("web", i) for i in range(20000)]
    counts = {s: assignment.count(s) / len(assignment) for s in SPLITS}
    assert counts["valid"] == pytest.approx(0.1, abs=0.01)
    assert counts["test"] == pytest.approx(0.2, abs=0.01)
    other_seed = [SplitFractions(0.1, 0.2, 8).assign("web", i) for i in range(20000)]
    other_name = [fractions.assign("code", i) for i in range(20000)]
    assert other_seed != assignment and other_name != assignment
    assert all(SplitFractions(0.0, 0.0, 7).assign("web", i) == "train" for i in range(1000))


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
