"""`nemotron artifacts ...` through the real console script: list, show, lineage, import, alias, verify, mirror."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from nemotron.artifacts import ArtifactKind, FileRegistry, Lineage, PretrainDataMeta, TokenCounts, TokenizerInfo

COMMANDS = ("list", "show", "lineage", "import", "alias", "verify", "mirror")
HEAVY_MODULES = ("torch", "megatron", "nemo_run", "wandb", "datasets", "transformers")


@pytest.fixture(autouse=True)
def _hermetic_wandb(monkeypatch):
    for name in ("WANDB_API_KEY", "WANDB_ENTITY", "WANDB_PROJECT", "NEMOTRON_WANDB_PROJECT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def registry(nemotron_home) -> FileRegistry:
    """The registry the CLI uses when env.toml has no [artifacts] root: $NEMOTRON_HOME/artifacts."""
    return FileRegistry(nemotron_home / "artifacts")


def publish(
    registry: FileRegistry,
    name: str,
    *,
    kind=ArtifactKind.PRETRAIN_DATA,
    inputs=(),
    stage="data-prep-pretrain",
    job="job-1",
    metadata=None,
):
    with registry.staging(name) as staging:
        (staging.path / "blend.json").write_text("{}")
        (staging.path / "train.bin").write_bytes(b"\x00" * 64)
        return registry.publish(
            staging,
            kind=kind,
            lineage=Lineage(stage=stage, job_name=job, job_id="42", inputs=tuple(inputs)),
            metadata=metadata
            if metadata is not None
            else PretrainDataMeta(
                dtype="uint16", splits={"train": TokenCounts(1, 32, 64)}, tokenizer=TokenizerInfo("tok")
            ),
            files={"blend": "blend.json"},
        )


def write_blend_dir(path: Path) -> Path:
    """A real prepared-data dir: megatron-core bin/idx for one train dataset plus blend.json."""
    warnings.filterwarnings("ignore", message="Transformer Engine and Apex are not installed")
    import numpy as np
    import torch
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    (path / "train").mkdir(parents=True)
    builder = IndexedDatasetBuilder(str(path / "train" / "web.bin"), dtype=np.uint16)
    for doc in ([1, 2, 3], [4, 5]):
        builder.add_document(torch.tensor(doc), [len(doc)])
    builder.finalize(str(path / "train" / "web.idx"))
    (path / "blend.json").write_text(json.dumps({"train": [1.0, "train/web"], "valid": None, "test": None}))
    return path


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


# -- help ------------------------------------------------------------------------------------


def test_group_and_command_help(run_cli):
    top = ok(run_cli("--help", timeout=60))
    assert "artifacts" in top
    group = ok(run_cli("artifacts", "--help", timeout=60))
    for command in COMMANDS:
        assert re.search(rf"^\W*{command}\s", group, re.M), f"{command} missing from:\n{group}"
    assert "Example: nemotron artifacts show" in group
    for command in COMMANDS:
        text = " ".join(ok(run_cli("artifacts", command, "--help", timeout=60)).split())
        assert f"Example: nemotron artifacts {command}" in text, text


def test_kind_names_match_artifact_kinds():
    from nemotron.cli.artifacts import KINDS

    assert KINDS == tuple(k.value for k in ArtifactKind)


def test_help_and_list_import_no_heavy_libraries(nemotron_home):
    code = f"""
import sys
from nemotron.cli.app import app
for args in (["--help"], ["artifacts", "--help"], *[["artifacts", c, "--help"] for c in {COMMANDS!r}],
             ["artifacts", "list"]):
    try:
        app(args, prog_name="nemotron", standalone_mode=False)
    except SystemExit:
        pass
print("HEAVY=" + ",".join(sorted(m for m in sys.modules if m.split(".")[0] in {set(HEAVY_MODULES)!r})))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr
    assert "no artifacts in" in done.stdout  # `list` really ran
    assert [line for line in done.stdout.splitlines() if line.startswith("HEAVY=")] == ["HEAVY="]


# -- list / show / lineage ---------------------------------------------------------------------


def test_list_empty_then_filled(run_cli, registry, nemotron_home):
    assert ok(run_cli("artifacts", "list")).strip() == f"no artifacts in {nemotron_home / 'artifacts'}"
    publish(registry, "web")
    publish(registry, "web")
    registry.set_alias("web:v1", "golden")
    publish(registry, "base", kind=ArtifactKind.MODEL_CHECKPOINT, metadata={"step": 5}, stage="pretrain", job="pt-1")
    lines = ok(run_cli("artifacts", "list")).splitlines()
    assert lines[0].split() == ["REF", "KIND", "CREATED", "ALIASES", "PRODUCED", "BY"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"base:v1", "web:v1", "web:v2"}
    assert rows["web:v1"][1] == "pretrain-data" and rows["web:v1"][3] == "golden"
    assert rows["web:v2"][3] == "latest" and rows["web:v2"][4:] == ["data-prep-pretrain", "job-1", "(42)"]
    assert rows["base:v1"][1:2] == ["model-checkpoint"] and rows["base:v1"][4:6] == ["pretrain", "pt-1"]
    starts = {line.index(line.split()[1]) for line in lines}  # the KIND column is aligned
    assert len(starts) == 1

    only = ok(run_cli("artifacts", "list", "--kind", "model-checkpoint")).splitlines()
    assert [line.split()[0] for line in only[1:]] == ["base:v1"]
    assert "no sft-data artifacts" in ok(run_cli("artifacts", "list", "--kind", "sft-data"))


def test_unknown_kind_and_missing_ref_are_one_line_errors(run_cli, registry):
    publish(registry, "web")
    done = run_cli("artifacts", "list", "--kind", "weights")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: unknown artifact kind 'weights'; kinds: pretrain-data, sft-data, rl-data, model-checkpoint, eval"
    )
    done = run_cli("artifacts", "show", "books:latest")
    assert done.returncode == 2
    assert "error: artifact books:latest not found" in done.stderr and "artifacts there: web" in done.stderr
    assert "Traceback" not in done.stderr


def test_show_prints_details_manifest_lineage_and_metadata(run_cli, registry):
    artifact = publish(registry, "web", inputs=("/corpus/a.jsonl", "tokenizer:tok"))
    registry.set_alias("web:v1", "golden")
    details = yaml.safe_load(ok(run_cli("artifacts", "show", "web:golden")))
    assert details["ref"] == "web:v1" and details["kind"] == "pretrain-data"
    assert details["path"] == str(artifact.path)
    assert details["aliases"] == ["latest", "golden"]
    assert details["files"] == {"blend": str(artifact.path / "blend.json")}
    assert details["manifest"].startswith("2 files, 66 B (2 with sha256")
    assert details["lineage"]["stage"] == "data-prep-pretrain" and details["lineage"]["job_id"] == "42"
    assert details["lineage"]["inputs"] == ["/corpus/a.jsonl", "tokenizer:tok"]
    assert details["metadata"]["splits"]["train"] == {"documents": 1, "tokens": 32, "bytes": 64}
    assert details["metadata"]["tokenizer"]["name_or_path"] == "tok"
    assert "metadata_check" not in details


def test_show_reports_metadata_that_does_not_fit_its_kind(run_cli, registry):
    publish(registry, "ckpt", kind=ArtifactKind.MODEL_CHECKPOINT, metadata={"loss": 1.0})
    details = yaml.safe_load(ok(run_cli("artifacts", "show", "ckpt")))
    assert details["metadata"] == {"loss": 1.0}
    assert "missing key 'step'" in details["metadata_check"]


def test_lineage_prints_a_tree_of_artifact_inputs(run_cli, registry):
    publish(registry, "raw", inputs=("/corpus/a.jsonl",), stage="ingest", job="ingest-1")
    publish(registry, "data", inputs=("raw:v1", "tokenizer:tok"), job="prep-1")
    publish(
        registry,
        "ckpt",
        kind=ArtifactKind.MODEL_CHECKPOINT,
        metadata={"step": 1},
        inputs=("data:latest", "/configs/model.yaml", "gone:v1"),
        stage="pretrain",
        job="pt-1",
    )
    publish(registry, "gone")  # exists, but v1 is what is asked for: fine
    lines = ok(run_cli("artifacts", "lineage", "ckpt")).splitlines()
    assert lines[0].startswith("ckpt:v1  model-checkpoint  from pretrain pt-1 (42), ")
    assert lines[1].startswith("├── data:v1  pretrain-data  from data-prep-pretrain prep-1 (42), ")
    assert lines[2].startswith("│   ├── raw:v1  pretrain-data  from ingest ingest-1 (42), ")
    assert lines[3] == "│   │   └── /corpus/a.jsonl"
    assert lines[4] == "│   └── tokenizer:tok"
    assert lines[5] == "├── /configs/model.yaml"
    assert lines[6].startswith("└── gone:v1  pretrain-data")
    assert len(lines) == 7


def test_lineage_marks_inputs_missing_from_the_registry(run_cli, registry):
    publish(registry, "data")
    publish(registry, "ckpt", kind=ArtifactKind.MODEL_CHECKPOINT, metadata={"step": 1}, inputs=("data:v9",))
    lines = ok(run_cli("artifacts", "lineage", "ckpt:v1")).splitlines()
    assert lines[1] == "└── data:v9  (missing from the registry)"


# -- import / alias / verify -------------------------------------------------------------------


def test_import_alias_and_verify_a_blend_dir(run_cli, registry, tmp_path):
    source = write_blend_dir(tmp_path / "lake" / "blend-7")
    out = ok(
        run_cli(
            "artifacts",
            "import",
            "pretrain-data",
            str(source),
            "--name",
            "lake-data",
            "--meta",
            "tokenizer.name_or_path=gpt2",
            "--meta",
            "tokenizer.vocab_size=50257",
            "--alias",
            "golden",
            timeout=120,
        )
    )
    assert f"imported {source} as lake-data:v1 (pretrain-data)" in out
    assert "manifest: 3 files" in out and "3 referenced in place" in out
    artifact = registry.resolve("lake-data:golden")
    assert artifact.file("blend") == source / "blend.json"
    assert [p.name for p in artifact.path.iterdir()] == ["artifact.json"]
    meta = artifact.typed_metadata()
    assert meta.tokenizer.vocab_size == 50257 and meta.splits["train"].documents == 2

    assert ok(run_cli("artifacts", "alias", "lake-data:v1", "prod")).strip() == "lake-data:prod -> lake-data:v1"
    assert registry.resolve("lake-data:prod").version == 1

    assert ok(run_cli("artifacts", "verify", "lake-data:prod")).strip() == "ok: lake-data:v1: 3 files verified"
    (source / "train" / "web.idx").unlink()
    with open(source / "train" / "web.bin", "r+b") as handle:
        handle.truncate(4)
    done = run_cli("artifacts", "verify", "lake-data")
    assert done.returncode == 1
    assert f"  missing: {source / 'train' / 'web.idx'}" in done.stdout.splitlines()
    assert f"  size changed: {source / 'train' / 'web.bin'} (recorded 10 bytes, now 4)" in done.stdout.splitlines()
    assert done.stderr.strip() == "error: lake-data:v1: 2 problem(s) in 3 files (listed above)"


def test_import_checkpoint_into_env_toml_registry_root(run_cli, nemotron_home, tmp_path):
    root = tmp_path / "team-artifacts"
    (tmp_path / "env.toml").write_text(f'[artifacts]\nroot = "{root}"\n')
    ckpt = tmp_path / "ckpts" / "run3"
    (ckpt / "iter_0000040").mkdir(parents=True)
    (ckpt / "iter_0000040" / "metadata.json").write_text('{"sharded_backend": "torch_dist"}')
    (ckpt / "latest_checkpointed_iteration.txt").write_text("40")
    ok(
        run_cli(
            "artifacts",
            "import",
            "model-checkpoint",
            str(ckpt),
            "-n",
            "base",
            "-m",
            "tokens_seen=8192",
            "-m",
            "parallelism={tensor: 2}",
        )
    )
    artifact = FileRegistry(root).resolve("base:latest")
    assert artifact.typed_metadata().step == 40 and artifact.typed_metadata().tokens_seen == 8192
    assert artifact.typed_metadata().parallelism == {"tensor": 2}
    assert not (nemotron_home / "artifacts").exists()
    assert ok(run_cli("artifacts", "list")).splitlines()[1].split()[0] == "base:v1"


def test_import_errors_are_one_line(run_cli, tmp_path):
    (tmp_path / "empty").mkdir()
    done = run_cli("artifacts", "import", "pretrain-data", str(tmp_path / "empty"), "--name", "x")
    assert done.returncode == 2 and "has no blend.json" in done.stderr and "Traceback" not in done.stderr
    done = run_cli("artifacts", "import", "model-checkpoint", str(tmp_path / "empty"), "--name", "x", "--meta", "step")
    assert done.returncode == 2 and "--meta 'step': expected KEY=VALUE" in done.stderr


def test_alias_rejects_reserved_names(run_cli, registry):
    publish(registry, "web")
    done = run_cli("artifacts", "alias", "web:v1", "latest")
    assert done.returncode == 2 and "reserved" in done.stderr


# -- W&B -------------------------------------------------------------------------------------


def test_import_mirrors_to_wandb_offline_when_env_toml_has_wandb(run_cli, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    (tmp_path / "wandb-dir").mkdir()
    (tmp_path / "env.toml").write_text('[wandb]\nproject = "nano3-test"\n')
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "latest_checkpointed_iteration.txt").write_text("7")
    out = ok(run_cli("artifacts", "import", "model-checkpoint", str(ckpt), "--name", "c", timeout=180))
    assert "mirrored to W&B nano3-test as c (aliases: latest, nemotron-v1)" in out
    assert len(list((tmp_path / "wandb-dir" / "wandb").glob("offline-run-*/run-*.wandb"))) == 1
    again = ok(run_cli("artifacts", "mirror", "c:latest", timeout=180))
    assert again.strip() == "mirrored c:v1 to W&B nano3-test as c (aliases: latest, nemotron-v1)"
    assert len(list((tmp_path / "wandb-dir" / "wandb").glob("offline-run-*/run-*.wandb"))) == 2


def test_mirror_without_wandb_section_says_what_to_add(run_cli, registry):
    publish(registry, "web")
    done = run_cli("artifacts", "mirror", "web")
    assert done.returncode == 2 and "has no [wandb] table" in done.stderr
