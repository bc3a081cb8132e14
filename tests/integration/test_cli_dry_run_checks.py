"""`--dry-run` rejects what the job would reject (issue 9, point 7): exit 2, one `error:` line naming the key or
file and the fix, the job's own message, nothing written or submitted. Checks that need a cluster's filesystem
are listed in the dry run instead."""

from __future__ import annotations

from pathlib import Path

import pytest
from launch_refusal import rejected

pytestmark = pytest.mark.integration

PREP = ("nano3", "data", "prep", "pretrain")
PRETRAIN = ("nano3", "pretrain")


def test_data_prep_dry_run_checks_the_job_checks(run_cli, nemotron_home, tmp_path):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"datasets": [')
    no_datasets = tmp_path / "empty.json"
    no_datasets.write_text('{"datasets": []}')
    cases = {
        "batch_size=-5": "key 'batch_size' must be >= 1, got -5 (set by the override 'batch_size=-5')",
        "num_shards=0": "key 'num_shards' must be >= 1, got 0 (set by the override 'num_shards=0')",
        "split.valid_fraction=1.5": "key 'split.valid_fraction': split fractions must be in [0, 1) with valid + "
        "test < 1; got valid=1.5, test=0.02 (set by the override 'split.valid_fraction=1.5')",
        f"blend_path={tmp_path}/missing.json": f"blend file {tmp_path}/missing.json does not exist; check the "
        "config key 'blend_path'",
        f"blend_path={bad_json}": f"blend file {bad_json} is not valid JSON: ",
        f"blend_path={no_datasets}": f"blend file {no_datasets}: expected an object with a non-empty list 'datasets'",
        f"tokenizer.name_or_path={tmp_path}/no-tokenizer": f"cannot load tokenizer '{tmp_path}/no-tokenizer' "
        f"(config key 'tokenizer.name_or_path'): no such folder {tmp_path}/no-tokenizer. Give a local folder",
    }
    for override, message in cases.items():
        error = rejected(run_cli(*PREP, "-c", "tiny", "--dry-run", override, timeout=300))
        assert message in error, (override, error)
    assert not (nemotron_home / "artifacts").exists() and not (nemotron_home / "jobs").exists()


def publish_model_artifact(home: Path, name: str) -> None:
    from nemotron.artifacts import ArtifactKind, FileRegistry, Lineage

    registry = FileRegistry(home / "artifacts")
    with registry.staging(name) as staging:
        (staging.path / "ckpt").mkdir()
        registry.publish(
            staging,
            kind=ArtifactKind.MODEL_CHECKPOINT,
            lineage=Lineage(stage="test"),
            metadata={"step": 1},
            files={"checkpoint": "ckpt"},
        )


def test_pretrain_dry_run_checks_data_kind_and_checkpoint_dir(run_cli, nemotron_home, tmp_path):
    publish_model_artifact(nemotron_home, "some-model")
    # checked before the config's ${art:data,metadata.tokenizer.vocab_size} reads the artifact's metadata
    error = rejected(run_cli(*PRETRAIN, "-c", "tiny", "--dry-run", "run.data=some-model:latest", timeout=300))
    assert error == (  # the job's message (training.datasets.gpt.resolve_source), at the key
        "error: config key 'run.data': some-model:latest (some-model:v1) is a model-checkpoint artifact, but this "
        "stage reads pretrain-data (made by `nemotron nano3 data prep pretrain`); name one of that kind "
        "(nemotron artifacts list)"
    )
    prep = run_cli(*PREP, "-c", "tiny", timeout=300)  # the tiny data artifact pretrain reads
    assert prep.returncode == 0, prep.stdout + prep.stderr
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    error = rejected(run_cli(*PRETRAIN, "-c", "tiny", "--dry-run", f"checkpoint.dir={a_file}/ckpt", timeout=300))
    assert error == (
        f"error: config key 'checkpoint.dir': cannot save checkpoints in {a_file}/ckpt: {a_file} is not a folder. "
        "Choose a folder you can write, or null for the run's folder."
    )
    fine = run_cli(*PRETRAIN, "-c", "tiny", "--dry-run", f"checkpoint.dir={tmp_path}/new/ckpt", timeout=300)
    assert fine.returncode == 0, fine.stdout + fine.stderr
    assert "not checked here" not in fine.stdout and not (tmp_path / "new").exists()


def test_slurm_dry_run_notes_what_it_cannot_check(run_cli, nemotron_home, tmp_path):
    (tmp_path / "env.toml").write_text('[cluster]\nexecutor = "slurm"\naccount = "a"\n')
    prep = run_cli(*PREP, "-c", "tiny", timeout=300)
    assert prep.returncode == 0, prep.stdout + prep.stderr
    done = run_cli(*PRETRAIN, "-c", "tiny", "--dry-run", "--run", "cluster", "checkpoint.dir=/cluster/ckpt")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "--- not checked here ---\n- checkpoint.dir /cluster/ckpt is on the cluster's filesystem" in done.stdout
    done = run_cli(*PREP, "-c", "tiny", "--dry-run", "--run", "cluster", "blend_path=/cluster/blend.json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "- blend_path /cluster/blend.json is not visible here; the job checks it on the cluster" in done.stdout


PREP_SFT = ("nano3", "data", "prep", "sft")


def test_sft_data_prep_dry_run_checks_the_job_checks(run_cli, nemotron_home, tmp_path):
    """Each bad value or input is refused at launch in one line naming the key (or file) and the fix."""
    bad_jinja = tmp_path / "bad.jinja"
    bad_jinja.write_text("{% for message in messages %}{{ message.content }}")  # no endfor
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    cases = {
        "pack_size=0": "key 'pack_size' must be >= 1, got 0. It is the tokens per packed row (the training "
        "sequence length) (set by the override 'pack_size=0').",
        "packing=best_fit": "key 'packing' is 'best_fit'; use one of: first_fit_shuffle, first_fit_decreasing, "
        "concatenative (set by the override 'packing=best_fit')",
        "overflow=wrap": "key 'overflow' is 'wrap'; use one of: truncate, drop (set by the override 'overflow=wrap')",
        "split.test_fraction=1": "key 'split.test_fraction': split fractions must be in [0, 1) with valid + test < 1",
        "num_shards=0": "key 'num_shards' must be >= 1, got 0 (set by the override 'num_shards=0')",
        "max_bad_records=-1": "key 'max_bad_records' must be >= 0, got -1. It counts malformed records to skip",
        "workers=0": "key 'workers' must be >= 1, got 0. Use null for one worker per core (set by the override",
        "artifact_name=Bad/Name": "key 'artifact_name' is 'Bad/Name', which ",
        f"blend_path={tmp_path}/missing.json": f"blend file {tmp_path}/missing.json does not exist; check the "
        "config key 'blend_path'",
        f"tokenizer.name_or_path={tmp_path}/no-tokenizer": f"cannot load tokenizer '{tmp_path}/no-tokenizer' "
        f"(config key 'tokenizer.name_or_path'): no such folder {tmp_path}/no-tokenizer. Give a local folder",
        f"chat_template={tmp_path}/missing.jinja": f"chat_template '{tmp_path}/missing.jinja': no such file "
        f"({tmp_path}/missing.jinja). Set chat_template to 'nano3' (the shipped template), 'tokenizer'",
        f"chat_template={bad_jinja}": f"chat_template '{bad_jinja}' is not valid Jinja: line 1: ",
        "chat_template=tokenizer": "chat_template 'tokenizer': tokenizer '",  # the tiny tokenizer has none
        f"output_dir={a_file}/data": f"config key 'output_dir': cannot write data prep shards in {a_file}/data: "
        f"{a_file} is not a folder. Choose a folder you can write",
    }
    for override, message in cases.items():
        error = rejected(run_cli(*PREP_SFT, "-c", "tiny", "--dry-run", override, timeout=300))
        assert message in error, (override, error)
    fine = run_cli(*PREP_SFT, "-c", "tiny", "--dry-run", timeout=300)
    assert fine.returncode == 0, fine.stdout + fine.stderr
    assert not (nemotron_home / "artifacts").exists() and not (nemotron_home / "jobs").exists()


def test_sft_slurm_dry_run_notes_what_it_cannot_check(run_cli, nemotron_home, tmp_path):
    (tmp_path / "env.toml").write_text('[cluster]\nexecutor = "slurm"\naccount = "a"\n')
    done = run_cli(
        *PREP_SFT, "-c", "tiny", "--dry-run", "--run", "cluster", "chat_template=/cluster/chat.jinja", timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "- chat_template /cluster/chat.jinja is not visible here; the job reads it on the cluster" in done.stdout
