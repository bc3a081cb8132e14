"""The RL (GRPO) stage's config: the shared training sections, rl-data and starting model, GRPO and sampling options."""

from __future__ import annotations

from dataclasses import dataclass, field

from nemotron.config.errors import ConfigError
from nemotron.ranges import is_positive_number, require_non_negative_int, require_positive_int
from nemotron.training.run.config import TrainingRunConfig

LOSS_AGGREGATIONS = ("token_mean", "sequence_mean")


@dataclass(frozen=True)
class RlRefs:
    """The prompts (an `rl-data` artifact) and the policy's starting model (normally the SFT model artifact).

    `model`: a `model-checkpoint` artifact or a checkpoint folder (iter_XXXXXXX) of a nemotron run.
    """

    data: str
    model: str


@dataclass(frozen=True)
class GrpoSection:
    """Group Relative Policy Optimization, with the names users of TRL / NeMo-RL / verl know.

    Per step: `prompts_per_step` prompts, `group_size` completions each (TRL `num_generations`,
    NeMo-RL `num_generations_per_prompt`, verl `rollout.n`); advantage = reward - group mean, divided
    by the group's std when `scale_rewards` (false: Dr. GRPO; TRL `scale_rewards`, verl
    `norm_adv_by_std_in_grpo`); clipped ratio in [1 - clip_low, 1 + clip_high] (TRL `epsilon` /
    `epsilon_high`; DAPO's 0.2 / 0.28); loss averaged over every completion token of the batch
    (`token_mean`: TRL `dapo`/`bnpo`, verl `token-mean`) or per sequence first (`sequence_mean`: TRL
    `grpo`); KL to the frozen starting model with the k3 estimator times `kl_coef` (TRL `beta`;
    0 as in Nemotron's nano3 RL recipe: no reference model is kept); `updates_per_batch` optimizer
    steps on each batch of rollouts (TRL `num_iterations`, verl `ppo_epochs`); groups whose rewards
    are all equal teach nothing: always reported, dropped from the loss when `drop_zero_std_groups`.
    """

    prompts_per_step: int = 32
    group_size: int = 16
    scale_rewards: bool = True
    clip_low: float = 0.2
    clip_high: float = 0.28
    loss_aggregation: str = "token_mean"
    kl_coef: float = 0.0
    updates_per_batch: int = 1
    drop_zero_std_groups: bool = False

    def __post_init__(self) -> None:
        require_positive_int("grpo.prompts_per_step", self.prompts_per_step, ConfigError)
        require_positive_int("grpo.updates_per_batch", self.updates_per_batch, ConfigError)
        if not isinstance(self.group_size, int) or isinstance(self.group_size, bool) or self.group_size < 2:
            raise ConfigError(
                f"grpo.group_size={self.group_size!r} must be an integer >= 2 (advantages compare a group)"
            )
        for key in ("clip_low", "clip_high"):
            value = getattr(self, key)
            if not (is_positive_number(value) and value < 1):
                raise ConfigError(f"grpo.{key}={value!r} must be in (0, 1); e.g. 0.2 (clip_high 0.28 as DAPO)")
        if not (isinstance(self.kl_coef, int | float) and not isinstance(self.kl_coef, bool) and self.kl_coef >= 0):
            raise ConfigError(f"grpo.kl_coef={self.kl_coef!r} must be a number >= 0 (0: no KL term)")
        if self.loss_aggregation not in LOSS_AGGREGATIONS:
            raise ConfigError(
                f"grpo.loss_aggregation={self.loss_aggregation!r}; use one of: {', '.join(LOSS_AGGREGATIONS)}"
            )

    @property
    def sequences_per_step(self) -> int:
        return self.prompts_per_step * self.group_size


@dataclass(frozen=True)
class GenerationSection:
    """Sampling the completions: temperature, nucleus `top_p`, length; stops at `stop_tokens` or the EOS token.

    The training forward pass divides the logits by the same temperature, so the ratio compares the
    policy that sampled with the one that trains. `max_batch_size`: sequences sampled together.
    """

    max_new_tokens: int = 1024
    temperature: float = 1.0
    top_p: float = 1.0
    stop_tokens: tuple[str, ...] = ("<|im_end|>",)
    max_batch_size: int = 64

    def __post_init__(self) -> None:
        require_positive_int("generation.max_new_tokens", self.max_new_tokens, ConfigError)
        require_positive_int("generation.max_batch_size", self.max_batch_size, ConfigError)
        if not is_positive_number(self.temperature):
            raise ConfigError(f"generation.temperature={self.temperature!r} must be > 0 for sampling (e.g. 1.0)")
        if not (is_positive_number(self.top_p) and self.top_p <= 1):
            raise ConfigError(f"generation.top_p={self.top_p!r} must be in (0, 1]")


@dataclass(frozen=True)
class HeldOutSection:
    """Greedy answers to `count` prompts of `split`, scored by their verifiers: before training, at every
    evaluation (train.eval_interval) and at the end; the model artifact records the end's accuracy."""

    count: int = 64
    split: str = "test"
    max_new_tokens: int | None = None  # None: generation.max_new_tokens

    def __post_init__(self) -> None:
        require_non_negative_int("held_out.count", self.count, ConfigError)
        if self.max_new_tokens is not None:
            require_positive_int("held_out.max_new_tokens", self.max_new_tokens, ConfigError)
        if self.split not in ("train", "valid", "test"):
            raise ConfigError(f"held_out.split={self.split!r} must be one of train, valid, test")


@dataclass(frozen=True, kw_only=True)
class RlConfig(TrainingRunConfig):
    """recipes/nano3/stage2_rl/config/*.yaml: GRPO on the prompts of an rl-data artifact from a model artifact.

    `train.global_batch_size` counts sequences: grpo.prompts_per_step * grpo.group_size;
    `train.train_iters` counts optimizer steps (updates_per_batch of them per batch of rollouts).
    """

    run: RlRefs
    grpo: GrpoSection = field(default_factory=GrpoSection)
    generation: GenerationSection = field(default_factory=GenerationSection)
    held_out: HeldOutSection = field(default_factory=HeldOutSection)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.train.global_batch_size != self.grpo.sequences_per_step:
            raise ConfigError(
                f"train.global_batch_size={self.train.global_batch_size} must equal grpo.prompts_per_step * "
                f"grpo.group_size = {self.grpo.prompts_per_step} * {self.grpo.group_size} = "
                f"{self.grpo.sequences_per_step} (the completions of one step); set it to that"
            )
        if self.train.global_batch_size % self.train.micro_batch_size:
            raise ConfigError(
                f"train.micro_batch_size={self.train.micro_batch_size} must divide the "
                f"{self.train.global_batch_size} completions of a step (train.global_batch_size)"
            )
        if self.train.train_iters is None:
            raise ConfigError("train.train_iters must be set: RL's budget is a number of optimizer steps")
        if self.generation.max_new_tokens >= self.model.seq_length:
            raise ConfigError(
                f"generation.max_new_tokens={self.generation.max_new_tokens} leaves no room for a prompt in "
                f"model.seq_length={self.model.seq_length}; lower it"
            )
