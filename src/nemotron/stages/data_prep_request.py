"""From the data prep stage config to a validated PrepRequest: blend, tokenizer, settings hash, folder."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nemotron.data.errors import DataError
from nemotron.data.pretrain_prep import PrepRequest
from nemotron.data.tokenizer import TextTokenizer
from nemotron.paths import unwritable_reason
from nemotron.stages.data_prep_config import SAMPLE_SUFFIX

CHECK_TEXT_CHARS = 10_000  # of each document that checks the fast tokenizer backend against the reference

if TYPE_CHECKING:
    from nemotron.data.blend_spec import BlendSpec
    from nemotron.env import Profile
    from nemotron.stages.data_prep_config import DataPrepPretrainConfig


@dataclass(frozen=True)
class DataPrepPlan:
    """The request plus what publishing needs: the artifact name and the loaded tokenizer."""

    request: PrepRequest
    artifact_name: str
    tokenizer: TextTokenizer
    load_tokenizer: Callable[[], TextTokenizer]  # picklable: workers load their own copy


def build_request(config: DataPrepPretrainConfig, registry_root: Path) -> DataPrepPlan:
    from nemotron.data.blend_spec import load_blend_spec
    from nemotron.data.shard_worker import ShardSettings
    from nemotron.data.splits import SplitFractions
    from nemotron.data.tokenizer import load_tokenizer

    blend = load_blend_spec(config.blend_path, default_text_field=config.text_field)
    # the split, num_shards, batch_size and sample were checked with the config (DataPrepPretrainConfig)
    fractions = SplitFractions(config.split.valid_fraction, config.split.test_fraction, config.split.seed)
    # The first documents of each dataset check that the fast backend (gigatoken) gives the same
    # ids as Hugging Face; workers then rebuild the checked tokenizer from its spec, single-threaded.
    tokenizer = load_tokenizer(config.tokenizer.name_or_path, check_texts=sample_texts(blend))
    load = tokenizer.spec(threads=1).load
    deciding = {
        "datasets": dataset_identities(blend),
        "tokenizer": tokenizer_fingerprint(config.tokenizer.name_or_path),
        "split": asdict(config.split),
        "append_eod": config.tokenizer.append_eod,
        "min_doc_chars": config.min_doc_chars,
        "max_doc_tokens": config.max_doc_tokens,
        "sample": config.sample,
        "num_shards": config.num_shards,
    }
    settings_hash = hash_settings(deciding)
    settings = ShardSettings(
        fractions,
        config.tokenizer.append_eod,
        config.min_doc_chars,
        config.max_doc_tokens,
        config.sample,
        config.batch_size,
        settings_hash,
        piece_chars=config.tokenize_piece_chars,  # not in the hash: pieces give the ids of the whole text
    )
    name = config.artifact_name + (SAMPLE_SUFFIX if config.sample else "")
    data_dir = data_folder(config.output_dir, registry_root, name, settings_hash)
    workers = default_workers(config.workers)
    request = PrepRequest(blend, settings, data_dir, config.num_shards, workers, config.force, config.max_bad_records)
    return DataPrepPlan(request, name, tokenizer, load)


def dataset_identities(blend: BlendSpec) -> list[dict[str, Any]]:
    """What of each dataset decides the shards' bytes: all of its spec but the weight (read at training)."""
    return [{k: v for k, v in asdict(d).items() if k != "weight"} for d in blend.datasets]


def hash_settings(deciding: dict[str, Any]) -> str:
    """The settings hash of a data prep run: the sha256 of what decides its shards' bytes (JSON, sorted keys)."""
    return hashlib.sha256(json.dumps(deciding, sort_keys=True).encode()).hexdigest()


def data_folder(output_dir: str | None, registry_root: Path, name: str, settings_hash: str) -> Path:
    """Where the shards go: `output_dir`, else `<registry root>/<artifact name>/data/<settings hash>`."""
    if output_dir:
        return Path(output_dir).expanduser()
    return registry_root / name / "data" / settings_hash[:16]


def default_workers(configured: int | None) -> int:
    """The `workers` setting, or (null) one worker per core this process may use."""
    return configured or len(os.sched_getaffinity(0))


def check_inputs(config: DataPrepPretrainConfig, profile: Profile) -> list[str]:
    """The stage's launch preflight: the blend file and a local tokenizer folder, checked as the job checks them.

    Reads the blend JSON (no dataset is opened, nothing is tokenized). On Slurm, a path not visible from
    here may still exist on the cluster: it gives a note for the dry run instead of an error.
    """
    return check_prep_inputs(
        config.blend_path, config.text_field, config.tokenizer.name_or_path, config.output_dir, profile
    )


def check_prep_inputs(
    blend_path: str, text_field: str, tokenizer: str, output_dir: str | None, profile: Profile
) -> list[str]:
    """The launch checks every data prep stage makes (see `check_inputs`): blend file, tokenizer, output_dir."""
    from nemotron.data.blend_spec import load_blend_spec
    from nemotron.data.tokenizer import check_tokenizer_source

    notes: list[str] = []
    on_cluster = profile.executor == "slurm"
    blend = Path(blend_path).expanduser()
    if on_cluster and not blend.exists():
        notes.append(f"blend_path {blend} is not visible here; the job checks it on the cluster")
    else:
        load_blend_spec(blend_path, default_text_field=text_field)
    if on_cluster and not Path(tokenizer).expanduser().exists():
        notes.append(f"tokenizer.name_or_path {tokenizer} is not checked here; the job loads it on the cluster")
    else:
        check_tokenizer_source(tokenizer)
    if output_dir:
        output = Path(output_dir).expanduser()
        if on_cluster:
            notes.append(f"output_dir {output} is on the cluster's filesystem: not checked here; the job creates it")
        elif (problem := unwritable_reason(output)) is not None:
            raise DataError(
                f"config key 'output_dir': cannot write data prep shards in {output}: {problem}. "
                "Choose a folder you can write, or null for a folder in the artifact registry."
            )
    return notes


def check_chat_template_source(source: str, tokenizer: str, profile: Profile) -> list[str]:
    """The launch check of a `chat_template` setting (SFT, RL): load and compile it as the job does; notes for
    what cannot be checked here (the own template of a tokenizer not in a local folder; on Slurm, a file not
    visible from here)."""
    from nemotron.data.chat_template import SHIPPED_TEMPLATES, TOKENIZER_TEMPLATE, load_chat_template

    if source == TOKENIZER_TEMPLATE and not Path(tokenizer).expanduser().is_dir():
        return [f"chat_template 'tokenizer': the template of {tokenizer} is not checked here; the job loads it"]
    if (
        profile.executor == "slurm"
        and source not in (*SHIPPED_TEMPLATES, TOKENIZER_TEMPLATE)
        and not Path(source).expanduser().exists()
    ):
        return [f"chat_template {source} is not visible here; the job reads it on the cluster"]
    load_chat_template(source, tokenizer)
    return []


def sample_texts(blend: BlendSpec, per_dataset: int = 32) -> list[str]:
    """The first readable documents of each local dataset (hub datasets are not opened here).

    Each is cut to its first CHECK_TEXT_CHARS characters: the check encodes them whole with both
    backends, and a huge document would take the Hugging Face one gigabytes of memory.
    """
    from itertools import islice

    from nemotron.data.sources import iter_records, whole_dataset_ranges

    texts: list[str] = []
    for spec in blend.datasets:
        if spec.is_hub:
            continue
        records = (r for rng in whole_dataset_ranges(spec) for r in iter_records(rng, spec))
        texts.extend(islice((r.text[:CHECK_TEXT_CHARS] for r in records if r.text), per_dataset))
    return texts


def tokenizer_fingerprint(name_or_path: str) -> str:
    """A hub name as is; a local folder by the hash of its tokenizer files (their content decides ids)."""
    folder = Path(name_or_path).expanduser()
    if not folder.is_dir():
        return name_or_path
    digest = hashlib.sha256()
    for file in sorted(folder.glob("*.json")):
        digest.update(file.name.encode() + file.read_bytes())
    return f"sha256:{digest.hexdigest()}"
