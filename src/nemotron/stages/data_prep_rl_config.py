"""The RL data prep stage's config schema (recipes/nano3/stage2_rl/config/data_prep/*.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field

from nemotron.artifacts.names import validate_artifact_name
from nemotron.ranges import require_int_in_range
from nemotron.stages.data_prep_config import SplitSection, check_shard_keys
from nemotron.stages.data_prep_sft_config import SftTokenizerSection


@dataclass
class DataPrepRlConfig:
    """The stage's config: a blend of prompt records, rendered with a chat template into JSONL prompts."""

    blend_path: str
    tokenizer: SftTokenizerSection
    chat_template: str = "nano3"  # "nano3" (shipped), "tokenizer" (the tokenizer's own) or a Jinja file
    max_prompt_tokens: int = 1024  # longer prompts are dropped, counted as bad records
    default_verifier: str = "exact_match"  # for records without `verifier`: a built-in or module:function
    split: SplitSection = field(default_factory=SplitSection)
    artifact_name: str = "nano3-rl-data"
    num_shards: int = 16
    workers: int | None = None  # default: the machine's cores
    force: bool = False
    max_bad_records: int = 0
    output_dir: str | None = None  # default: <registry root>/<artifact name>/data/<settings hash>
    array_tasks: int = 0  # on Slurm: a job array of this many tasks, then a finalize job; 0: one job

    def __post_init__(self) -> None:
        validate_artifact_name(self.artifact_name, "artifact_name")
        require_int_in_range(
            "key 'max_prompt_tokens'",
            self.max_prompt_tokens,
            ValueError,
            minimum=1,
            fix="Longer prompts (chat template and generation prompt included) are dropped as bad records.",
        )
        if not self.default_verifier.strip():
            raise ValueError(
                "key 'default_verifier' is empty; name a verifier (exact_match, math, format or module:function)"
            )
        check_shard_keys(self.num_shards, self.workers, self.max_bad_records)
