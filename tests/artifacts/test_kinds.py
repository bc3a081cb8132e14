"""Typed metadata per kind: round trips, preserved unknown keys, errors naming artifact and key."""

from __future__ import annotations

import json

import pytest

from nemotron.artifacts import (
    ArtifactError,
    ArtifactKind,
    EvalMeta,
    Lineage,
    ModelCheckpointMeta,
    PretrainDataMeta,
    RecordCounts,
    RLDataMeta,
    SftDataMeta,
    TokenCounts,
    TokenizerInfo,
    parse_metadata,
)
from nemotron.artifacts.kinds import METADATA_TYPES

TOKENIZER = TokenizerInfo("gpt2", vocab_size=50257, eod_id=50256, backend="huggingface")

EXAMPLES = {
    ArtifactKind.PRETRAIN_DATA: PretrainDataMeta(
        dtype="uint16",
        splits={"train": TokenCounts(10, 1000, 2000), "valid": TokenCounts(1, 90, 180)},
        tokenizer=TOKENIZER,
        datasets={"web": {"train": TokenCounts(10, 1000, 2000)}},
        settings={"split": {"seed": 1}},
        bad_records=2,
        blend_source="/data/blend.json",
    ),
    ArtifactKind.SFT_DATA: SftDataMeta(
        format="megatron-packed",
        records=5,
        tokens=500,
        tokenizer=TOKENIZER,
        splits={"train": RecordCounts(5, 500)},
        seq_length=4096,
        chat_template="nano3",
    ),
    ArtifactKind.RL_DATA: RLDataMeta(format="jsonl-prompts", records=7, splits={"train": RecordCounts(7)}),
    ArtifactKind.MODEL_CHECKPOINT: ModelCheckpointMeta(
        step=1000,
        tokens_seen=4_096_000,
        architecture={"num_layers": 2, "hidden_size": 64},
        parallelism={"tensor": 1, "pipeline": 1},
        loss=2.5,
    ),
    ArtifactKind.EVAL: EvalMeta(
        models=["base:v1", "sft:v1"],
        data={"pretrain": "data:v1"},
        metrics={"base:v1": {"pretrain_loss": 5.1}, "sft:v1": {"pretrain_loss": 5.3}},
        settings={"perplexity": {"batches": 8}},
    ),
}


def publish(registry, kind, metadata, name="thing"):
    with registry.staging(name) as staging:
        (staging.path / "f").write_text("x")
        return registry.publish(staging, kind=kind, lineage=Lineage(stage="t"), metadata=metadata, files={"f": "f"})


def test_every_kind_has_a_metadata_type():
    assert set(METADATA_TYPES) == set(ArtifactKind)


@pytest.mark.parametrize("kind", list(ArtifactKind))
def test_round_trip_through_dict_and_json(kind):
    meta = EXAMPLES[kind]
    data = json.loads(json.dumps(meta.to_dict()))
    assert type(meta).from_dict(data) == meta
    assert parse_metadata(kind, data, where="x") == meta


@pytest.mark.parametrize("kind", list(ArtifactKind))
def test_publish_typed_metadata_and_read_it_back(registry, kind):
    artifact = publish(registry, kind, EXAMPLES[kind])
    assert artifact.typed_metadata() == EXAMPLES[kind]
    assert artifact.metadata == EXAMPLES[kind].to_dict()  # the raw dict stays available
    reloaded = registry.resolve(artifact.ref)
    assert reloaded.typed_metadata() == EXAMPLES[kind]


def test_pretrain_dict_layout():
    data = EXAMPLES[ArtifactKind.PRETRAIN_DATA].to_dict()
    assert data["tokenizer"] == {"name_or_path": "gpt2", "vocab_size": 50257, "eod_id": 50256, "backend": "huggingface"}
    assert data["splits"]["train"] == {"documents": 10, "tokens": 1000, "bytes": 2000}
    assert data["datasets"]["web"]["train"]["tokens"] == 1000
    assert data["bad_records"] == 2


def test_unknown_keys_are_preserved_at_every_level(registry):
    raw = {
        "dtype": "int32",
        "splits": {"train": {"documents": 1, "tokens": 2, "bytes": 8, "shards": 4}},
        "tokenizer": {"name_or_path": "t", "revision": "abc"},
        "empty_documents_skipped": 3,
    }
    artifact = publish(registry, ArtifactKind.PRETRAIN_DATA, raw)
    meta = artifact.typed_metadata()
    assert meta.extra == {"empty_documents_skipped": 3}
    assert meta.tokenizer.extra == {"revision": "abc"}
    assert meta.splits["train"].extra == {"shards": 4}
    assert meta.splits["train"].tokens == 2
    round_trip = meta.to_dict()
    assert round_trip["empty_documents_skipped"] == 3
    assert round_trip["tokenizer"]["revision"] == "abc"
    assert round_trip["splits"]["train"]["shards"] == 4


def test_errors_name_the_artifact_and_every_bad_key(registry):
    artifact = publish(registry, ArtifactKind.MODEL_CHECKPOINT, {"loss": "low", "architecture": 3, "tokens_seen": True})
    with pytest.raises(ArtifactError) as err:
        artifact.typed_metadata()
    message = str(err.value)
    assert "thing:v1" in message and "model-checkpoint" in message and "ModelCheckpointMeta" in message
    assert "missing key 'step'" in message
    assert "key 'loss' must be float" in message
    assert "key 'architecture' must be a mapping" in message
    assert "key 'tokens_seen' must be int" in message  # a bool is not an int


def test_nested_errors_use_dotted_keys():
    with pytest.raises(ArtifactError, match=r"key 'splits\.train\.tokens' must be int"):
        PretrainDataMeta.from_dict({"dtype": "uint16", "splits": {"train": {"tokens": "many"}}})


def test_list_items_are_checked_one_by_one():
    with pytest.raises(ArtifactError, match=r"key 'models\[1\]' must be str, got 3"):
        EvalMeta.from_dict({"models": ["a:v1", 3]})
    with pytest.raises(ArtifactError, match="key 'models' must be a list"):
        EvalMeta.from_dict({"models": "a:v1"})


def test_ints_are_accepted_for_floats():
    assert ModelCheckpointMeta.from_dict({"step": 1, "loss": 3}).loss == 3.0


def test_publish_rejects_metadata_of_another_kind(registry):
    with pytest.raises(ArtifactError, match="SftDataMeta, but kind pretrain-data takes PretrainDataMeta"):
        publish(registry, ArtifactKind.PRETRAIN_DATA, EXAMPLES[ArtifactKind.SFT_DATA])
    assert registry.names() == []
