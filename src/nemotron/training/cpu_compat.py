"""Redirects the few CUDA-only calls of megatron-core 0.16.1 to the CPU when no GPU is present."""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import Any

import torch
from megatron.core import package_info
from megatron.core.fusions import fused_softmax
from megatron.core.pipeline_parallel import schedules
from megatron.core.tensor_parallel import random as mcore_random
from megatron.core.transformer import utils as transformer_utils

from nemotron.training.errors import TrainingError

# Deliberately not redirected: megatron's optimizer (get_megatron_optimizer, DistributedOptimizer,
# grad clipping), which asserts CUDA tensor types; on the CPU the training loop uses plain torch
# optimizers. Activation recomputation (tensor_parallel.checkpoint) also saves CUDA RNG states directly.
WRITTEN_FOR = "0.16.1"
_SUPPORTED_PREFIX = "0.16."
_CPU = torch.device("cpu")

_active = False


class CpuCompatError(TrainingError):
    """The CPU shim cannot run here (wrong megatron-core version or an unsupported RNG mode)."""


def check_megatron_version(version: str) -> None:
    """Raise unless `version` is a megatron-core 0.16.x release, the only line this shim was checked against."""
    if not version.startswith(_SUPPORTED_PREFIX):
        raise CpuCompatError(
            f"nemotron.training.cpu_compat was written for megatron-core {WRITTEN_FOR} but megatron-core "
            f"{version} is installed; install megatron-core=={WRITTEN_FOR} (as pyproject.toml pins) or "
            "re-check every redirect in this module against the new version before widening the pin"
        )


def is_active() -> bool:
    """Whether the redirects are installed in this process."""
    return _active


def enable_cpu_compat() -> bool:
    """Install the redirects once when CUDA is unavailable; True when they are active, False on a GPU machine.

    On a machine with CUDA nothing is touched. Calling it again is a no-op.
    """
    global _active
    if torch.cuda.is_available():
        return False
    check_megatron_version(package_info.__version__)
    if _active:
        return True
    # RotaryEmbedding.get_emb moves `inv_freq` to torch.cuda.current_device() on the first forward;
    # GlobalMemoryBuffer.get_tensor (the attention score buffer of DotProductAttention) allocates there;
    # weights built without use_cpu_initialization and the checkpoint savers' status tensors too.
    # Without CUDA the original can only raise, so answering "cpu" changes no code path that worked.
    torch.cuda.current_device = _cpu_current_device  # type: ignore[assignment]  # torch types it -> int (an index)
    # dist_checkpointing's FileSystemWriterAsync.preload_tensors (and the fully-parallel save strategy)
    # wait for device copies with torch.cuda.synchronize(); on the CPU there is nothing to wait for.
    torch.cuda.synchronize = _cpu_synchronize
    # FusedScaleMaskSoftmax.forward_torch_softmax builds the causal mask with
    # transformer.utils.get_default_causal_mask(sq), which allocates on device="cuda", whenever the
    # caller passes attention_mask=None. fused_softmax imported the function by name, so both
    # references are replaced.
    fused_softmax.get_default_causal_mask = _cpu_default_causal_mask
    transformer_utils.get_default_causal_mask = _cpu_default_causal_mask
    # tensor_parallel.random: model_parallel_cuda_manual_seed and get_cuda_rng_tracker both go through
    # initialize_rng_tracker, whose CudaRNGStatesTracker reads and writes CUDA generator states
    # (add: torch.cuda.get_rng_state; fork: _get/_set_cuda_rng_state). The replacement installs a
    # tracker that keeps the same named states as CPU generator states.
    mcore_random.initialize_rng_tracker = _initialize_cpu_rng_tracker
    # The forward-backward schedules count tokens in torch.zeros([], dtype=torch.int, device="cuda");
    # the schedules module alone sees a torch whose zeros() puts such tensors on the CPU.
    schedules.torch = _TorchWithCpuZeros("torch")
    if mcore_random._CUDA_RNG_STATE_TRACKER_INITIALIZED and not isinstance(
        mcore_random._CUDA_RNG_STATE_TRACKER, CpuRNGStatesTracker
    ):
        _initialize_cpu_rng_tracker(force_reset=True)
    _active = True
    return True


def _cpu_current_device() -> torch.device:
    """Stands in for torch.cuda.current_device(): the CPU."""
    return _CPU


def _cpu_synchronize(device: object = None) -> None:
    """Stands in for torch.cuda.synchronize(): CPU work is already complete."""


def _cpu_default_causal_mask(sq: int) -> torch.Tensor:
    """The [sq, sq] causal mask (True above the diagonal = masked out), built on the CPU."""
    return torch.ones(sq, sq, dtype=torch.bool).triu(diagonal=1)


class _TorchWithCpuZeros(types.ModuleType):
    """torch as the pipeline schedules see it: `zeros(..., device="cuda")` allocates on the CPU."""

    def __getattr__(self, name: str) -> object:
        return getattr(torch, name)

    @staticmethod
    def zeros(*size: Any, device: Any = None, **kwargs: Any) -> torch.Tensor:
        if device is not None and str(device).startswith("cuda"):
            device = _CPU
        return torch.zeros(*size, device=device, **kwargs)


class CpuRNGStatesTracker(mcore_random.CudaRNGStatesTracker):
    """Megatron's named RNG states, kept as CPU generator states; `fork` swaps the default CPU generator."""

    def add(self, name: str, seed: int) -> None:
        """Track a new named state seeded with `seed`, leaving the default generator untouched."""
        if seed in self.seeds_:
            raise CpuCompatError(f"RNG seed {seed} is already tracked")
        if name in self.states_:
            raise CpuCompatError(f"RNG state {name!r} is already tracked")
        self._is_initialized = True
        self.seeds_.add(seed)
        generator = torch.Generator(device="cpu")
        generator.manual_seed(seed)
        self.states_[name] = generator.get_state()

    @contextlib.contextmanager
    def fork(self, name: str = mcore_random._MODEL_PARALLEL_RNG_TRACKER_NAME) -> Iterator[None]:
        """Run the block with the named state as the CPU generator state, then restore the outer one."""
        if name not in self.states_:
            raise CpuCompatError(f"RNG state {name!r} is not tracked; seed it first (model_parallel_cuda_manual_seed)")
        outer = torch.get_rng_state()
        torch.set_rng_state(self.states_[name])
        try:
            yield
        finally:
            self.states_[name] = torch.get_rng_state()
            torch.set_rng_state(outer)


def _initialize_cpu_rng_tracker(
    use_te_rng_tracker: bool = False,
    inference_rng_tracker: bool = False,
    use_cudagraphable_rng: bool = False,
    force_reset: bool = False,
) -> None:
    """Stands in for tensor_parallel.random.initialize_rng_tracker: installs a CpuRNGStatesTracker."""
    unsupported = {
        "use_te_rng_tracker": use_te_rng_tracker,
        "inference_rng_tracker": inference_rng_tracker,
        "use_cudagraphable_rng": use_cudagraphable_rng,
    }
    wanted = [key for key, value in unsupported.items() if value]
    if wanted:
        raise CpuCompatError(
            f"the CPU shim supports only megatron's plain training RNG tracker, not {', '.join(wanted)}; "
            "leave these options off on the CPU"
        )
    if force_reset or not mcore_random._CUDA_RNG_STATE_TRACKER_INITIALIZED:
        mcore_random._CUDA_RNG_STATE_TRACKER = CpuRNGStatesTracker()
        mcore_random._CUDA_RNG_STATE_TRACKER_INITIALIZED = True
