"""Pretraining datasets: a pretrain-data artifact's blend.json through megatron-core's GPTDataset builder."""

from __future__ import annotations

import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nemotron.artifacts import ArtifactError, ArtifactKind, FileRegistry, default_registry_root
from nemotron.artifacts.resolution import require_kind
from nemotron.data.megatron_blend import SplitBlend, read_blend
from nemotron.data.splits import SPLITS
from nemotron.ranges import require_non_negative_int, require_positive_int
from nemotron.training.errors import TrainingError


class TrainingDataError(TrainingError):
    """Training data cannot be built as configured; the message names the key or file and the fix."""


@dataclass(frozen=True)
class TrainingDataConfig:
    """What to train on and how many samples each split must provide.

    Exactly one of `artifact_ref` (a `pretrain-data` artifact, e.g. `nano3-pretrain-data:latest`)
    or `blend_path` (a per-split Megatron `blend.json`). `*_iters` are the global batches each split
    must provide (megatron builds at least `iters x global_batch_size` samples, drawing more epochs
    when needed); 0 skips a split. `cache_dir` receives megatron's index caches (shuffle/sample/blend
    indices): it must be
    outside the data, and on storage every rank can read when training on several nodes.
    `iters_keys` names, per split, the stage's config key that sets `<split>_iters` (e.g. pretraining's
    valid split is `train.eval_iters`), so messages name what the user can change.
    """

    seq_length: int
    seed: int
    global_batch_size: int
    micro_batch_size: int
    train_iters: int
    cache_dir: str
    artifact_ref: str | None = None
    blend_path: str | None = None
    valid_iters: int = 0
    test_iters: int = 0
    num_workers: int = 0
    eod_mask_loss: bool = False
    mmap: bool = True
    iters_keys: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if (self.artifact_ref is None) == (self.blend_path is None):
            raise TrainingDataError(
                "training data: set exactly one of artifact_ref (e.g. nano3-pretrain-data-tiny:latest) "
                f"or blend_path (a blend.json); got artifact_ref={self.artifact_ref!r}, blend_path={self.blend_path!r}"
            )
        for key in ("seq_length", "global_batch_size", "micro_batch_size"):
            require_positive_int(f"training data: {key}", getattr(self, key), TrainingDataError)
        for split in SPLITS:
            require_non_negative_int(f"training data: {self.iters_key(split)}", self.iters(split), TrainingDataError)
        require_non_negative_int("training data: num_workers", self.num_workers, TrainingDataError)
        if self.global_batch_size % self.micro_batch_size:
            raise TrainingDataError(
                f"training data: global_batch_size ({self.global_batch_size}) must be a multiple of "
                f"micro_batch_size ({self.micro_batch_size})"
            )
        if not self.cache_dir:
            raise TrainingDataError(
                "training data: cache_dir is required (a folder outside the data, e.g. under the run's output)"
            )

    def iters(self, split: str) -> int:
        """Global batches `split` must provide."""
        return {"train": self.train_iters, "valid": self.valid_iters, "test": self.test_iters}[split]

    def iters_key(self, split: str) -> str:
        """The config key that sets `split`'s iterations, for messages (default `<split>_iters`)."""
        return self.iters_keys.get(split, f"{split}_iters")

    def samples(self, split: str) -> int:
        """Samples megatron must provide for `split`: its iterations x global_batch_size."""
        return self.iters(split) * self.global_batch_size


@dataclass(frozen=True)
class TokenIds:
    """The token ids a GPTDataset needs (the data is already tokenized): a stand-in for a tokenizer.

    `pad_id` None: megatron pads with -1, an id never in the data, so no real token is masked.
    """

    eod_id: int
    vocab_size: int
    pad_id: int | None = None

    @property
    def eod(self) -> int:
        return self.eod_id

    @property
    def pad(self) -> int:
        if self.pad_id is None:
            raise AttributeError("no pad id")  # megatron then uses its own pad id (-1)
        return self.pad_id

    @property
    def unique_identifiers(self) -> OrderedDict:
        """What megatron hashes (with seed, lengths and paths) to name its index caches."""
        return OrderedDict(cls="TokenIds", eod=self.eod_id, vocab_size=self.vocab_size, pad=self.pad_id)


@dataclass(frozen=True)
class DataSource:
    """Where the blend comes from: the pinned artifact (`name:vN`) or a blend file."""

    blend_path: Path
    ref: str | None = None  # exact artifact version, for lineage
    artifact_dir: Path | None = None
    data_dir: Path | None = None  # the artifact's data folder (metadata `data_dir`), when it records one
    token_ids: TokenIds | None = None  # from the artifact's tokenizer metadata

    @property
    def description(self) -> str:
        return f"artifact {self.ref}" if self.ref else f"blend {self.blend_path}"


@dataclass(frozen=True)
class GPTDatasets:
    """The three splits (None where not requested) and what they were built from."""

    train: Any
    valid: Any
    test: Any
    source: DataSource
    tokenizer: Any  # TokenIds or a MegatronTokenizer

    def split(self, name: str) -> Any:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]


def resolve_source(cfg: TrainingDataConfig, registry: FileRegistry | None = None) -> DataSource:
    """The blend file of `cfg.artifact_ref` (resolved in `registry`, default the configured one) or `cfg.blend_path`."""
    if cfg.blend_path is not None:
        path = Path(cfg.blend_path).expanduser().resolve()
        if not path.is_file():
            raise TrainingDataError(
                f"training data: blend_path {cfg.blend_path!r} is not a file (expected a blend.json)"
            )
        return DataSource(blend_path=path)
    assert cfg.artifact_ref is not None  # exactly one of blend_path / artifact_ref (TrainingDataConfig checks)
    registry = registry or FileRegistry(default_registry_root())
    try:
        artifact = registry.resolve(cfg.artifact_ref)
    except ArtifactError as err:
        raise ArtifactError(f"training data: artifact_ref {cfg.artifact_ref!r}: {err}") from None
    try:
        require_kind(artifact, ArtifactKind.PRETRAIN_DATA, ref=cfg.artifact_ref)
    except ArtifactError as err:
        raise ArtifactError(f"training data: artifact_ref {cfg.artifact_ref!r}: {err}") from None
    tokenizer = artifact.tokenizer()
    token_ids = None
    if tokenizer is not None and tokenizer.eod_id is not None and tokenizer.vocab_size is not None:
        token_ids = TokenIds(eod_id=tokenizer.eod_id, vocab_size=tokenizer.vocab_size)
    data_dir = artifact.metadata.get("data_dir")
    return DataSource(
        artifact.file("blend"),
        artifact.ref,
        artifact.path,
        Path(data_dir).resolve() if isinstance(data_dir, str) else None,
        token_ids,
    )


def load_tokenizer(tokenizer: str | Path | TokenIds | None, source: DataSource) -> Any:
    """The megatron tokenizer for the datasets: ids from the artifact (None), a HF folder, or TokenIds.

    An explicit tokenizer must agree with the artifact's recorded eod id and vocab size.
    """
    if tokenizer is None:
        if source.token_ids is None:
            raise TrainingDataError(
                f"training data: {source.description} records no tokenizer eod_id/vocab_size; pass tokenizer= "
                "a Hugging Face tokenizer folder or TokenIds(eod_id=..., vocab_size=...)"
            )
        return source.token_ids
    if isinstance(tokenizer, TokenIds):
        loaded: Any = tokenizer
    else:
        folder = Path(tokenizer).expanduser()
        if not folder.is_dir():
            raise TrainingDataError(
                f"training data: tokenizer {str(tokenizer)!r} is not a local folder; give a Hugging Face "
                "tokenizer folder (with tokenizer.json) or TokenIds"
            )
        from megatron.core.tokenizers import MegatronTokenizer

        loaded = MegatronTokenizer.from_pretrained(tokenizer_path=str(folder), metadata_path={"library": "huggingface"})
    recorded = source.token_ids
    if recorded is not None and (loaded.eod, loaded.vocab_size) != (recorded.eod_id, recorded.vocab_size):
        raise TrainingDataError(
            f"training data: tokenizer {tokenizer} has eod {loaded.eod} and vocab {loaded.vocab_size}, but "
            f"{source.description} was tokenized with eod {recorded.eod_id} and vocab {recorded.vocab_size}; "
            "use the tokenizer the data was prepared with (or leave tokenizer unset)"
        )
    return loaded


def requested_blends(cfg: TrainingDataConfig, source: DataSource) -> list[SplitBlend | None]:
    """train/valid/test blends; a split with 0 samples is left out, an empty requested split is an error."""
    blends = read_blend(source.blend_path)
    chosen: list[SplitBlend | None] = []
    for split in SPLITS:
        blend = blends[split]
        if cfg.samples(split) == 0:
            chosen.append(None)
            continue
        if blend is None:
            key = cfg.iters_key(split)
            # a stage that names its own key (pretraining's train.eval_iters) may not allow 0: say only the data fix
            skip = f"set {key}: 0, or " if key == f"{split}_iters" else ""
            data_fix = f"split.{split}_fraction > 0" if split != "train" else "a train split"
            raise TrainingDataError(
                f"training data: {key} is {cfg.iters(split)} but split {split!r} of {source.description} is "
                f"empty; {skip}prepare the data with {data_fix} (nemotron nano3 data prep pretrain)"
            )
        for prefix in blend[0]:
            for suffix in (".bin", ".idx"):
                if not Path(prefix + suffix).is_file():
                    raise TrainingDataError(
                        f"training data: {source.description} lists {prefix}{suffix} ({split}), which is missing; "
                        "check the artifact with `nemotron artifacts verify`"
                    )
        chosen.append(blend)
    return chosen


def check_cache_dir(cache_dir: Path, source: DataSource, blends: list[SplitBlend | None]) -> None:
    """The cache must not be inside the artifact or next to the data: published data stays unchanged."""
    protected = {source.blend_path.parent}
    protected |= {folder.resolve() for folder in (source.artifact_dir, source.data_dir) if folder is not None}
    protected |= {Path(p).parent for blend in blends if blend for p in blend[0]}
    for folder in sorted(protected):
        if cache_dir == folder or cache_dir.is_relative_to(folder):
            raise TrainingDataError(
                f"training data: cache_dir {cache_dir} is inside {folder}, part of {source.description}; "
                "put the index cache outside the data (e.g. under the run's output folder)"
            )


@contextmanager
def process_group_for_build() -> Iterator[None]:
    """An initialised torch.distributed group for megatron's builder (it asks for the rank when caching).

    With a group already initialised (a training run), use it. Otherwise, in a single process, a
    temporary one-process gloo group lives for the build only. Several processes must initialise
    their group first: each would otherwise build the same cache at once.
    """
    import torch.distributed as dist

    if dist.is_initialized():
        yield
        return
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        raise TrainingDataError(
            f"training data: WORLD_SIZE is {world} but torch.distributed is not initialised; initialise the "
            "process group on every rank before build_datasets"
        )
    with tempfile.TemporaryDirectory(prefix="nemotron-data-pg-") as tmp:
        dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=0, world_size=1)
        try:
            yield
        finally:
            dist.destroy_process_group()


def build_datasets(
    cfg: TrainingDataConfig,
    tokenizer: str | Path | TokenIds | None = None,
    *,
    registry: FileRegistry | None = None,
    is_built_on_rank: Callable[[], bool] | None = None,
) -> GPTDatasets:
    """Build the train/valid/test GPTDatasets of `cfg`; the sample order is fixed by `cfg.seed`.

    `tokenizer`: None takes eod id and vocab size from the artifact's metadata; a Hugging Face
    folder or TokenIds must match them. Collective when torch.distributed is initialised: every
    rank calls it; megatron builds on global rank 0 first, writing the caches in `cfg.cache_dir`,
    then the other ranks read them (so `cache_dir` must be shared between nodes).
    `is_built_on_rank` (default: every rank) may return False on ranks that get batches another
    way (e.g. tensor-parallel ranks other than 0); their splits are then None.
    """
    from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
    from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig

    source = resolve_source(cfg, registry)
    megatron_tokenizer = load_tokenizer(tokenizer, source)
    blends = requested_blends(cfg, source)
    if not any(blends):
        keys = ", ".join(cfg.iters_key(split) for split in SPLITS)
        raise TrainingDataError(f"training data: {keys} are all 0; nothing to build")
    cache_dir = Path(cfg.cache_dir).expanduser().resolve()
    check_cache_dir(cache_dir, source, blends)
    cache_dir.mkdir(parents=True, exist_ok=True)
    config = GPTDatasetConfig(
        random_seed=cfg.seed,
        sequence_length=cfg.seq_length,
        blend_per_split=blends,
        split=None,
        path_to_cache=str(cache_dir),  # never None: megatron would then cache next to the data
        tokenizer=megatron_tokenizer,
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=cfg.eod_mask_loss,
        create_attention_mask=False,  # causal attention builds its own mask
        mmap_bin_files=cfg.mmap,
    )
    sizes = [cfg.samples(split) for split in SPLITS]
    with process_group_for_build():
        built = BlendedMegatronDatasetBuilder(GPTDataset, sizes, is_built_on_rank or (lambda: True), config).build()
    return GPTDatasets(train=built[0], valid=built[1], test=built[2], source=source, tokenizer=megatron_tokenizer)
