"""lm-eval on a model's Hugging Face export, with a task of local files (no hub): its accuracy is megatron's."""

from __future__ import annotations

import json

import pytest
import torch
from eval_artifacts import MODEL, TOKENIZER_DIR, VOCAB, random_model, save_model

from nemotron.artifacts import FileRegistry
from nemotron.training.evaluation.config import LmEvalSection
from nemotron.training.evaluation.inputs import resolve_model

pytest.importorskip("lm_eval", reason="lm-eval is not installed (pip install 'nemotron[eval]')")

TASK = "nemotron_test_choice"
QUESTIONS = [
    "What is 2 + 2?",
    "Which module reads JSON?",
    "What is 17 - 9?",
    "Where does print write?",
    "What is 6 times 7?",
    "Which keyword defines a function?",
]
CHOICES = ["four", "json", "eight", "stdout", "forty two", "def", "pathlib", "nine", "class", "lambda"]


def loglikelihoods(model: torch.nn.Module, tokenizer, context: str, choices: list[str]) -> list[float]:
    """log p(" " + choice | context) by the megatron model, tokenized as lm-eval's HFLM does (whole, then split)."""
    context_ids = tokenizer.encode(context)
    found = []
    for choice in choices:
        ids = tokenizer.encode(context + " " + choice)
        tokens = torch.tensor([ids[:-1]])
        with torch.no_grad():
            logits = model(tokens, torch.arange(tokens.shape[1])[None], None)[0, :, :VOCAB].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        continuation = range(len(context_ids), len(ids))
        found.append(sum(float(logprobs[position - 1, ids[position]]) for position in continuation))
    return found


def write_task(folder, documents: list[dict]) -> None:
    """A multiple-choice task over a local JSONL file (its datasets cache in the folder too)."""
    data = folder / "docs.jsonl"
    data.write_text("".join(json.dumps(doc) + "\n" for doc in documents))
    task = {
        "task": TASK,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}, "cache_dir": str(folder / "datasets-cache")},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": "{{question}}",
        "doc_to_choice": "{{choices}}",
        "doc_to_target": "{{answer}}",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
    }
    (folder / f"{TASK}.yaml").write_text(json.dumps(task, indent=2))  # JSON is YAML


def test_a_local_task_scores_the_export_as_megatron_does(dist, tokenizer, tmp_path, monkeypatch):
    from nemotron.training.evaluation.lm_eval_tasks import LmEvalError, check_tasks, run_tasks, task_manager
    from nemotron.training.export.from_checkpoint import export_loaded_hf

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    model = random_model(5)
    documents, expected = [], 0
    for index, question in enumerate(QUESTIONS):
        choices = CHOICES[index : index + 3]
        scores = loglikelihoods(model, tokenizer, question, choices)
        ranked = sorted(range(3), key=lambda i: scores[i], reverse=True)
        assert scores[ranked[0]] - scores[ranked[1]] > 1e-3, "a clear best choice (the test's assumption)"
        answer = ranked[0] if index < 4 else ranked[2]  # four right, two wrong
        expected += answer == ranked[0]
        documents.append({"question": question, "choices": choices, "answer": answer})
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    write_task(tasks, documents)

    section = LmEvalSection(tasks=(TASK,), include_path=str(tasks), batch_size=2)
    manager = task_manager(section)
    with pytest.raises(LmEvalError, match=r"knows no task 'no_such_task' .* lm_eval.include_path"):
        check_tasks(manager, LmEvalSection(tasks=(TASK, "no_such_task"), include_path=str(tasks)))
    info = save_model(model, tmp_path / "run")
    source = resolve_model(str(info.path), FileRegistry(tmp_path / "artifacts"))
    assert source.tokenizer_dir == TOKENIZER_DIR
    hf = export_loaded_hf(
        model, MODEL, info, source.label, tmp_path / "hf", tokenizer_dir=source.tokenizer_dir, dtype="float32"
    )
    metrics = run_tasks(hf, section, manager, "cpu")
    assert metrics[f"lm_eval/{TASK}/acc"] == pytest.approx(expected / len(QUESTIONS)) and expected == 4
    assert metrics[f"lm_eval/{TASK}/sample_len"] == len(QUESTIONS)
    assert all(name.startswith(f"lm_eval/{TASK}/") for name in metrics)
