"""load_blend_spec: validation of the input blend JSON and resolution of local paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nemotron.data.blend_spec import BlendSpec, DatasetSpec, load_blend_spec
from nemotron.data.errors import DataError

REPO = Path(__file__).resolve().parents[2]


def write_blend(tmp_path: Path, content, name: str = "blend.json") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def one(**entry) -> dict:
    return {"datasets": [{"name": "web", "path": "web.jsonl", "weight": 1.0, **entry}]}


def test_valid_blend_resolves_relative_paths_against_the_blend_file(tmp_path, monkeypatch):
    blends = tmp_path / "config" / "blends"
    path = write_blend(
        blends,
        {
            "datasets": [
                {"name": "web", "path": "../data/web.jsonl", "weight": 2},
                {"name": "code", "path": "code/*.parquet", "weight": 0.5, "text_field": "content"},
                {"name": "abs", "path": str(tmp_path / "abs.txt"), "weight": 1e-3},
            ]
        },
    )
    monkeypatch.chdir(tmp_path)  # paths must not depend on the working directory
    spec = load_blend_spec(path)
    assert isinstance(spec, BlendSpec)
    assert spec.source == path.resolve()
    assert [d.name for d in spec.datasets] == ["web", "code", "abs"]
    web, code, absolute = spec.datasets
    assert web == DatasetSpec(
        name="web", path=str((tmp_path / "config" / "data" / "web.jsonl").resolve()), weight=2.0, text_field="text"
    )
    assert isinstance(web.weight, float)
    assert code.path == str((blends / "code" / "*.parquet").resolve())
    assert code.text_field == "content"
    assert absolute.path == str((tmp_path / "abs.txt").resolve())
    assert not any(d.is_hub for d in spec.datasets)


def test_default_text_field_is_used_when_dataset_has_none(tmp_path):
    spec = load_blend_spec(write_blend(tmp_path, one()), default_text_field="body")
    assert spec.datasets[0].text_field == "body"
    spec = load_blend_spec(write_blend(tmp_path, one(text_field="content")), default_text_field="body")
    assert spec.datasets[0].text_field == "content"


def test_shipped_tiny_blend_is_valid():
    spec = load_blend_spec(REPO / "recipes/nano3/stage0_pretrain/data_blends/tiny.json")
    assert [d.name for d in spec.datasets] == ["python-tutorial", "python-library"]
    for dataset in spec.datasets:
        assert Path(dataset.path).is_file(), dataset.path
        assert Path(dataset.path).parent == (REPO / "recipes/nano3/assets/corpus-tiny").resolve()


def test_hf_paths_are_kept_as_is(tmp_path):
    path = write_blend(
        tmp_path,
        one(path="hf://HuggingFaceFW/fineweb-edu", split="validation", subset="sample-10BT"),
    )
    (dataset,) = load_blend_spec(path).datasets
    assert dataset.path == "hf://HuggingFaceFW/fineweb-edu"
    assert dataset.is_hub
    assert (dataset.split, dataset.subset) == ("validation", "sample-10BT")


def test_hub_defaults(tmp_path):
    (dataset,) = load_blend_spec(write_blend(tmp_path, one(path="hf://org/name"))).datasets
    assert (dataset.split, dataset.subset) == ("train", None)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist.*blend_path"):
        load_blend_spec(tmp_path / "nope.json")


def test_invalid_json(tmp_path):
    path = write_blend(tmp_path, '{"datasets": [ {"name": "web",, } ]}')
    with pytest.raises(DataError, match="not valid JSON") as err:
        load_blend_spec(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("content", [{"datasets": []}, {}, [], {"datasets": {"name": "web"}}, {"datasets": None}, "3"])
def test_empty_or_missing_datasets(tmp_path, content):
    with pytest.raises(DataError, match="non-empty list 'datasets'"):
        load_blend_spec(write_blend(tmp_path, content))


@pytest.mark.parametrize("weight", [0, 0.0, -1, -0.5, True, False, "1.0", None, [1]])
def test_bad_weights(tmp_path, weight):
    with pytest.raises(DataError, match=r"\(web\): 'weight' must be a number > 0"):
        load_blend_spec(write_blend(tmp_path, one(weight=weight)))


def test_nan_weight_is_rejected(tmp_path):
    path = write_blend(tmp_path, '{"datasets": [{"name": "web", "path": "w.jsonl", "weight": NaN}]}')
    with pytest.raises(DataError, match="'weight' must be a number > 0"):
        load_blend_spec(path)


def test_unknown_key(tmp_path):
    with pytest.raises(DataError) as err:
        load_blend_spec(write_blend(tmp_path, one(text_feild="body")))
    message = str(err.value)
    assert "datasets[0]" in message and "unknown key(s) text_feild" in message
    assert "allowed: name, path, split, subset, text_field, weight" in message


@pytest.mark.parametrize("key", ["name", "path", "weight"])
def test_missing_required_key(tmp_path, key):
    entry = {"name": "web", "path": "web.jsonl", "weight": 1.0}
    del entry[key]
    with pytest.raises(DataError, match=f"missing key '{key}'"):
        load_blend_spec(write_blend(tmp_path, {"datasets": [entry]}))


@pytest.mark.parametrize("name", ["", "-web", "web data", "a/b", 3, None])
def test_bad_dataset_names(tmp_path, name):
    with pytest.raises(DataError, match="'name' must be a string"):
        load_blend_spec(write_blend(tmp_path, one(name=name)))


@pytest.mark.parametrize("path", ["", 5, None])
def test_bad_paths(tmp_path, path):
    with pytest.raises(DataError, match="'path' must be a non-empty string"):
        load_blend_spec(write_blend(tmp_path, one(path=path)))


@pytest.mark.parametrize("field", ["", 3])
def test_bad_text_field(tmp_path, field):
    with pytest.raises(DataError, match="'text_field' must be a non-empty string"):
        load_blend_spec(write_blend(tmp_path, one(text_field=field)))


def test_entry_not_an_object(tmp_path):
    with pytest.raises(DataError, match=r"datasets\[1\]: expected an object"):
        load_blend_spec(write_blend(tmp_path, {"datasets": [{"name": "a", "path": "a", "weight": 1}, "b.jsonl"]}))


def test_duplicate_names(tmp_path):
    content = {
        "datasets": [
            {"name": "web", "path": "a.jsonl", "weight": 1},
            {"name": "code", "path": "b.jsonl", "weight": 1},
            {"name": "web", "path": "c.jsonl", "weight": 1},
            {"name": "code", "path": "d.jsonl", "weight": 1},
        ]
    }
    with pytest.raises(DataError, match="must be unique; repeated: code, web"):
        load_blend_spec(write_blend(tmp_path, content))


def test_error_names_the_entry_index(tmp_path):
    content = {"datasets": [{"name": "a", "path": "a", "weight": 1}, {"name": "b", "path": "b", "weight": -2}]}
    with pytest.raises(DataError, match=r"datasets\[1\] \(b\)"):
        load_blend_spec(write_blend(tmp_path, content))


def test_infinite_weight_is_rejected(tmp_path):
    path = write_blend(tmp_path, '{"datasets": [{"name": "web", "path": "w.jsonl", "weight": Infinity}]}')
    with pytest.raises(DataError, match="'weight' must be a number > 0"):
        load_blend_spec(path)
