"""Import a Hugging Face Llama/Qwen3 folder as a `model-checkpoint` artifact (lineage: the folder)."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path

from nemotron.artifacts import Artifact, FileRegistry
from nemotron.artifacts.mirrors import Mirror
from nemotron.stages.runtime import JobContext

STAGE = "model-import"
TOKENIZER_ROLE = "tokenizer"


def import_hf_model(folder: Path, name: str, registry: FileRegistry, mirrors: list[Mirror] | None = None) -> Artifact:
    """Convert `folder` to a megatron checkpoint; publish it with its tokenizer files as the next version of `name`."""
    from nemotron.artifacts.types import validate_name
    from nemotron.stages.model_publish import publish_model_checkpoint
    from nemotron.training.export.hf_import import CONFIG_FILE, import_checkpoint, read_hf_config, tokenizer_files

    validate_name(name)
    folder = Path(folder).expanduser().resolve()
    read_hf_config(folder)  # a bad folder fails before anything is written
    work = registry.root / validate_name(name) / f".import-{uuid.uuid4().hex[:8]}"
    with registry.writing(name):  # a read-only or full registry is named as such, before the conversion
        work.mkdir(parents=True)
    try:
        info, _ = import_checkpoint(folder, work, run_name=name)
        config_sha = hashlib.sha256((folder / CONFIG_FILE).read_bytes()).hexdigest()
        context = JobContext(job_name=None, job_id=None, config_sha256=config_sha, git_commit=None)
        tokenizer = tokenizer_files(folder)
        return publish_model_checkpoint(
            registry,
            mirrors or [],
            name,
            info.path,
            info.metadata,
            context,
            STAGE,
            loss=None,
            inputs=(f"hf:{folder}",),
            folders={TOKENIZER_ROLE: tokenizer} if tokenizer else None,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
