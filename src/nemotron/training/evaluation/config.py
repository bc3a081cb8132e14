"""The eval stage's config: the models, the data artifacts measured on, and the settings of each measure."""

from __future__ import annotations

from dataclasses import dataclass, field

from nemotron.artifacts.names import validate_artifact_name
from nemotron.config.errors import ConfigError
from nemotron.ranges import is_positive_number, require_non_negative_int, require_positive_int

SPLITS = ("train", "valid", "test")


def _require_split(key: str, split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"{key}={split!r} must be one of {', '.join(SPLITS)}")


@dataclass(frozen=True)
class EvalData:
    """The data artifacts to measure on; each is optional (null: its measures are skipped)."""

    pretrain: str | None = None  # pretrain-data: perplexity
    sft: str | None = None  # sft-data: masked loss on the assistant tokens
    rl: str | None = None  # rl-data: greedy accuracy, mean sampled reward, pass@k and samples


@dataclass(frozen=True)
class EvalRefs:
    """What to evaluate: model-checkpoint artifacts (or checkpoint folders), in the table's column order."""

    models: tuple[str, ...]
    data: EvalData = field(default_factory=EvalData)

    def __post_init__(self) -> None:
        if not self.models:
            raise ConfigError(
                "run.models is empty; name the models to evaluate, e.g. run.models=[nano3-pretrain-tiny:latest]"
            )
        repeated = sorted({ref for ref in self.models if self.models.count(ref) > 1})
        if repeated:
            raise ConfigError(f"run.models names {', '.join(repeated)} more than once; list each model once")


@dataclass(frozen=True)
class PerplexitySection:
    """Next-token loss on `batches` batches of `micro_batch_size` sequences of run.data.pretrain's `split`.

    `seq_length` null: the shortest sequence length of the models, so every model reads the same tokens.
    """

    split: str = "test"
    batches: int = 8
    micro_batch_size: int = 4
    seq_length: int | None = None

    def __post_init__(self) -> None:
        _require_split("perplexity.split", self.split)
        require_positive_int("perplexity.batches", self.batches, ConfigError)
        require_positive_int("perplexity.micro_batch_size", self.micro_batch_size, ConfigError)
        if self.seq_length is not None:
            require_positive_int("perplexity.seq_length", self.seq_length, ConfigError)


@dataclass(frozen=True)
class SftLossSection:
    """Masked loss (assistant tokens only) on the packed rows of run.data.sft's `split`: the first `rows`
    rows (null: all), `micro_batch_size` rows per forward pass."""

    split: str = "test"
    rows: int | None = None
    micro_batch_size: int = 4

    def __post_init__(self) -> None:
        _require_split("sft_loss.split", self.split)
        require_positive_int("sft_loss.micro_batch_size", self.micro_batch_size, ConfigError)
        if self.rows is not None:
            require_positive_int("sft_loss.rows", self.rows, ConfigError)


@dataclass(frozen=True)
class RlSection:
    """Answers to the first `count` prompts (null: all) of run.data.rl's `split`, scored by their verifiers.

    Greedy answers give the accuracy (mean reward); `samples_per_prompt` (k) completions per prompt sampled
    at `temperature` / `top_p` give the mean sampled reward and pass@k (the share of prompts with a sample
    of reward 1); 0 samples only the greedy answers. A completion ends at `stop_tokens` or the tokenizer's
    EOS, or after `max_new_tokens`.
    """

    split: str = "test"
    count: int | None = 64
    samples_per_prompt: int = 4
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop_tokens: tuple[str, ...] = ("<|im_end|>",)
    max_batch_size: int = 64
    seed: int = 1234

    def __post_init__(self) -> None:
        _require_split("rl.split", self.split)
        if self.count is not None:
            require_positive_int("rl.count", self.count, ConfigError)
        require_non_negative_int("rl.samples_per_prompt", self.samples_per_prompt, ConfigError)
        require_positive_int("rl.max_new_tokens", self.max_new_tokens, ConfigError)
        require_positive_int("rl.max_batch_size", self.max_batch_size, ConfigError)
        require_non_negative_int("rl.seed", self.seed, ConfigError)
        if not is_positive_number(self.temperature):
            raise ConfigError(f"rl.temperature={self.temperature!r} must be > 0 (it scales the sampled logits)")
        if not (is_positive_number(self.top_p) and self.top_p <= 1):
            raise ConfigError(f"rl.top_p={self.top_p!r} must be in (0, 1]")


@dataclass(frozen=True)
class LmEvalSection:
    """lm-evaluation-harness tasks (the `eval` extra) run on each model's Hugging Face export.

    `tasks`: task or group names; `include_path`: a folder of task YAML files of your own (e.g. over local
    JSONL data, for machines without the Hugging Face hub); `limit`: documents per task (a number < 1: a
    fraction; null: all); `num_fewshot`: null = each task's default.
    """

    tasks: tuple[str, ...] = ()
    include_path: str | None = None
    limit: float | None = None
    num_fewshot: int | None = None
    batch_size: int = 1

    def __post_init__(self) -> None:
        require_positive_int("lm_eval.batch_size", self.batch_size, ConfigError)
        if self.num_fewshot is not None:
            require_non_negative_int("lm_eval.num_fewshot", self.num_fewshot, ConfigError)
        if self.limit is not None and not is_positive_number(self.limit):
            raise ConfigError(f"lm_eval.limit={self.limit!r} must be > 0 (documents per task, or a fraction < 1)")


@dataclass(frozen=True)
class EvalConfig:
    """recipes/nano3/stage3_eval/config/*.yaml: measure model artifacts side by side on held-out data.

    Every measure is optional, but at least one must be configured: a data artifact under run.data
    or lm_eval.tasks.
    """

    run: EvalRefs
    run_name: str  # names the run folder <artifacts root>/../runs/<run_name> (the report, exports, caches)
    artifact_name: str | None = None  # the eval artifact to publish; None = run_name
    perplexity: PerplexitySection = field(default_factory=PerplexitySection)
    sft_loss: SftLossSection = field(default_factory=SftLossSection)
    rl: RlSection = field(default_factory=RlSection)
    samples: int = 3  # greedy answers to RL prompts shown per model (prompt, answer, expected)
    lm_eval: LmEvalSection = field(default_factory=LmEvalSection)
    seed: int = 1234  # the order of the perplexity samples

    def __post_init__(self) -> None:
        validate_artifact_name(self.run_name, "run_name", example="nano3-eval-tiny")
        if self.artifact_name is not None:
            validate_artifact_name(self.artifact_name, "artifact_name", example="nano3-eval-tiny")
        require_non_negative_int("samples", self.samples, ConfigError)
        data = self.run.data
        if data.pretrain is None and data.sft is None and data.rl is None and not self.lm_eval.tasks:
            raise ConfigError(
                "nothing to measure: set run.data.pretrain (perplexity), run.data.sft (masked loss), "
                "run.data.rl (greedy accuracy, pass@k) or lm_eval.tasks"
            )

    @property
    def eval_artifact_name(self) -> str:
        return self.artifact_name or self.run_name
