"""Messages about a split the data cannot provide name the key the user sets (fast: no megatron build)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from nemotron.training.datasets.gpt import DataSource, TrainingDataConfig, TrainingDataError, requested_blends


def blend_without_valid(tmp_path: Path) -> Path:
    for suffix in (".bin", ".idx"):
        shard = tmp_path / "train" / "web" / f"shard_00000{suffix}"
        shard.parent.mkdir(parents=True, exist_ok=True)
        shard.write_bytes(b"")
    blend = tmp_path / "blend.json"
    blend.write_text(json.dumps({"train": [1.0, "train/web/shard_00000"], "valid": None, "test": None}))
    return blend


def data_config(tmp_path: Path, **changes) -> TrainingDataConfig:
    values: dict = dict(
        seq_length=8,
        seed=1,
        global_batch_size=2,
        micro_batch_size=1,
        train_iters=4,
        valid_iters=3,
        cache_dir=str(tmp_path / "cache"),
        blend_path=str(tmp_path / "blend.json"),
    )
    values.update(changes)
    return TrainingDataConfig(**values)


def test_an_empty_split_names_the_key_that_asked_for_it(tmp_path):
    source = DataSource(blend_path=blend_without_valid(tmp_path))
    cfg = data_config(tmp_path, iters_keys={"train": "train.train_iters", "valid": "train.eval_iters"})
    with pytest.raises(TrainingDataError) as caught:
        requested_blends(cfg, source)
    message = str(caught.value)
    assert "train.eval_iters is 3 but split 'valid' of blend" in message
    assert "valid_iters" not in message and "valid_samples" not in message
    assert "split.valid_fraction" in message  # the data prep key that fills the split
    assert "\n" not in message


def test_without_labels_the_library_keys_are_named(tmp_path):
    source = DataSource(blend_path=blend_without_valid(tmp_path))
    with pytest.raises(TrainingDataError, match=r"valid_iters is 3 but split 'valid' .*set valid_iters: 0"):
        requested_blends(data_config(tmp_path), source)


def test_pretrain_labels_each_split_with_its_own_key(tmp_path):
    from nemotron.training.pretrain.runner import _data_config

    train = SimpleNamespace(seed=1, global_batch_size=2, micro_batch_size=1, eval_iters=3, num_workers=0)
    cfg = SimpleNamespace(train=train, model=SimpleNamespace(seq_length=8), run=SimpleNamespace(data="d:v1"))
    request = SimpleNamespace(plan=SimpleNamespace(budget=SimpleNamespace(train_iters=4)), run_dir=tmp_path)
    data = _data_config(cfg, request)  # type: ignore[arg-type]
    assert data.iters_key("valid") == "train.eval_iters"
    assert data.iters_key("train") == "train.train_iters"
