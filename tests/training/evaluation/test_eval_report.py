"""The eval report: JSON round trip, the eval artifact's metadata, and the side-by-side table."""

from __future__ import annotations

import json

from nemotron.artifacts import ArtifactKind, parse_metadata
from nemotron.training.evaluation.report import (
    EvalReport,
    ModelResult,
    Sample,
    format_samples,
    format_table,
    format_value,
    read_report,
    write_report,
)

REPORT = EvalReport(
    run_name="nano3-eval-tiny",
    data={"pretrain": "nano3-pretrain-data-tiny:v1", "rl": "nano3-rl-data-tiny:v1"},
    settings={"perplexity": {"split": "test", "batches": 2}},
    models=(
        ModelResult(
            "nano3-pretrain-tiny:v1",
            "/r/base/iter_0000300",
            300,
            {"pretrain_loss": 5.10612, "pretrain_perplexity": 165.0234, "pretrain_tokens": 16384.0},
        ),
        ModelResult(
            "nano3-sft-tiny:v1",
            "/r/sft/iter_0001000",
            1000,
            {"pretrain_loss": 5.5, "pretrain_perplexity": 244.69, "pretrain_tokens": 16384.0}
            | {"rl_greedy_accuracy": 0.6875},
            samples=(Sample("user\nWhat is 2 + 3?\nassistant\n", "2+3=5<|im_end|>", "5", 1.0),),
        ),
    ),
    created_at="2026-12-02T00:00:00+00:00",
)


def test_the_report_round_trips_through_json(tmp_path):
    path = write_report(REPORT, tmp_path / "eval_report.json")
    assert read_report(path) == REPORT
    assert json.loads(path.read_text())["models"][1]["samples"][0]["expected"] == "5"


def test_the_artifact_metadata_keeps_the_models_order_and_every_metric():
    meta = REPORT.metadata()
    assert meta.models == ["nano3-pretrain-tiny:v1", "nano3-sft-tiny:v1"]
    assert meta.metrics["nano3-sft-tiny:v1"]["rl_greedy_accuracy"] == 0.6875
    stored = json.loads(json.dumps(meta.to_dict(), sort_keys=True))  # as artifact.json stores it
    assert parse_metadata(ArtifactKind.EVAL, stored, where="test") == meta


def test_the_table_sets_the_models_side_by_side_one_metric_a_row():
    assert format_table(REPORT).splitlines() == [
        "metric              | nano3-pretrain-tiny:v1 | nano3-sft-tiny:v1",
        "--------------------+------------------------+------------------",
        "pretrain_loss       | 5.1061                 | 5.5000",
        "pretrain_perplexity | 165.0234               | 244.6900",
        "pretrain_tokens     | 16,384                 | 16,384",
        "rl_greedy_accuracy  | -                      | 0.6875",
    ]


def test_values_are_shown_by_kind():
    assert format_value("rl_prompts", 64.0) == "64"
    assert format_value("lm_eval/arc/sample_len", 3.0) == "3"
    assert format_value("pretrain_perplexity", 8512.3) == "8,512.3"
    assert format_value("sft_loss", float("nan")) == "nan"
    assert format_value("sft_loss", None) == "-"


def test_samples_name_their_model():
    assert format_samples(REPORT) == (
        "nano3-sft-tiny:v1: 'user\\nWhat is 2 + 3?\\nassistant\\n' -> '2+3=5<|im_end|>' (expected '5', reward 1)"
    )
