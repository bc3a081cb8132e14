"""`nemotron.stages.data_prep_sft` end to end on the tiny chat corpus, in this process."""

from __future__ import annotations

import contextlib
import errno
import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from nemotron.data.errors import DataError
from nemotron.storage_errors import StorageError

REPO = Path(__file__).resolve().parents[2]
CHAT_TINY = REPO / "recipes/nano3/assets/chat-tiny"
TINY_TOKENIZER = REPO / "recipes/nano3/assets/tokenizer-tiny"


def _config(tmp_path: Path, blend: Path, **keys) -> Path:
    config = {
        "blend_path": str(blend),
        "tokenizer": {"name_or_path": str(TINY_TOKENIZER)},
        "pack_size": 512,
        "split": {"valid_fraction": 0.05, "test_fraction": 0.05, "seed": 1234},
        "num_shards": 3,
        "max_bad_records": 0,
        "artifact_name": "test-sft",
    }
    config.update(keys)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run(config: Path, registry: Path) -> str:
    from nemotron.stages.data_prep_sft import main

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setenv("NEMOTRON_ARTIFACTS_ROOT", str(registry))
        for name in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT"):
            patch.delenv(name, raising=False)
        try:
            main(["--config", str(config)])
        except BaseException as err:
            err.add_note(f"stage output:\n{out.getvalue()}")
            raise
    return out.getvalue()


def _small_blend(tmp_path: Path, lines: list[str]) -> Path:
    (tmp_path / "chat.jsonl").write_text("".join(line + "\n" for line in lines))
    blend = tmp_path / "blend.json"
    blend.write_text(json.dumps({"datasets": [{"name": "chat", "path": "chat.jsonl", "weight": 1.0}]}))
    return blend


def _good(index: int) -> str:
    return json.dumps(
        {"messages": [{"role": "user", "content": f"What is {index}?"}, {"role": "assistant", "content": f"{index}."}]}
    )


def test_tiny_corpus_publishes_packed_parquet_with_exact_masks(tmp_path):
    from transformers import AutoTokenizer

    from nemotron.data.chat_template import load_chat_template, render_with_mask
    from nemotron.data.packing import read_packed_parquet

    registry = tmp_path / "registry"
    config = _config(tmp_path, CHAT_TINY / "blend.json")
    out = _run(config, registry)
    assert "published test-sft:v1" in out
    version = registry / "test-sft" / "v1"
    artifact = json.loads((version / "artifact.json").read_text())
    assert artifact["kind"] == "sft-data"
    meta = artifact["metadata"]
    assert meta["seq_length"] == 512 and meta["settings"]["packing"] == "first_fit_shuffle"
    assert meta["chat_template"] and meta["tokenizer"]["name_or_path"] == str(TINY_TOKENIZER)
    assert meta["records"] == 3000 and meta["bad_records"] == 0

    tokenizer = AutoTokenizer.from_pretrained(str(TINY_TOKENIZER))
    template = load_chat_template("nano3", str(TINY_TOKENIZER))
    expected: Counter[tuple[bytes, bytes]] = Counter()
    for line in (CHAT_TINY / "train.jsonl").read_text().splitlines():
        record = json.loads(line)
        rendered = render_with_mask(record["messages"], record.get("tools"), template, tokenizer)
        assert not isinstance(rendered, str)
        expected[(rendered.input_ids.astype(np.int32).tobytes(), rendered.loss_mask.astype(np.uint8).tobytes())] += 1

    found: Counter[tuple[bytes, bytes]] = Counter()
    for split in ("train", "valid", "test"):
        rows = read_packed_parquet(version / f"{split}.parquet")
        counts = meta["splits"][split]
        assert counts["sequences"] == len(rows)
        assert counts["records"] == sum(len(r.seq_start_id) for r in rows)
        assert counts["loss_tokens"] == sum(int(r.loss_mask.sum()) for r in rows)
        assert 0.5 < counts["packing_efficiency"] <= 1.0
        for row in rows:
            assert len(row.input_ids) <= 512
            for start, end in row.documents():
                found[(row.input_ids[start:end].astype(np.int32).tobytes(), row.loss_mask[start:end].tobytes())] += 1
    assert found == expected

    again = _run(config, registry)
    assert "3 of 3 already done" in again
    assert f"nothing changed: test-sft:v1 already holds this data ({version})" in again
    assert sorted(p.name for p in (registry / "test-sft").glob("v*")) == ["v1"]


def test_bad_records_are_counted_with_file_and_line(tmp_path):
    lines = [_good(i) for i in range(20)]
    lines[3] = "{not json"
    lines[7] = json.dumps({"messages": [{"role": "user", "content": "hi"}]})  # no assistant turn
    lines[11] = json.dumps({"messages": [{"role": "wizard", "content": "hi"}, {"role": "assistant", "content": "x"}]})
    blend = _small_blend(tmp_path, lines)
    registry = tmp_path / "registry"
    with pytest.raises(DataError, match=r"3 malformed records.*chat\.jsonl:4"):
        _run(_config(tmp_path, blend, num_shards=1, split={"valid_fraction": 0.0, "test_fraction": 0.0}), registry)
    _run(
        _config(tmp_path, blend, num_shards=1, max_bad_records=3, split={"valid_fraction": 0.0, "test_fraction": 0.0}),
        registry,
    )
    meta = json.loads((registry / "test-sft" / "v1" / "artifact.json").read_text())["metadata"]
    assert meta["bad_records"] == 3 and meta["splits"]["train"]["records"] == 17
    assert any("chat.jsonl:8" in example and "no assistant turn" in example for example in meta["bad_examples"])


def test_one_worker_and_a_pool_write_the_same_bytes(tmp_path):
    blend = _small_blend(tmp_path, [_good(i) for i in range(60)])
    logs, packed = [], []
    for workers in (1, 2):
        registry = tmp_path / f"registry-{workers}"
        logs.append(_run(_config(tmp_path, blend, num_shards=4, workers=workers), registry))
        packed.append({split: (registry / "test-sft/v1" / f"{split}.parquet").read_bytes() for split in ("train",)})
    assert "to do with 1 worker(s)" in logs[0] and "to do with 2 worker(s)" in logs[1]
    assert "progress: 4/4 shards, 60 conversations" in logs[1]
    assert packed[0] == packed[1]


def test_a_data_folder_of_other_settings_is_refused(tmp_path):
    blend = _small_blend(tmp_path, [_good(i) for i in range(10)])
    registry, data = tmp_path / "registry", tmp_path / "data"
    _run(_config(tmp_path, blend, num_shards=1, output_dir=str(data)), registry)
    with pytest.raises(DataError, match=rf"data folder {data} holds shards made with other settings.*set output_dir"):
        _run(_config(tmp_path, blend, num_shards=1, output_dir=str(data), last_turn_only=True), registry)


def test_a_shard_that_fails_leaves_no_temporary_and_a_rerun_removes_a_killed_runs(tmp_path, monkeypatch):
    import nemotron.data.sft_shard as sft_shard

    blend = _small_blend(tmp_path, [_good(i) for i in range(10)])
    registry, data = tmp_path / "registry", tmp_path / "data"
    config = _config(tmp_path, blend, num_shards=1, workers=1, output_dir=str(data))

    def no_room(*args, **kwargs):  # the disk fills up after the file is written, before it is committed
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(sft_shard, "commit_files", no_room)
        with pytest.raises(StorageError, match=rf"cannot write sft data prep shards at {data}: No space left"):
            _run(config, registry)
    assert (data / "conversations" / "train" / "chat").is_dir()
    assert sorted(data.rglob("*.tmp*")) == []

    folder = data / "conversations" / "train" / "chat"
    stale = [folder / "shard_00000.parquet.tmp999999", folder / ".shard_00000.parquet.tmp999999.0123abcd.tmp"]
    for path in stale:
        path.write_bytes(b"partial")
    _run(config, registry)
    assert sorted(data.rglob("*.tmp*")) == []
    assert (folder / "shard_00000.parquet").is_file()


def test_only_changed_packed_files_publish_a_new_version(tmp_path):
    blend = _small_blend(tmp_path, [_good(i) for i in range(30)])
    registry = tmp_path / "registry"
    versions = lambda: sorted(p.name for p in (registry / "test-sft").glob("v*"))  # noqa: E731
    _run(_config(tmp_path, blend, num_shards=2, workers=1), registry)
    out = _run(_config(tmp_path, blend, num_shards=2, workers=1, pack_size=64), registry)  # other packs, same shards
    assert "2 of 2 already done" in out and "published test-sft:v2" in out
    out = _run(_config(tmp_path, blend, num_shards=2, workers=1, pack_size=64), registry)
    assert f"nothing changed: test-sft:v2 already holds this data ({registry / 'test-sft' / 'v2'})" in out
    out = _run(_config(tmp_path, blend, num_shards=2, workers=1, pack_size=64, force=True), registry)
    assert "0 of 2 already done" in out and "published test-sft:v3" in out
    assert versions() == ["v1", "v2", "v3"]
    assert not list((registry / "test-sft" / ".staging").iterdir())


def _tool_record(arguments: dict, with_tools: bool) -> dict:
    record: dict = {
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "w", "arguments": arguments}}]},
            {"role": "tool", "content": "sunny"},
            {"role": "assistant", "content": "It is sunny."},
        ]
    }
    if with_tools:
        record["tools"] = [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}]
    return record


def _chat_records() -> list[dict]:
    lines = (CHAT_TINY / "train.jsonl").read_text().splitlines()[:40]
    records = [{"messages": json.loads(line)["messages"]} for line in lines]
    return [*records, _tool_record({"city": "Paris"}, True), _tool_record({"query": "x"}, False)]


def _packed_bytes(tmp_path: Path, name: str, path: str) -> bytes:
    """train.parquet of a one-dataset blend at `path` (everything in train, one shard)."""
    blend = tmp_path / f"{name}.json"
    blend.write_text(json.dumps({"datasets": [{"name": "chat", "path": path, "weight": 1.0}]}))
    registry = tmp_path / f"registry-{name}"
    split = {"valid_fraction": 0.0, "test_fraction": 0.0}
    config = _config(tmp_path, blend, num_shards=1, workers=1, split=split, artifact_name=f"test-{name}")
    _run(config, registry)
    meta = json.loads((registry / f"test-{name}" / "v1" / "artifact.json").read_text())["metadata"]
    assert meta["records"] == 42 and meta["bad_records"] == 0
    return (registry / f"test-{name}" / "v1" / "train.parquet").read_bytes()


def test_parquet_and_hub_inputs_give_the_bytes_of_the_same_records_in_jsonl(tmp_path):
    """Arrow gives each message every field of the column's struct (null where absent): read as in JSONL."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = _chat_records()
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    table = pa.table({key: [r.get(key) for r in records] for key in ("messages", "tools")})
    assert table.column("tools").null_count == 41  # and each message has every field, tool_calls among them
    (tmp_path / "parquet").mkdir()
    pq.write_table(table, tmp_path / "parquet" / "chat.parquet")
    (tmp_path / "hub").mkdir()
    (tmp_path / "hub" / "train.jsonl").write_text((tmp_path / "chat.jsonl").read_text())

    jsonl = _packed_bytes(tmp_path, "jsonl", "chat.jsonl")
    assert _packed_bytes(tmp_path, "parquet", "parquet/chat.parquet") == jsonl
    # hf:// goes through `datasets.load_dataset(<name>, streaming=True)`, as for pretraining; a local
    # dataset folder stands in for a hub name (no hub here)
    assert _packed_bytes(tmp_path, "hub", f"hf://{tmp_path / 'hub'}") == jsonl


def test_inputs_sft_cannot_read_are_refused_naming_the_file_and_the_fix(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["hello"]}), tmp_path / "plain.parquet")
    (tmp_path / "notes.txt").write_text("hello")
    for path, message in (
        ("plain.parquet", rf"{tmp_path}/plain.parquet: no column 'messages'; columns: text; SFT data needs"),
        ("notes.txt", rf"dataset chat: {tmp_path}/notes.txt is a plain text file; SFT data prep reads chat"),
    ):
        blend = tmp_path / "blend.json"
        blend.write_text(json.dumps({"datasets": [{"name": "chat", "path": path, "weight": 1.0}]}))
        with pytest.raises(DataError, match=message):
            _run(_config(tmp_path, blend, num_shards=1, workers=1), tmp_path / "registry")
