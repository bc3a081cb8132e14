"""Job records: saved under NEMOTRON_HOME/jobs, listed newest first, found by name or job id."""

from __future__ import annotations

import json

import pytest

from nemotron.execution.errors import ExecutionError
from nemotron.execution.records import JobRecord, find_record, jobs_root, list_records, save_record


def record(name: str, job_id: str, submitted_at: str, **extra) -> JobRecord:
    return JobRecord(
        name=name,
        stage="nano3/data-prep-pretrain",
        backend=extra.pop("backend", "local"),
        profile=extra.pop("profile", None),
        job_id=job_id,
        submitted_at=submitted_at,
        job_dir=f"/jobs/{name}",
        log_dir=f"/jobs/{name}/logs",
        **extra,
    )


def test_jobs_root_is_under_nemotron_home(nemotron_home):
    assert jobs_root() == nemotron_home.resolve() / "jobs"


def test_save_and_round_trip(nemotron_home):
    saved = record(
        "job-a",
        "4242",
        "2026-01-02T03:04:05",
        backend="slurm",
        profile="gpu",
        details={"host": "login", "experiment_id": "x_1"},
    )
    path = save_record(saved)
    assert path == jobs_root() / "job-a" / "record.json"
    assert json.loads(path.read_text())["details"] == {"experiment_id": "x_1", "host": "login"}
    assert [p.name for p in path.parent.iterdir()] == ["record.json"]  # no temp file left
    assert list_records() == [saved]
    assert find_record("job-a") == saved
    assert find_record("4242") == saved


def test_overwrite_keeps_one_record(nemotron_home):
    save_record(record("job-a", "1", "2026-01-01T00:00:00"))
    save_record(record("job-a", "2", "2026-01-01T00:00:00"))
    assert [r.job_id for r in list_records()] == ["2"]


def test_list_is_newest_first(nemotron_home):
    save_record(record("old", "1", "2026-01-01T10:00:00"))
    save_record(record("newest", "3", "2026-03-01T10:00:00"))
    save_record(record("middle", "2", "2026-02-01T10:00:00"))
    save_record(record("middle-b", "4", "2026-02-01T10:00:00"))  # same second: ordered by name, descending
    assert [r.name for r in list_records()] == ["newest", "middle-b", "middle", "old"]


def test_empty_and_missing_home(nemotron_home):
    assert list_records() == []
    with pytest.raises(ExecutionError, match="recent jobs: none"):
        find_record("anything")


def test_unreadable_records_are_skipped(nemotron_home):
    save_record(record("good", "1", "2026-01-01T00:00:00"))
    broken = jobs_root() / "broken"
    broken.mkdir()
    (broken / "record.json").write_text("{not json")
    other_version = jobs_root() / "other"
    other_version.mkdir()
    (other_version / "record.json").write_text(json.dumps({"name": "other", "unexpected": 1}))
    (jobs_root() / "no-record").mkdir()
    assert [r.name for r in list_records()] == ["good"]


def test_find_by_name_or_id_prefers_newest(nemotron_home):
    save_record(record("a-old", "100", "2026-01-01T00:00:00"))
    save_record(record("a-new", "100", "2026-01-02T00:00:00"))  # ids can repeat (pids, clusters)
    assert find_record("100").name == "a-new"
    assert find_record("a-old").job_id == "100"


def test_unknown_key_lists_recent_jobs(nemotron_home):
    for i in range(7):
        save_record(record(f"job-{i}", str(1000 + i), f"2026-01-0{i + 1}T00:00:00"))
    with pytest.raises(ExecutionError) as err:
        find_record("job-99")
    message = str(err.value)
    assert "'job-99'" in message and str(jobs_root()) in message
    assert "recent jobs: job-6 (1006), job-5 (1005), job-4 (1004), job-3 (1003), job-2 (1002)" in message
    assert "job-1 " not in message and "job-0" not in message  # only the five newest


def test_partial_name_does_not_match(nemotron_home):
    save_record(record("nano3-data-prep-pretrain-20260101-000000-abcd", "55", "2026-01-01T00:00:00"))
    with pytest.raises(ExecutionError):
        find_record("nano3-data-prep")
    with pytest.raises(ExecutionError):
        find_record("5")
