"""Data test helpers: write a data prep stage config, run the stage's entry point in this process."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TINY_TOKENIZER = REPO / "recipes/nano3/assets/tokenizer-tiny"


def _write_stage_config(path: Path, blend: Path, output_dir: Path | None, **keys) -> Path:
    """A complete stage config (what the launcher writes): small shards, one worker, strict inputs."""
    config = {
        "blend_path": str(blend),
        "tokenizer": {"name_or_path": str(TINY_TOKENIZER)},
        "split": {"valid_fraction": 0.02, "test_fraction": 0.02, "seed": 1234},
        "num_shards": 8,
        "workers": 1,
        "max_bad_records": 0,
        "artifact_name": "test-data",
        "output_dir": None if output_dir is None else str(output_dir),
    }
    config.update(keys)
    path.write_text(yaml.safe_dump(config))
    return path


def _run_stage_in_process(config: Path, registry: Path, stage: str = "data_prep_pretrain") -> str:
    """`python -m nemotron.stages.<stage> --config CONFIG`'s main, here; returns its stdout.

    Errors propagate (the module's `run_stage` would print them and exit 1); the output so far
    is attached to them as a note.
    """
    main = importlib.import_module(f"nemotron.stages.{stage}").main
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


def _versions(registry: Path, name: str) -> list[str]:
    """The published versions of `name` (v1, v2, ...), read from the registry folder."""
    folder = registry / name
    if not folder.is_dir():
        return []
    found = [
        p.name
        for p in folder.iterdir()
        if p.name[:1] == "v" and p.name[1:].isdigit() and (p / "artifact.json").is_file()
    ]
    return sorted(found, key=lambda v: int(v[1:]))


def _metadata(registry: Path, name: str, version: str = "v1") -> dict:
    return json.loads((registry / name / version / "artifact.json").read_text())["metadata"]


@pytest.fixture(scope="session")
def stage_config():
    return _write_stage_config


@pytest.fixture(scope="session")
def prep_stage():
    return _run_stage_in_process


@pytest.fixture(scope="session")
def registry_versions():
    return _versions


@pytest.fixture(scope="session")
def artifact_metadata():
    return _metadata
