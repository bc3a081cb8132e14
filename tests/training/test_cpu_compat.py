"""The CPU shim: version pin, idempotence, no-op on GPU machines, and each redirect against real megatron-core."""

from __future__ import annotations

import pytest
import torch
from megatron.core import package_info
from megatron.core.fusions import fused_softmax
from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding
from megatron.core.tensor_parallel import random as mcore_random
from megatron.core.transformer.enums import AttnMaskType
from megatron.core.transformer.utils import attention_mask_func
from megatron.core.utils import GlobalMemoryBuffer

from nemotron.training import cpu_compat
from nemotron.training.cpu_compat import CpuCompatError, CpuRNGStatesTracker, enable_cpu_compat

needs_cpu_only = pytest.mark.skipif(torch.cuda.is_available(), reason="the shim is inactive where CUDA exists")


@pytest.mark.parametrize("version", ["0.16.1", "0.16.0", "0.16.2rc1"])
def test_version_pin_accepts_the_0_16_line(version):
    assert cpu_compat.check_megatron_version(version) is None  # raises CpuCompatError for any other line


@pytest.mark.parametrize("version", ["0.17.0", "0.15.3", "1.16.1", "0.1.6"])
def test_version_pin_rejects_other_versions(version):
    with pytest.raises(CpuCompatError, match=r"written for megatron-core 0\.16\.1") as err:
        cpu_compat.check_megatron_version(version)
    assert version in str(err.value)
    assert "megatron-core==0.16.1" in str(err.value)


@needs_cpu_only
def test_enable_refuses_an_unpinned_installed_version(monkeypatch):
    monkeypatch.setattr(package_info, "__version__", "0.17.0")
    with pytest.raises(CpuCompatError, match="0.17.0"):
        enable_cpu_compat()


def test_enable_does_nothing_when_cuda_is_available(monkeypatch):
    def sentinel():
        raise AssertionError("the sentinel must stay in place, never be called")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", sentinel)
    monkeypatch.setattr(cpu_compat, "_active", False)
    original_tracker_init = mcore_random.initialize_rng_tracker
    original_mask = fused_softmax.get_default_causal_mask

    assert enable_cpu_compat() is False
    assert torch.cuda.current_device is sentinel
    assert mcore_random.initialize_rng_tracker is original_tracker_init
    assert fused_softmax.get_default_causal_mask is original_mask
    assert cpu_compat.is_active() is False


@needs_cpu_only
def test_enable_is_idempotent():
    assert enable_cpu_compat() is True
    patched = (torch.cuda.current_device, torch.cuda.synchronize, mcore_random.initialize_rng_tracker)
    assert enable_cpu_compat() is True
    assert (torch.cuda.current_device, torch.cuda.synchronize, mcore_random.initialize_rng_tracker) == patched
    assert cpu_compat.is_active()


@needs_cpu_only
def test_current_device_redirect_serves_megatron_buffers_and_rope():
    enable_cpu_compat()
    assert torch.cuda.current_device() == torch.device("cpu")
    torch.cuda.synchronize()  # a no-op now; raises on a CPU-only torch without the shim

    buffer = GlobalMemoryBuffer().get_tensor((2, 3), torch.float32, "scores")
    assert buffer.shape == (2, 3) and buffer.device.type == "cpu"

    rope = RotaryEmbedding(kv_channels=8, rotary_percent=1.0, use_cpu_initialization=True)
    emb = rope.get_emb(5)
    assert emb.device.type == "cpu"
    assert emb.shape == (5, 1, 1, 8)


@needs_cpu_only
def test_default_causal_mask_redirect_masks_the_future():
    enable_cpu_compat()
    softmax = fused_softmax.FusedScaleMaskSoftmax(
        input_in_fp16=False,
        input_in_bf16=False,
        attn_mask_type=AttnMaskType.causal,
        scaled_masked_softmax_fusion=False,
        mask_func=attention_mask_func,
        softmax_in_fp32=True,
        scale=None,
    )
    scores = torch.randn(1, 2, 4, 4)
    probs = softmax(scores, None)  # no mask passed: megatron builds the default causal mask
    assert probs.device.type == "cpu"
    future = torch.ones(4, 4, dtype=torch.bool).triu(diagonal=1)
    assert torch.all(probs[..., future] == 0)
    assert torch.all(probs[..., ~future] > 0)
    torch.testing.assert_close(probs.sum(-1), torch.ones(1, 2, 4))


@needs_cpu_only
def test_rng_tracker_keeps_named_cpu_states_and_restores_the_default_one():
    enable_cpu_compat()
    mcore_random.model_parallel_cuda_manual_seed(123, tp_rank=0, ep_rank=0, etp_rank=0)
    tracker = mcore_random.get_cuda_rng_tracker()
    assert isinstance(tracker, CpuRNGStatesTracker)
    assert set(mcore_random.get_all_rng_states()) == {
        "data-parallel-rng",
        "model-parallel-rng",
        "expert-parallel-rng",
    }

    torch.manual_seed(0)
    outside_before = torch.get_rng_state()
    with tracker.fork():
        first = torch.rand(4)
    assert torch.equal(torch.get_rng_state(), outside_before), "fork must restore the default generator"
    with tracker.fork():
        second = torch.rand(4)
    assert not torch.equal(first, second), "the named state must advance between forks"

    mcore_random.model_parallel_cuda_manual_seed(123, tp_rank=0, ep_rank=0, etp_rank=0)
    with mcore_random.get_cuda_rng_tracker().fork():
        again = torch.rand(4)
    assert torch.equal(first, again), "the same seed must replay the same stream"

    mcore_random.model_parallel_cuda_manual_seed(123, tp_rank=1, ep_rank=0, etp_rank=0)
    with mcore_random.get_cuda_rng_tracker().fork():
        other_rank = torch.rand(4)
    assert not torch.equal(first, other_rank), "tensor-parallel ranks get different model-parallel streams"


@needs_cpu_only
def test_enable_replaces_a_cuda_tracker_created_before_it(monkeypatch):
    monkeypatch.setattr(cpu_compat, "_active", False)
    monkeypatch.setattr(mcore_random, "_CUDA_RNG_STATE_TRACKER", mcore_random.CudaRNGStatesTracker())
    monkeypatch.setattr(mcore_random, "_CUDA_RNG_STATE_TRACKER_INITIALIZED", True)
    enable_cpu_compat()
    assert isinstance(mcore_random.get_cuda_rng_tracker(), CpuRNGStatesTracker)


@needs_cpu_only
@pytest.mark.parametrize("option", ["use_te_rng_tracker", "inference_rng_tracker", "use_cudagraphable_rng"])
def test_rng_modes_without_a_cpu_equivalent_are_refused(option):
    enable_cpu_compat()
    with pytest.raises(CpuCompatError, match=option):
        mcore_random.get_cuda_rng_tracker(**{option: True})
