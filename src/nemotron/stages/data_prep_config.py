"""The data prep stage's config schema (recipes/nano3/stage0_pretrain/config/data_prep/*.yaml).

Its own module, free of heavy imports, so the stage entry point (`data_prep_pretrain`) and the
request builder (`data_prep_request`) can both name it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nemotron.artifacts.names import NAME_MAX_LENGTH, validate_artifact_name
from nemotron.data.long_text import DEFAULT_PIECE_CHARS, MIN_PIECE_CHARS
from nemotron.data.splits import SplitFractions
from nemotron.ranges import require_int_in_range

SAMPLE_SUFFIX = "-sample"  # a sample run (`sample: N`) publishes <artifact_name>-sample


@dataclass
class TokenizerSection:
    """The Hugging Face tokenizer: a hub name or a local folder."""

    name_or_path: str
    append_eod: bool = True


@dataclass
class SplitSection:
    """Per-document split of every dataset into train/valid/test, deterministic for a seed."""

    valid_fraction: float = 0.01
    test_fraction: float = 0.01
    seed: int = 1234

    def __post_init__(self) -> None:
        # the job's check (SplitFractions), reported at the fraction at fault
        try:
            SplitFractions(self.valid_fraction, self.test_fraction, self.seed)
        except ValueError as err:
            key = (
                "test_fraction"
                if 0 <= self.valid_fraction < 1 and not 0 <= self.test_fraction < 1
                else "valid_fraction"
            )
            raise ValueError(f"key '{key}': {err}") from None


def check_shard_keys(num_shards: int, workers: int | None, max_bad_records: int) -> None:
    """The checks of the keys every data prep config has (ValueError naming the key and the fix)."""
    require_int_in_range("key 'num_shards'", num_shards, ValueError, minimum=1)
    if workers is not None:
        require_int_in_range("key 'workers'", workers, ValueError, minimum=1, fix="Use null for one worker per core.")
    require_int_in_range(
        "key 'max_bad_records'",
        max_bad_records,
        ValueError,
        minimum=0,
        fix="It counts malformed records to skip before failing; 0 fails on the first one.",
    )


@dataclass
class DataPrepPretrainConfig:
    """The stage's config (recipes/nano3/stage0_pretrain/config/data_prep/*.yaml)."""

    blend_path: str
    tokenizer: TokenizerSection
    split: SplitSection = field(default_factory=SplitSection)
    text_field: str = "text"
    batch_size: int = 256
    artifact_name: str = "nano3-pretrain-data"
    num_shards: int = 64
    workers: int | None = None  # default: the machine's cores
    force: bool = False
    min_doc_chars: int = 0
    max_doc_tokens: int | None = None
    tokenize_piece_chars: int = DEFAULT_PIECE_CHARS  # longer documents are tokenized in pieces (memory)
    max_bad_records: int = 0
    sample: int | None = None  # documents per dataset; published as <artifact_name>-sample
    output_dir: str | None = None  # default: <registry root>/<artifact name>/data/<settings hash>
    array_tasks: int = 0  # on Slurm: a job array of this many tasks, then a finalize job; 0: one job

    def __post_init__(self) -> None:
        # ValueError("key '<field>' ..."): the schema reports it at the full key, naming the override that set it
        # The artifact name is a registry folder (and names the default data folder): checked before any work.
        validate_artifact_name(self.artifact_name, "artifact_name")
        if self.sample and len(self.artifact_name) + len(SAMPLE_SUFFIX) > NAME_MAX_LENGTH:
            raise ValueError(
                f"key 'artifact_name' has {len(self.artifact_name)} characters; with sample set the artifact is "
                f"<artifact_name>{SAMPLE_SUFFIX}, which must have at most {NAME_MAX_LENGTH}: "
                f"shorten artifact_name to {NAME_MAX_LENGTH - len(SAMPLE_SUFFIX)} characters or fewer."
            )
        # The checks the job (data_prep_request.build_request) makes, here so that launch and --dry-run make them
        check_shard_keys(self.num_shards, self.workers, self.max_bad_records)
        require_int_in_range("key 'batch_size'", self.batch_size, ValueError, minimum=1)
        require_int_in_range(
            "key 'tokenize_piece_chars'",
            self.tokenize_piece_chars,
            ValueError,
            minimum=MIN_PIECE_CHARS,
            fix="Documents longer than this many characters are tokenized in pieces of at most that size.",
        )
        if self.sample is not None:
            require_int_in_range(
                "key 'sample'",
                self.sample,
                ValueError,
                minimum=1,
                fix="It counts documents per dataset; use null for all of them.",
            )
