"""Bad and awkward inputs through the data prep stage's entry point: clear errors, nothing half published,
filters counted in the artifact's metadata."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nemotron.data.errors import DataError
from nemotron.data.megatron_blend import read_blend
from nemotron.data.tokenizer import load_tokenizer

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TINY_TOKENIZER = REPO / "recipes/nano3/assets/tokenizer-tiny"
NAME = "test-data"
ALL_TRAIN = {"valid_fraction": 0.0, "test_fraction": 0.0, "seed": 1}


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(str(TINY_TOKENIZER))


def jsonl(*texts) -> bytes:
    return b"".join(json.dumps({"text": t}).encode() + b"\n" for t in texts)


def make_blend(root: Path, datasets: dict[str, bytes], weights: dict[str, object] | None = None) -> Path:
    """One JSONL file per dataset (raw bytes) and a blend file naming them."""
    root.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, content in datasets.items():
        (root / f"{name}.jsonl").write_bytes(content)
        entries.append({"name": name, "path": f"{name}.jsonl", "weight": (weights or {}).get(name, 1.0)})
    (root / "blend.json").write_text(json.dumps({"datasets": entries}))
    return root / "blend.json"


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def shard_documents(blend_file: Path, split: str = "train") -> dict[str, list[tuple[int, ...]]]:
    """Documents per dataset (in shard order) of a published blend.json."""
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    found: dict[str, list[tuple[int, ...]]] = {}
    blend = read_blend(blend_file)[split]
    for prefix in blend[0] if blend else []:
        dataset = IndexedDataset(prefix)
        found.setdefault(Path(prefix).parent.name, []).extend(tuple(dataset[i].tolist()) for i in range(len(dataset)))
    return found


# -- inputs that cannot be read -------------------------------------------------------------------


def test_a_missing_input_file_is_named(tmp_path, stage_config, prep_stage):
    blend = make_blend(tmp_path / "in", {"here": jsonl("a document")})
    raw = json.loads(blend.read_text())
    raw["datasets"].append({"name": "gone", "path": "gone.jsonl", "weight": 1.0})
    blend.write_text(json.dumps(raw))
    config = stage_config(tmp_path / "config.yaml", blend, tmp_path / "data")
    with pytest.raises(DataError, match=r"dataset gone: no input files at \S*/in/gone.jsonl"):
        prep_stage(config, tmp_path / "registry")
    assert files_under(tmp_path / "registry") == []
    assert not (tmp_path / "data").exists()


def test_empty_inputs_are_warned_and_left_out_of_the_blend(tmp_path, stage_config, prep_stage, artifact_metadata):
    blend = make_blend(
        tmp_path / "in",
        {
            "full": jsonl(*(f"document number {i}" for i in range(10))),
            "empty": b"",
            "blank": b"\n\n" + jsonl("   ", "", None) + b"\n",
        },
    )
    config = stage_config(tmp_path / "config.yaml", blend, tmp_path / "data", num_shards=3, split=ALL_TRAIN)
    out = prep_stage(config, tmp_path / "registry")
    assert "warning: dataset 'empty' produced no documents; it is left out of blend.json" in out
    assert "warning: dataset 'blank' produced no documents; it is left out of blend.json" in out
    assert "warning: dataset 'full'" not in out
    assert f"published {NAME}:v1" in out
    metadata = artifact_metadata(tmp_path / "registry", NAME)
    assert metadata["empty_documents_skipped"] == 3
    assert metadata["datasets"]["empty"]["train"]["documents"] == 0
    assert metadata["datasets"]["blank"]["train"]["documents"] == 0
    assert metadata["datasets"]["full"]["train"]["documents"] == 10
    blend_json = json.loads((tmp_path / "registry" / NAME / "v1" / "blend.json").read_text())
    assert {Path(p).parent.name for p in blend_json["train"][1::2]} == {"full"}
    assert sum(blend_json["train"][0::2]) == pytest.approx(1.0)
    assert blend_json["valid"] is None and blend_json["test"] is None
    for name in ("empty", "blank"):
        assert files_under(tmp_path / "data" / "train" / name) == []


def test_a_blend_without_any_document_fails_and_publishes_nothing(
    tmp_path, stage_config, prep_stage, registry_versions
):
    blend = make_blend(tmp_path / "in", {"empty": b"", "blank": jsonl("  ", "\n\t")})
    config = stage_config(tmp_path / "config.yaml", blend, tmp_path / "data", num_shards=2)
    with pytest.raises(DataError, match=r"the blend \S+blend.json produced no documents \(2 empty, 0 shorter"):
        prep_stage(config, tmp_path / "registry")
    assert registry_versions(tmp_path / "registry", NAME) == []


# -- malformed records ----------------------------------------------------------------------------


def malformed_lines() -> bytes:
    return b"".join(
        [
            jsonl("good one"),
            b'{"text": "unterminated\n',  # line 2: not JSON
            b'{"text": "caf\xe9 latin-1"}\n',  # line 3: not UTF-8
            b'{"text": 5}\n',  # line 4: not a string
            jsonl("good two"),
            b'{"body": "no text field"}\n',  # line 6
        ]
    )


def test_malformed_records_over_the_limit_fail_naming_file_and_line(
    tmp_path, stage_config, prep_stage, registry_versions
):
    blend = make_blend(tmp_path / "in", {"bad": malformed_lines()})
    path = tmp_path / "in" / "bad.jsonl"
    for limit in (0, 3):
        config = stage_config(tmp_path / "config.yaml", blend, tmp_path / "data", num_shards=1, max_bad_records=limit)
        with pytest.raises(DataError) as caught:
            prep_stage(config, tmp_path / "registry")
        message = str(caught.value)
        assert message.startswith(f"4 malformed records (max_bad_records={limit}); first: "), message
        assert f"{path}:2: not a valid UTF-8 JSON line" in message
        assert f"{path}:3: not a valid UTF-8 JSON line" in message
        assert f"{path}:4: field 'text' must be a string, got int" in message
        assert f"{path}:6: no field 'text'" in message
        assert "raise max_bad_records" in message
        assert registry_versions(tmp_path / "registry", NAME) == []
    # a shard that starts inside the file names the byte offset of the line instead
    config = stage_config(tmp_path / "config.yaml", blend, tmp_path / "data4", num_shards=4)
    with pytest.raises(DataError, match=rf"{path}:byte \d+: "):
        prep_stage(config, tmp_path / "registry")


def test_malformed_records_within_the_limit_are_skipped_and_counted(
    tmp_path, stage_config, prep_stage, artifact_metadata, tokenizer
):
    blend = make_blend(tmp_path / "in", {"bad": malformed_lines()})
    config = stage_config(
        tmp_path / "config.yaml", blend, tmp_path / "data", num_shards=1, max_bad_records=4, split=ALL_TRAIN
    )
    out = prep_stage(config, tmp_path / "registry")
    assert f"published {NAME}:v1" in out
    metadata = artifact_metadata(tmp_path / "registry", NAME)
    assert metadata["bad_records_skipped"] == 4
    assert metadata["splits"]["train"]["documents"] == 2
    expected = [tuple(ids + [tokenizer.eod_id]) for ids in tokenizer.encode_batch(["good one", "good two"])]
    assert shard_documents(tmp_path / "registry" / NAME / "v1" / "blend.json") == {"bad": expected}


def test_the_stage_process_exits_1_with_one_error_line(tmp_path, stage_config, registry_versions):
    blend = make_blend(tmp_path / "in", {"bad": malformed_lines()})
    config = stage_config(tmp_path / "config.yaml", blend, tmp_path / "data", num_shards=1)
    env = {**os.environ, "NEMOTRON_ARTIFACTS_ROOT": str(tmp_path / "registry"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "nemotron.stages.data_prep_pretrain", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert errors[0].startswith("error: 4 malformed records (max_bad_records=0)")
    assert f"{tmp_path / 'in' / 'bad.jsonl'}:2" in errors[0]
    assert "Traceback" not in done.stderr
    assert registry_versions(tmp_path / "registry", NAME) == []


# -- rejected before any work ---------------------------------------------------------------------


@pytest.mark.parametrize("weight", [0, -1.5])
def test_a_non_positive_weight_is_rejected_before_any_work(tmp_path, stage_config, prep_stage, weight):
    blend = make_blend(tmp_path / "in", {"ok": jsonl("text"), "odd": jsonl("more text")}, {"odd": weight})
    config = stage_config(tmp_path / "config.yaml", blend, tmp_path / "data")
    with pytest.raises(DataError, match=r"datasets\[1\] \(odd\): 'weight' must be a number > 0"):
        prep_stage(config, tmp_path / "registry")
    assert not (tmp_path / "data").exists()
    assert not (tmp_path / "registry").exists()


def test_a_missing_tokenizer_is_named_and_nothing_is_written(tmp_path, stage_config, prep_stage):
    blend = make_blend(tmp_path / "in", {"ok": jsonl("text")})
    missing = tmp_path / "no-such-tokenizer"
    config = stage_config(tmp_path / "config.yaml", blend, tmp_path / "data", tokenizer={"name_or_path": str(missing)})
    with pytest.raises(DataError) as caught:
        prep_stage(config, tmp_path / "registry")
    assert "tokenizer.name_or_path" in str(caught.value)
    assert str(missing) in str(caught.value)
    assert not (tmp_path / "data").exists()
    assert not (tmp_path / "registry").exists()


# -- document filters -----------------------------------------------------------------------------


def test_min_doc_chars_drops_short_documents(tmp_path, stage_config, prep_stage, artifact_metadata, tokenizer):
    texts = ["tiny", "x", "long enough text", "four", "five!", "another long enough one"]
    blend = make_blend(tmp_path / "in", {"docs": jsonl(*texts)})
    config = stage_config(
        tmp_path / "config.yaml", blend, tmp_path / "data", num_shards=1, min_doc_chars=5, split=ALL_TRAIN
    )
    prep_stage(config, tmp_path / "registry")
    metadata = artifact_metadata(tmp_path / "registry", NAME)
    assert metadata["short_documents_skipped"] == 3
    assert metadata["settings"]["min_doc_chars"] == 5
    kept = [t for t in texts if len(t) >= 5]
    expected = [tuple(ids + [tokenizer.eod_id]) for ids in tokenizer.encode_batch(kept)]
    assert shard_documents(tmp_path / "registry" / NAME / "v1" / "blend.json") == {"docs": expected}


def test_max_doc_tokens_truncates_long_documents(tmp_path, stage_config, prep_stage, artifact_metadata, tokenizer):
    texts = [
        "short",
        "a somewhat longer document that needs more than eight tokens for sure",
        "def function(argument): return argument * 2 + 1  # and a comment",
        "x = 1",
    ]
    encoded = tokenizer.encode_batch(texts)
    long_ones = sum(len(ids) > 8 for ids in encoded)
    assert 0 < long_ones < len(texts)
    blend = make_blend(tmp_path / "in", {"docs": jsonl(*texts)})
    config = stage_config(
        tmp_path / "config.yaml", blend, tmp_path / "data", num_shards=1, max_doc_tokens=8, split=ALL_TRAIN
    )
    prep_stage(config, tmp_path / "registry")
    metadata = artifact_metadata(tmp_path / "registry", NAME)
    assert metadata["documents_truncated"] == long_ones
    documents = shard_documents(tmp_path / "registry" / NAME / "v1" / "blend.json")["docs"]
    assert all(len(d) <= 8 + 1 for d in documents)
    assert documents == [tuple(ids[:8] + [tokenizer.eod_id]) for ids in encoded]


# -- sample ---------------------------------------------------------------------------------------


def test_sample_publishes_a_separate_artifact_and_leaves_the_full_one_alone(
    tmp_path, stage_config, prep_stage, registry_versions, artifact_metadata, tokenizer
):
    few = [f"few document {i}" for i in range(3)]
    many = [f"many document {i}" for i in range(40)]
    blend = make_blend(tmp_path / "in", {"few": jsonl(*few), "many": jsonl("", *many)})
    registry = tmp_path / "registry"
    full = stage_config(tmp_path / "full.yaml", blend, None, num_shards=4, split=ALL_TRAIN)
    prep_stage(full, registry)
    before = {p: p.read_bytes() for p in files_under(registry / NAME)}
    assert any(p.suffix == ".bin" for p in before)  # the data folder is inside the registry by default

    out = prep_stage(
        stage_config(tmp_path / "sample.yaml", blend, None, num_shards=4, split=ALL_TRAIN, sample=5), registry
    )
    assert f"published {NAME}-sample:v1" in out
    assert registry_versions(registry, NAME) == ["v1"]
    assert registry_versions(registry, f"{NAME}-sample") == ["v1"]
    assert {p: p.read_bytes() for p in files_under(registry / NAME)} == before
    metadata = artifact_metadata(registry, f"{NAME}-sample")
    assert metadata["shards"] == 2  # one item per dataset
    assert metadata["settings"]["sample"] == 5
    assert {n: s["train"]["documents"] for n, s in metadata["datasets"].items()} == {"few": 3, "many": 5}
    documents = shard_documents(registry / f"{NAME}-sample" / "v1" / "blend.json")
    assert documents == {
        "few": [tuple(ids + [tokenizer.eod_id]) for ids in tokenizer.encode_batch(few)],
        "many": [tuple(ids + [tokenizer.eod_id]) for ids in tokenizer.encode_batch(many[:5])],
    }
    full_metadata = artifact_metadata(registry, NAME)
    assert {n: s["train"]["documents"] for n, s in full_metadata["datasets"].items()} == {"few": 3, "many": 40}


def test_shards_of_other_settings_in_an_explicit_output_dir_are_never_overwritten(
    tmp_path, stage_config, prep_stage, registry_versions
):
    blend = make_blend(tmp_path / "in", {"docs": jsonl(*(f"document {i}" for i in range(20)))})
    registry, data = tmp_path / "registry", tmp_path / "shared-data"
    prep_stage(stage_config(tmp_path / "full.yaml", blend, data, num_shards=2), registry)
    before = {p: p.read_bytes() for p in files_under(data)}
    assert before
    for name, keys in (("sample", {"sample": 5}), ("seed", {"split": {**ALL_TRAIN, "seed": 7}, "force": True})):
        config = stage_config(tmp_path / f"{name}.yaml", blend, data, num_shards=2, **keys)
        with pytest.raises(
            DataError,
            match=rf"data folder {data} holds shards made with other settings .*"
            "set output_dir to another folder",
        ):
            prep_stage(config, registry)
        assert {p: p.read_bytes() for p in files_under(data)} == before, name  # what test-data:v1 points at
    assert registry_versions(registry, NAME) == ["v1"]
    assert registry_versions(registry, f"{NAME}-sample") == []
