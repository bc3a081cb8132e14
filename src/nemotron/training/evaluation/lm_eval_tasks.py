"""lm-evaluation-harness tasks on a model's Hugging Face export (the optional `eval` extra: lm-eval)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from nemotron.training.errors import TrainingError
from nemotron.training.evaluation.config import LmEvalSection

METRIC_PREFIX = "lm_eval"
INSTALL = "pip install 'nemotron[eval]' (or pip install lm-eval)"
TOKENIZER_FIX = "evaluate a model whose training recorded a local tokenizer folder, or set lm_eval.tasks=[]"


class LmEvalError(TrainingError):
    """lm-eval is missing or cannot run the configured tasks; the message names the setting and the fix."""


def task_manager(section: LmEvalSection) -> Any:
    """lm-eval's TaskManager with `include_path`; LmEvalError for a missing lm-eval or an unknown task."""
    try:
        from lm_eval.tasks import TaskManager
    except ImportError as err:
        raise LmEvalError(f"lm_eval.tasks is set but lm-eval cannot be imported ({err}); {INSTALL}") from None
    include = str(Path(section.include_path).expanduser()) if section.include_path else None
    return check_tasks(TaskManager(include_path=include), section)


def check_tasks(manager: Any, section: LmEvalSection) -> Any:
    """`manager` when it knows every task of `section`, else LmEvalError naming the unknown ones."""
    known = set(manager.all_tasks)
    unknown = [task for task in section.tasks if task not in known]
    if unknown:
        where = f" or in lm_eval.include_path {section.include_path}" if section.include_path else ""
        raise LmEvalError(
            f"lm_eval.tasks: lm-eval knows no task {', '.join(map(repr, unknown))} (among its own{where}); "
            "check the names (lm-eval ls tasks), or write a task YAML in lm_eval.include_path"
        )
    return manager


def run_tasks(hf_folder: Path, section: LmEvalSection, manager: Any, device: str) -> dict[str, float]:
    """Every numeric result of each task (and group) on the Hugging Face model in `hf_folder`, as
    `lm_eval/<task>/<metric>` (lm-eval's filter suffix `,none` dropped)."""
    from lm_eval import simple_evaluate

    output = simple_evaluate(
        model="hf",
        model_args={"pretrained": str(hf_folder), "dtype": "float32"},
        tasks=list(section.tasks),
        num_fewshot=section.num_fewshot,
        batch_size=section.batch_size,
        device=device,
        limit=section.limit,
        task_manager=manager,
        log_samples=False,
    )
    if output is None:  # only on non-zero ranks of a distributed lm-eval run, which this is not
        raise LmEvalError("lm-eval returned no results; run the eval stage as a single process")
    return task_metrics(output["results"])


def task_metrics(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """lm-eval's `results` (task -> {"acc,none": 0.5, "alias": ..., ...}) as flat finite metrics."""
    found: dict[str, float] = {}
    for task, values in results.items():
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                continue  # names, aliases, "N/A" standard errors
            metric, _, filter_name = str(key).partition(",")
            name = metric if filter_name in ("", "none") else f"{metric},{filter_name}"
            found[f"{METRIC_PREFIX}/{task}/{name}"] = float(value)
    return found
