"""Micro-batches for each data-parallel rank from one global sample order, resumable at any step boundary."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from nemotron.ranges import require_positive_int
from nemotron.training.datasets.gpt import TrainingDataError

BATCH_KEYS = ("tokens", "labels", "loss_mask", "position_ids")


@dataclass(frozen=True)
class BatchLayout:
    """How a global batch is cut into micro-batches across data-parallel ranks.

    The data is one sequence of sample indices 0, 1, 2, ...; global batch s is samples
    [s*G, (s+1)*G). It is consumed in micro-steps of `micro_batch_size * data_parallel_size`
    consecutive samples, rank r taking the r-th run of `micro_batch_size` in each. The set of
    samples in a global batch therefore never depends on the data-parallel size: changing it only
    changes which rank gets which sample.
    """

    micro_batch_size: int
    global_batch_size: int
    data_parallel_size: int

    def __post_init__(self) -> None:
        for key in ("micro_batch_size", "global_batch_size", "data_parallel_size"):
            require_positive_int(f"training data: {key}", getattr(self, key), TrainingDataError)
        if self.global_batch_size % self.samples_per_micro_step:
            raise TrainingDataError(
                f"training data: global_batch_size ({self.global_batch_size}) must be a multiple of "
                f"micro_batch_size x data_parallel_size ({self.micro_batch_size} x {self.data_parallel_size})"
            )

    @property
    def samples_per_micro_step(self) -> int:
        """Samples consumed by all ranks together per micro-batch each."""
        return self.micro_batch_size * self.data_parallel_size

    @property
    def micro_batches_per_step(self) -> int:
        """Micro-batches each rank runs (gradient accumulation) per global batch."""
        return self.global_batch_size // self.samples_per_micro_step

    def indices(self, consumed_samples: int, rank: int) -> range:
        """The sample indices of `rank`'s micro-batch in the micro-step starting at `consumed_samples`."""
        if not 0 <= rank < self.data_parallel_size:
            raise TrainingDataError(
                f"training data: data_parallel_rank {rank} is outside 0..{self.data_parallel_size - 1}"
            )
        start = consumed_samples + rank * self.micro_batch_size
        return range(start, start + self.micro_batch_size)

    def usable_samples(self, dataset_length: int) -> int:
        """Samples in the complete global batches of a dataset; a last partial batch is never used."""
        return dataset_length // self.global_batch_size * self.global_batch_size


def collate_samples(samples: list[dict[str, Any]], keys: tuple[str, ...] = BATCH_KEYS) -> dict[str, Any]:
    """Stack samples' `keys` into a micro-batch: [micro_batch, seq] tensors; attention_mask None (causal)."""
    import torch

    batch: dict[str, Any] = {key: torch.stack([sample[key] for sample in samples]) for key in keys}
    batch["attention_mask"] = None
    return batch


class _Sampler:
    """Index lists of one rank's micro-batches, from `start` on (a batch_sampler for DataLoader)."""

    def __init__(self, layout: BatchLayout, rank: int, start: int, stop: int) -> None:
        self.layout, self.rank, self.start, self.stop = layout, rank, start, stop

    def __iter__(self) -> Iterator[list[int]]:
        for consumed in range(self.start, self.stop, self.layout.samples_per_micro_step):
            yield list(self.layout.indices(consumed, self.rank))

    def __len__(self) -> int:
        return (self.stop - self.start) // self.layout.samples_per_micro_step


class MicroBatchIterator:
    """Yields this rank's micro-batches (dicts of tensors, see `collate_samples`) in the global order.

    `consumed_samples` is the data position: samples consumed by all ranks together. Resuming at
    a position k (a multiple of `global_batch_size`, i.e. a step boundary) yields exactly what an
    uninterrupted run yields from k on, also with a different data-parallel size. The iterator
    stops after the last complete global batch of the dataset. `num_workers` > 0 reads samples
    in worker processes (torch DataLoader); the order is the same. `keys`: the sample entries batched.
    """

    def __init__(
        self,
        dataset: Any,
        micro_batch_size: int,
        data_parallel_rank: int,
        data_parallel_size: int,
        consumed_samples: int = 0,
        *,
        global_batch_size: int,
        num_workers: int = 0,
        keys: tuple[str, ...] = BATCH_KEYS,
    ) -> None:
        if dataset is None:
            raise TrainingDataError(
                "training data: no dataset for this iterator (was the split built? set its *_samples > 0)"
            )
        self.layout = BatchLayout(micro_batch_size, global_batch_size, data_parallel_size)
        self.layout.indices(0, data_parallel_rank)  # checks the rank
        self.rank = data_parallel_rank
        self.dataset = dataset
        self.num_workers = num_workers
        self.collate = partial(collate_samples, keys=keys)
        self.stop = self.layout.usable_samples(len(dataset))
        if not isinstance(consumed_samples, int) or consumed_samples < 0 or consumed_samples % global_batch_size:
            raise TrainingDataError(
                f"training data: consumed_samples {consumed_samples!r} is not a step boundary (a multiple of "
                f"global_batch_size {global_batch_size}); resume from a checkpoint saved after an optimizer step"
            )
        if consumed_samples > self.stop:
            raise TrainingDataError(
                f"training data: consumed_samples {consumed_samples} is beyond the {self.stop} usable samples of "
                "the dataset; build the datasets with train_iters covering the whole run"
            )
        self._consumed = consumed_samples
        self._batches: Iterator[dict[str, Any]] | None = None

    @property
    def consumed_samples(self) -> int:
        """Samples consumed by all ranks together after the micro-batches yielded so far."""
        return self._consumed

    @property
    def micro_batches_per_step(self) -> int:
        return self.layout.micro_batches_per_step

    @property
    def steps_left(self) -> int:
        """Complete global batches still to come."""
        return (self.stop - self._consumed) // self.layout.global_batch_size

    def state_dict(self) -> dict[str, int]:
        """The resumable data position; only valid at a step boundary (after the optimizer step)."""
        if self._consumed % self.layout.global_batch_size:
            done = (self._consumed % self.layout.global_batch_size) // self.layout.samples_per_micro_step
            raise TrainingDataError(
                f"training data: state_dict() called {done} micro-batch(es) into a global batch; save the data "
                "position after the optimizer step, when a whole global batch is consumed"
            )
        return {"consumed_samples": self._consumed}

    def __iter__(self) -> MicroBatchIterator:
        return self

    def __next__(self) -> dict[str, Any]:
        if self._batches is None:
            self._batches = self._open()
        batch = next(self._batches)  # StopIteration ends the data
        self._consumed += self.layout.samples_per_micro_step
        return batch

    def _open(self) -> Iterator[dict[str, Any]]:
        sampler = _Sampler(self.layout, self.rank, self._consumed, self.stop)
        if self.num_workers == 0:
            return (self.collate([self.dataset[i] for i in indices]) for indices in sampler)
        from torch.utils.data import DataLoader

        loader = DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=self.collate,
            persistent_workers=False,
        )
        return iter(loader)
