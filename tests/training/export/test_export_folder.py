"""The export folder is checked before any checkpoint is loaded; --overwrite replaces only an earlier export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nemotron.artifacts import FileRegistry
from nemotron.training.export.from_checkpoint import export_checkpoint_hf
from nemotron.training.export.hf import METADATA_FILE, ExportError, check_out_dir


def earlier_export(folder: Path) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "tokenizer.json").write_text("{}")
    (folder / METADATA_FILE).write_text(json.dumps({"exporter": "nemotron.training.export.hf"}))
    return folder


def test_a_non_empty_folder_is_refused_before_the_checkpoint_is_read(tmp_path):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    registry = FileRegistry(tmp_path / "artifacts")
    with pytest.raises(ExportError) as caught:  # the checkpoint does not exist either: the folder is checked first
        export_checkpoint_hf("nano3-pretrain-tiny:latest", out, registry)
    message = str(caught.value)
    assert f"export folder {out} is not empty" in message and "notes.txt" in message
    assert "overwrite=True" not in message


def test_overwrite_refuses_a_folder_that_is_not_an_earlier_export(tmp_path):
    out = tmp_path / "hf"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match=r"is not an earlier export \(it holds notes\.txt\).*--overwrite replaces"):
        check_out_dir(out, overwrite=True)
    assert (out / "notes.txt").read_text() == "keep me"


def test_an_earlier_export_needs_overwrite_and_then_is_replaceable(tmp_path):
    out = earlier_export(tmp_path / "hf")
    with pytest.raises(ExportError, match=r"holds an earlier export; choose another folder or pass --overwrite"):
        check_out_dir(out, overwrite=False)
    check_out_dir(out, overwrite=True)  # no error


def test_an_earlier_export_with_other_files_is_refused(tmp_path):
    out = earlier_export(tmp_path / "hf")
    (out / "README.md").write_text("mine")
    with pytest.raises(ExportError, match=r"README\.md"):
        check_out_dir(out, overwrite=True)
    (out / "README.md").unlink()
    (out / METADATA_FILE).unlink()  # without our marker it is not ours
    with pytest.raises(ExportError, match="is not an earlier export"):
        check_out_dir(out, overwrite=True)


def test_an_empty_or_absent_folder_is_fine(tmp_path):
    check_out_dir(tmp_path / "new", overwrite=False)
    (tmp_path / "empty").mkdir()
    check_out_dir(tmp_path / "empty", overwrite=False)
