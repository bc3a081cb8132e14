"""One line of what a stage's published artifact holds, for the table a pipe prints at its end."""

from __future__ import annotations

from typing import Any

from nemotron.artifacts import Artifact, ArtifactKind
from nemotron.counts import human_count


def artifact_summary(artifact: Artifact) -> tuple[str, str]:
    """(tokens, result) of an artifact: the tokens a data artifact holds or a model was trained on, and its
    final loss (models), its records (SFT/RL data) or its headline measure (eval)."""
    meta: dict[str, Any] = artifact.metadata
    if artifact.kind is ArtifactKind.PRETRAIN_DATA:
        total = sum(int(split.get("tokens", 0)) for split in meta.get("splits", {}).values() if isinstance(split, dict))
        return _count(total), f"{len(meta.get('splits', {}))} splits"
    if artifact.kind in (ArtifactKind.SFT_DATA, ArtifactKind.RL_DATA):
        return _count(meta.get("tokens")), f"{meta.get('records', '?')} records"
    if artifact.kind is ArtifactKind.MODEL_CHECKPOINT:
        loss = meta.get("loss")
        result = f"step {meta.get('step', '?')}" + (f", loss {loss:.4g}" if isinstance(loss, int | float) else "")
        return _count(meta.get("tokens_seen")), result + _held_out(meta.get("evaluation"))
    return "-", _eval_headline(meta)  # ArtifactKind.EVAL


def _held_out(evaluation: Any) -> str:
    """ ", held-out 70% -> 80%": the greedy held-out score an SFT (exact match) or RL (accuracy) run measured
    before and after training."""
    if not isinstance(evaluation, dict):
        return ""
    for key in ("accuracy", "exact_match"):
        after, before = evaluation.get(key), evaluation.get(f"{key}_at_start")
        if isinstance(after, int | float):
            start = f"{before:.0%} -> " if isinstance(before, int | float) else ""
            return f", held-out {start}{after:.0%}"
    return ""


def _eval_headline(meta: dict[str, Any]) -> str:
    """The greedy RL accuracy (else the first measure) of each evaluated model, in the report's order."""
    metrics: dict[str, dict[str, float]] = meta.get("metrics", {})
    parts = []
    for model, values in metrics.items():
        key = "rl_greedy_accuracy" if "rl_greedy_accuracy" in values else next(iter(sorted(values)), None)
        if key is not None:
            parts.append(f"{model.split(':')[0]} {key}={values[key]:.3g}")
    return "; ".join(parts) or f"{len(meta.get('models', []))} models"


def _count(value: Any) -> str:
    """A metadata count as a short number; '-' when the metadata has none."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    return human_count(value)
