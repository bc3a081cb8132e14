"""LoRA's settings and adapter key names, without torch (the config schema and launch preflight import them)."""

from __future__ import annotations

from dataclasses import dataclass

LORA_TARGETS = ("linear_qkv", "linear_proj", "linear_fc1", "linear_fc2")
COLUMN_PARALLEL = ("linear_qkv", "linear_fc1")
ADAPTER_SUFFIXES = (".lora_a", ".lora_b")


@dataclass(frozen=True)
class LoraSettings:
    """Adapter rank, scale (alpha / rank), input dropout, and which linear layers get adapters."""

    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = LORA_TARGETS

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


def is_adapter_key(key: str) -> bool:
    """A checkpoint/state-dict key of an adapter tensor (`...lora_a` / `...lora_b`)."""
    return key.endswith(ADAPTER_SUFFIXES)
