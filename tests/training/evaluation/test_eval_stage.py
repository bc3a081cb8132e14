"""`nemotron nano3 eval` end to end: launch checks, the job's report and table, the eval artifact, no work twice."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import yaml
from eval_artifacts import (
    EOD,
    MODEL,
    VOCAB,
    packed_row,
    publish_model,
    publish_pretrain_data,
    publish_rl_data,
    publish_sft_data,
    random_model,
)

from nemotron.artifacts import ArtifactKind, FileRegistry
from nemotron.training.evaluation.config import PerplexitySection, SftLossSection
from nemotron.training.evaluation.losses import mean_token_loss, pretrain_batches, sft_batches

pytestmark = pytest.mark.integration
SPLITS = ("train", "test")

CONFIG = {
    "run": {
        "models": ["base:latest", "tuned:latest"],
        "data": {"pretrain": "pre:latest", "sft": "chat:latest", "rl": "prompts:latest"},
    },
    "run_name": "eval-test",
    "perplexity": {"batches": 2, "micro_batch_size": 2, "seq_length": 32},
    "sft_loss": {"micro_batch_size": 2},
    "rl": {"count": 4, "samples_per_prompt": 2, "max_new_tokens": 6, "max_batch_size": 8},
    "samples": 2,
    "lm_eval": {"tasks": [], "include_path": None},
}


@pytest.fixture
def home(nemotron_home, dist, tmp_path):
    """Two random models and tiny pretrain/sft/rl data in the test's NEMOTRON_HOME; the config file's path."""
    registry = FileRegistry(nemotron_home / "artifacts")
    rng = np.random.default_rng(0)
    documents = {split: [[*rng.integers(100, VOCAB, 40).tolist(), EOD] for _ in range(8)] for split in SPLITS}
    publish_pretrain_data(registry, "pre", documents)
    conversations = [(rng.integers(100, VOCAB, 14).tolist(), [0] * 8 + [1] * 6) for _ in range(5)]
    publish_sft_data(registry, "chat", [packed_row(*conversations[:2]), packed_row(*conversations[2:])])
    records = [
        {"prompt_ids": rng.integers(100, VOCAB, 6 + i).tolist(), "expected_answer": str(i), "verifier": "exact_match"}
        for i in range(5)
    ]
    publish_rl_data(registry, "prompts", records)
    for name, seed in (("base", 0), ("tuned", 1)):
        publish_model(registry, name, random_model(seed), tmp_path / "checkpoints")
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def test_eval_measures_every_model_publishes_the_report_and_does_no_work_twice(home, run_cli, nemotron_home):
    done = run_cli("nano3", "eval", "-c", str(home), timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = [line for line in done.stdout.splitlines() if line.startswith(("metric ", "pretrain_", "sft_", "rl_"))]
    assert [cell.strip() for cell in table[0].split(" | ")] == ["metric", "base:v1", "tuned:v1"]
    assert [row.split(" |")[0].strip() for row in table[1:]] == [
        "pretrain_loss",
        "pretrain_perplexity",
        "pretrain_tokens",
        "sft_loss",
        "sft_tokens",
        "rl_prompts",
        "rl_greedy_accuracy",
        "rl_sampled_reward",
        "rl_pass@2",
    ]
    assert "published eval-test:v1" in done.stdout

    report = json.loads((nemotron_home / "runs/eval-test/eval_report.json").read_text())
    assert report["data"] == {"pretrain": "pre:v1", "sft": "chat:v1", "rl": "prompts:v1"}
    assert report["settings"]["perplexity"]["seq_length"] == 32 and report["settings"]["rl"]["samples_per_prompt"] == 2
    base, tuned = report["models"]
    assert (base["model"], tuned["model"]) == ("base:v1", "tuned:v1") and len(base["samples"]) == 2
    assert base["metrics"]["pretrain_loss"] != tuned["metrics"]["pretrain_loss"]
    assert base["metrics"]["rl_prompts"] == 4 and base["metrics"]["sft_tokens"] == 5 * 6 - 0

    # the job measured what the measures compute here, in this process, on the same model and data
    registry = FileRegistry(nemotron_home / "artifacts")
    model = random_model(0)
    section = PerplexitySection(batches=2, micro_batch_size=2, seq_length=32)
    batches = pretrain_batches(section, "pre:v1", 32, 1234, nemotron_home / "cache-here", registry)
    assert base["metrics"]["pretrain_loss"] == pytest.approx(mean_token_loss(model, batches, torch.device("cpu")).loss)
    chat = sft_batches(SftLossSection(micro_batch_size=2), registry.resolve("chat:v1").file("test"), 64)
    assert base["metrics"]["sft_loss"] == pytest.approx(mean_token_loss(model, chat, torch.device("cpu")).loss)

    artifact = registry.resolve("eval-test:latest")
    assert artifact.kind == ArtifactKind.EVAL and artifact.metadata["models"] == ["base:v1", "tuned:v1"]
    assert list(artifact.lineage.inputs) == ["base:v1", "tuned:v1", "pre:v1", "chat:v1", "prompts:v1"]
    assert json.loads(artifact.file("report").read_text()) == report

    again = run_cli("nano3", "eval", "-c", str(home), timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "nothing changed: eval-test:v1 already holds this evaluation" in again.stdout
    assert "metric " in again.stdout and [a.ref for a in registry.versions("eval-test")] == ["eval-test:v1"]


def test_launch_refuses_inputs_the_job_could_not_measure(home, run_cli, nemotron_home, tmp_path):
    registry = FileRegistry(nemotron_home / "artifacts")
    small = dataclasses.replace(MODEL, vocab_size=4096)
    publish_model(registry, "small", random_model(2, small), tmp_path / "small", small)

    def refused(*overrides: str) -> str:
        done = run_cli("nano3", "eval", "-c", str(home), "--dry-run", *overrides)
        assert done.returncode == 2, done.stdout[-2000:]
        return done.stderr

    assert "config key 'run.data.sft': prompts:latest (prompts:v1) is a rl-data artifact" in refused(
        "run.data.sft=prompts:latest"
    )
    assert "config key 'run.models[1]': chat:latest (chat:v1) is a sft-data artifact" in refused(
        "run.models=[base:latest,chat:latest]"
    )
    assert "was tokenized with a vocabulary of 8192 but the model (small:v1) has 4096" in refused(
        "run.models=[base:latest,small:latest]"
    )
    assert "rl.split='valid': prompts:v1 has no valid split; choose one it has (test)" in refused("++rl.split=valid")
    assert "perplexity.split='valid': pre:v1 has no tokens in its valid split; choose one it has (train, test)" in (
        refused("++perplexity.split=valid")
    )
    assert "set rl.max_new_tokens <= 54" in refused("rl.max_new_tokens=60")
    too_long = "perplexity.seq_length=128 is longer than the sequence of base:v1 (64)"
    assert too_long in refused("perplexity.seq_length=128")
    assert "lm_eval.include_path='/no/such/folder' is not a folder" in refused(
        "lm_eval.tasks=[mine]", "lm_eval.include_path=/no/such/folder"
    )
    dry = run_cli("nano3", "eval", "-c", str(home), "--dry-run")
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "run.models[1]: tuned:latest -> tuned:v1 (model-checkpoint)" in dry.stdout
