"""The SFT data prep stage's config schema (recipes/nano3/stage1_sft/config/data_prep/*.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field

from nemotron.artifacts.names import validate_artifact_name
from nemotron.data.packing import MAX_PACK_SIZE, OVERFLOW_MODES, PACKING_ALGORITHMS
from nemotron.ranges import require_int_in_range
from nemotron.stages.data_prep_config import SplitSection, check_shard_keys


@dataclass
class SftTokenizerSection:
    """The Hugging Face tokenizer: a hub name or a local folder (a fast tokenizer)."""

    name_or_path: str


@dataclass
class DataPrepSftConfig:
    """The stage's config: a blend of chat JSONL datasets, rendered, masked and packed into parquet."""

    blend_path: str
    tokenizer: SftTokenizerSection
    chat_template: str = "nano3"  # "nano3" (shipped), "tokenizer" (the tokenizer's own) or a Jinja file
    last_turn_only: bool = False  # train on the last assistant turn only
    pack_size: int = 4096
    packing: str = "first_fit_shuffle"
    overflow: str = "truncate"  # conversations longer than pack_size: "truncate" or "drop"
    split: SplitSection = field(default_factory=SplitSection)
    artifact_name: str = "nano3-sft-data"
    num_shards: int = 16
    workers: int | None = None  # default: the machine's cores
    force: bool = False
    max_bad_records: int = 0
    output_dir: str | None = None  # default: <registry root>/<artifact name>/data/<settings hash>
    array_tasks: int = 0  # on Slurm: a job array of this many tasks, then a finalize job; 0: one job

    def __post_init__(self) -> None:
        validate_artifact_name(self.artifact_name, "artifact_name")
        require_int_in_range(
            "key 'pack_size'",
            self.pack_size,
            ValueError,
            minimum=1,
            maximum=MAX_PACK_SIZE,
            fix="It is the tokens per packed row (the training sequence length).",
        )
        check_shard_keys(self.num_shards, self.workers, self.max_bad_records)
        for key, allowed in (("packing", PACKING_ALGORITHMS), ("overflow", OVERFLOW_MODES)):
            if getattr(self, key) not in allowed:
                raise ValueError(f"key '{key}' is {getattr(self, key)!r}; use one of: {', '.join(allowed)}")
