"""iter_documents / resolve_files: every supported input format, and clear errors for bad input."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from nemotron.data.blend_spec import DatasetSpec
from nemotron.data.errors import DataError
from nemotron.data.sources import iter_documents, resolve_files


def spec(path, text_field: str = "text", name: str = "ds") -> DatasetSpec:
    return DatasetSpec(name=name, path=str(path), weight=1.0, text_field=text_field)


def texts(dataset: DatasetSpec) -> list[str]:
    return [d.text for d in iter_documents(dataset)]


def write_jsonl(path: Path, records, field: str = "text") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r if isinstance(r, dict) else {field: r}) for r in records]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_jsonl(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(
        json.dumps({"text": "first doc", "id": 1})
        + "\n\n"  # blank lines are skipped
        + json.dumps({"text": "second\ndoc with ünïcode ✓"})
        + "\n   \n"
        + json.dumps({"text": None})  # null text is an empty document
        + "\n"
    )
    docs = list(iter_documents(spec(path)))
    assert [d.text for d in docs] == ["first doc", "second\ndoc with ünïcode ✓", ""]
    assert [d.origin for d in docs] == [f"{path}:1", f"{path}:3", f"{path}:5"]


def test_custom_text_field(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"content": "x", "text": "ignored"}])
    assert texts(spec(path, text_field="content")) == ["x"]


def test_jsonl_gz(tmp_path):
    path = tmp_path / "a.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for i in range(3):
            handle.write(json.dumps({"text": f"doc {i} é"}) + "\n")
    docs = list(iter_documents(spec(path)))
    assert [d.text for d in docs] == ["doc 0 é", "doc 1 é", "doc 2 é"]
    assert docs[2].origin == f"{path}:3"


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "a.parquet"
    table = pa.table({"id": list(range(2500)), "content": [f"row {i}" if i % 1000 else None for i in range(2500)]})
    pq.write_table(table, path, row_group_size=700)  # several row groups and read batches
    docs = list(iter_documents(spec(path, text_field="content")))
    assert len(docs) == 2500
    assert docs[1].text == "row 1" and docs[2499].text == "row 2499"
    assert docs[0].text == "" and docs[1000].text == ""  # nulls become empty documents
    assert docs[1234].origin == f"{path}:row 1235"


def test_parquet_missing_column_lists_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"id": [1], "content": ["x"]}), path)
    with pytest.raises(DataError, match="no column 'text'; columns: id, content"):
        list(iter_documents(spec(path)))


def test_parquet_non_string_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"text": [1, 2]}), path)
    with pytest.raises(DataError, match=r"a.parquet:row 1: field 'text' must be a string, got int"):
        list(iter_documents(spec(path)))


def test_txt_is_one_document(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("line one\nline two\n", encoding="utf-8")
    docs = list(iter_documents(spec(path)))
    assert [(d.text, d.origin) for d in docs] == [("line one\nline two\n", str(path))]


def test_txt_gz_and_markdown(tmp_path):
    gz = tmp_path / "a.txt.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as handle:
        handle.write("gz text")
    md = tmp_path / "b.md"
    md.write_text("# title")
    assert texts(spec(tmp_path)) == ["gz text", "# title"]


def test_directory_input_sorted_and_hidden_skipped(tmp_path):
    data = tmp_path / "data"
    write_jsonl(data / "b.jsonl", ["b1", "b2"])
    write_jsonl(data / "a.jsonl", ["a1"])
    (data / "c.txt").write_text("c")
    (data / ".hidden.jsonl").write_text("not json at all\n")
    (data / "sub").mkdir()
    write_jsonl(data / "sub" / "nested.jsonl", ["nested"])  # directories are not recursed into
    assert [p.name for p in resolve_files(spec(data))] == ["a.jsonl", "b.jsonl", "c.txt"]
    assert texts(spec(data)) == ["a1", "b1", "b2", "c"]


def test_glob_input(tmp_path):
    write_jsonl(tmp_path / "shard-002.jsonl", ["s2"])
    write_jsonl(tmp_path / "shard-001.jsonl", ["s1"])
    write_jsonl(tmp_path / "other.jsonl", ["other"])
    write_jsonl(tmp_path / "deep" / "x" / "shard-003.jsonl", ["s3"])
    assert texts(spec(tmp_path / "shard-*.jsonl")) == ["s1", "s2"]
    assert texts(spec(tmp_path / "**" / "shard-*.jsonl")) == ["s3", "s1", "s2"]  # sorted by full path


def test_mixed_formats_in_directory(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_jsonl(tmp_path / "a.jsonl", ["json"])
    pq.write_table(pa.table({"text": ["parquet"]}), tmp_path / "b.parquet")
    (tmp_path / "c.txt").write_text("text")
    assert texts(spec(tmp_path)) == ["json", "parquet", "text"]


def test_unsupported_file_type(tmp_path):
    (tmp_path / "data.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported file type .*data.csv"):
        list(iter_documents(spec(tmp_path)))


def test_invalid_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"text": "fine"}\n{"text": oops}\n')
    docs = iter_documents(spec(path))
    assert next(docs).text == "ok"  # streaming: earlier lines are yielded before the error
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}:3: not a valid UTF-8 JSON line"):
        list(docs)


def test_invalid_json_line_in_gz_names_line(tmp_path):
    path = tmp_path / "bad.jsonl.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b'{"text": "ok"}\n{broken\n')
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}:2: not a valid UTF-8 JSON line"):
        list(iter_documents(spec(path)))


def test_non_utf8_bytes_in_jsonl(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}:2: not a valid UTF-8 JSON line"):
        list(iter_documents(spec(path)))


def test_non_utf8_bytes_in_txt(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"caf\xe9\n")
    with pytest.raises(DataError, match="latin1.txt"):
        list(iter_documents(spec(path)))


@pytest.mark.parametrize(("value", "type_name"), [(5, "int"), (["a"], "list"), ({"x": 1}, "dict"), (True, "bool")])
def test_text_field_not_a_string(tmp_path, value, type_name):
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": "fine"}, {"text": value}])
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}:2: field 'text' must be a string, got {type_name}"):
        list(iter_documents(spec(path)))


def test_missing_text_field_lists_fields(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"content": "x", "url": "u", "id": 3}])
    with pytest.raises(DataError) as err:
        list(iter_documents(spec(path)))
    message = str(err.value)
    assert message.startswith(f"{path}:1: no field 'text'")
    assert "fields: content, url, id" in message
    assert "text_field" in message


def test_json_line_not_an_object(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('["text", "x"]\n')
    with pytest.raises(DataError, match=rf"{re.escape(str(path))}:1: expected a JSON object with a 'text' field"):
        list(iter_documents(spec(path)))


def test_no_files_at_path(tmp_path):
    with pytest.raises(DataError, match="dataset web: no input files at .*missing.jsonl"):
        resolve_files(spec(tmp_path / "missing.jsonl", name="web"))
    with pytest.raises(DataError, match="no input files"):
        list(iter_documents(spec(tmp_path / "*.parquet")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no input files"):
        list(iter_documents(spec(tmp_path / "empty")))
