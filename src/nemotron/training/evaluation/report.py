"""The eval report: per-model metrics and samples as JSON, and the table that sets the models side by side."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nemotron.artifacts.kinds import EvalMeta
from nemotron.atomic_write import write_text_atomic

REPORT_FILE = "eval_report.json"
MISSING = "-"  # a metric a model was not measured on
ANSWER_SHOWN = 100  # characters of a sample's answer printed (the report keeps all)
COUNTS = ("_tokens", "_prompts", "sample_len")  # metrics that count something: shown as integers


@dataclass(frozen=True)
class Sample:
    """One greedy answer to an RL prompt, with the expected answer and its verifier's reward."""

    prompt: str
    answer: str
    expected: str
    reward: float


@dataclass(frozen=True)
class ModelResult:
    """What was measured on one model: metric name -> value (e.g. pretrain_perplexity), and a few samples."""

    model: str  # the pinned model artifact ref, or the checkpoint folder
    checkpoint: str
    step: int
    metrics: dict[str, float]
    samples: tuple[Sample, ...] = ()


@dataclass(frozen=True)
class EvalReport:
    """Every model's results, the data artifacts they were measured on, and the settings of the measures."""

    run_name: str
    data: dict[str, str]  # measure -> pinned data artifact ref
    settings: dict[str, Any]
    models: tuple[ModelResult, ...]
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalReport:
        models = tuple(
            ModelResult(
                model=str(item["model"]),
                checkpoint=str(item["checkpoint"]),
                step=int(item["step"]),
                metrics={str(k): float(v) for k, v in item["metrics"].items()},
                samples=tuple(Sample(**sample) for sample in item.get("samples", ())),
            )
            for item in data["models"]
        )
        return cls(
            run_name=str(data["run_name"]),
            data=dict(data.get("data", {})),
            settings=dict(data.get("settings", {})),
            models=models,
            created_at=str(data.get("created_at", "")),
        )

    def metadata(self) -> EvalMeta:
        """What the eval artifact records of the report: models, data, every model's metrics, the settings."""
        return EvalMeta(
            models=[result.model for result in self.models],
            data=dict(self.data),
            metrics={result.model: dict(result.metrics) for result in self.models},
            settings=dict(self.settings),
            extra={"run_name": self.run_name},
        )


def write_report(report: EvalReport, path: Path) -> Path:
    """Write the report as JSON (atomically: a reader never sees half of it); returns `path`."""
    write_text_atomic(path, json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n")
    return path


def read_report(path: Path) -> EvalReport:
    return EvalReport.from_dict(json.loads(path.read_text(encoding="utf-8")))


def metric_names(results: Sequence[ModelResult]) -> list[str]:
    """Every metric of any model, in the order they were first measured."""
    names: dict[str, None] = {}
    for result in results:
        names.update(dict.fromkeys(result.metrics))
    return list(names)


def format_value(name: str, value: float | None) -> str:
    """A metric for the table: counts as integers, other values with 4 decimals (1 from 1,000 on)."""
    if value is None:
        return MISSING
    if math.isnan(value):
        return "nan"
    if name.endswith(COUNTS):
        return f"{int(value):,}"
    return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4f}"


def format_table(report: EvalReport) -> str:
    """Rows = metrics, columns = models in the configured order (e.g. base -> SFT -> RL), aligned with ` | `."""
    header = ["metric", *(result.model for result in report.models)]
    rows = [header]
    for name in metric_names(report.models):
        rows.append([name, *(format_value(name, result.metrics.get(name)) for result in report.models)])
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines = [" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


def format_samples(report: EvalReport) -> str:
    """Each model's samples, one line each: prompt end, answer, the expected answer and the reward."""
    lines = []
    for result in report.models:
        for sample in result.samples:
            answer = sample.answer if len(sample.answer) <= ANSWER_SHOWN else sample.answer[:ANSWER_SHOWN] + "..."
            lines.append(
                f"{result.model}: {sample.prompt[-60:]!r} -> {answer!r} "
                f"(expected {sample.expected!r}, reward {sample.reward:g})"
            )
    return "\n".join(lines)
