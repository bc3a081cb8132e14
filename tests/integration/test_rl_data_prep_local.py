"""The real `nemotron nano3 data prep rl` CLI on this machine: the tiny prompts published as `rl-data`, a rerun
that reuses them, and launch checks that refuse a missing blend or an unknown default verifier."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from launch_refusal import rejected

pytestmark = pytest.mark.integration

PREP_RL = ("nano3", "data", "prep", "rl")
ARTIFACT = "nano3-rl-data-tiny"
RL_TINY = Path(__file__).resolve().parents[2] / "recipes" / "nano3" / "assets" / "rl-tiny"


def test_tiny_rl_prompts_are_published_split_by_verifier_and_reused(run_cli, nemotron_home):
    done = run_cli(*PREP_RL, "-c", "tiny", timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"published {ARTIFACT}:v1" in done.stdout
    version = nemotron_home / "artifacts" / ARTIFACT / "v1"
    artifact = json.loads((version / "artifact.json").read_text())
    assert artifact["kind"] == "rl-data" and artifact["lineage"]["stage"] == "data-prep-rl"
    assert str(RL_TINY / "train.jsonl") in artifact["lineage"]["inputs"]
    meta = artifact["metadata"]
    assert artifact["files"] == {split: f"{split}.jsonl" for split in ("train", "valid", "test")}
    assert meta["records"] == 3600 and meta["bad_records"] == 0  # rl-tiny's train.jsonl, split here
    assert meta["verifiers"] == {"exact_match": 3600} and meta["settings"]["max_prompt_tokens"] == 64
    assert meta["tokenizer"]["name_or_path"].endswith("tokenizer-tiny") and meta["chat_template"]
    assert 0 < meta["prompt_tokens"]["mean"] <= meta["prompt_tokens"]["max"] <= 64
    records = 0
    for split in ("train", "valid", "test"):
        lines = [json.loads(line) for line in (version / f"{split}.jsonl").read_text().splitlines()]
        counts = meta["splits"][split]
        assert counts["records"] == len(lines) == counts["verifiers"]["exact_match"] > 0, split
        assert counts["tokens"] == sum(len(line["prompt_ids"]) for line in lines)
        first = lines[0]
        assert first["id"].startswith("rl-tiny/train.jsonl:") and first["verifier"] == "exact_match"
        assert first["prompt_text"].endswith("<|im_start|>assistant\n") and first["expected_answer"].isdigit()
        records += len(lines)
    assert records == 3600 and meta["splits"]["train"]["records"] > 0.8 * records  # valid, test: 5% each

    again = run_cli(*PREP_RL, "-c", "tiny", timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "4 shards planned, 4 of 4 already done" in again.stdout
    assert f"nothing changed: {ARTIFACT}:v1 already holds this data" in again.stdout
    assert sorted(p.name for p in version.parent.glob("v*")) == ["v1"]


def test_dry_run_refuses_a_missing_blend_and_an_unknown_default_verifier(run_cli, nemotron_home, tmp_path):
    cases = {
        f"blend_path={tmp_path}/missing.json": f"blend file {tmp_path}/missing.json does not exist; check the "
        "config key 'blend_path'",
        "default_verifier=exact": "config key 'default_verifier': unknown verifier 'exact'",
        "default_verifier=no_such_module:score": "config key 'default_verifier': verifier 'no_such_module:score': ",
        "max_prompt_tokens=0": "key 'max_prompt_tokens' must be >= 1, got 0",
    }
    for override, message in cases.items():
        error = rejected(run_cli(*PREP_RL, "-c", "tiny", "--dry-run", override, timeout=300))
        assert message in error, (override, error)
    fine = run_cli(*PREP_RL, "-c", "tiny", "--dry-run", timeout=300)
    assert fine.returncode == 0, fine.stdout + fine.stderr
    assert " -m nemotron.stages.data_prep_rl --config " in fine.stdout
    assert not (nemotron_home / "artifacts").exists() and not (nemotron_home / "jobs").exists()

    (tmp_path / "env.toml").write_text('[cluster]\nexecutor = "slurm"\naccount = "a"\n')
    cluster = run_cli(
        *PREP_RL, "-c", "tiny", "--dry-run", "--run", "cluster", "default_verifier=mine:score", timeout=300
    )
    assert cluster.returncode == 0, cluster.stdout + cluster.stderr
    assert "- default_verifier does not resolve here (verifier 'mine:score': " in cluster.stdout  # it may resolve there

    usage = run_cli(*PREP_RL, "--help", timeout=60)
    assert usage.returncode == 0, usage.stderr
    assert "nemotron nano3 data prep rl -c tiny" in usage.stdout
    assert "Render a blend of prompt records" in run_cli("nano3", "data", "prep", "--help", timeout=60).stdout
