"""The pipe's summary line of an artifact: tokens and the headline result of each kind."""

from __future__ import annotations

from pathlib import Path

from nemotron.artifacts import Artifact, ArtifactKind, Lineage
from nemotron.pipeline.summary import artifact_summary


def artifact(kind: ArtifactKind, **metadata) -> Artifact:
    return Artifact("x", 1, kind, Path("/x"), "now", Lineage(stage="t"), metadata=metadata)


def test_each_kind_says_its_tokens_and_result():
    data = artifact(ArtifactKind.PRETRAIN_DATA, splits={"train": {"tokens": 600_000}, "valid": {"tokens": 26_300}})
    assert artifact_summary(data) == ("626k", "2 splits")
    assert artifact_summary(artifact(ArtifactKind.SFT_DATA, tokens=1234, records=56)) == ("1.2k", "56 records")
    rl = artifact(
        ArtifactKind.MODEL_CHECKPOINT,
        step=60,
        loss=-0.0035,
        tokens_seen=206_234,
        evaluation={"accuracy": 0.797, "accuracy_at_start": 0.703},
    )
    assert artifact_summary(rl) == ("206k", "step 60, loss -0.0035, held-out 70% -> 80%")
    sft = artifact(ArtifactKind.MODEL_CHECKPOINT, step=4, evaluation={"exact_match": 0.5})
    assert artifact_summary(sft) == ("-", "step 4, held-out 50%")
    report = artifact(ArtifactKind.EVAL, metrics={"a:v1": {"rl_greedy_accuracy": 0.813}, "b:v2": {"sft_loss": 0.05}})
    assert artifact_summary(report) == ("-", "a rl_greedy_accuracy=0.813; b sft_loss=0.05")
