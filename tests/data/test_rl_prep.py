"""RL data prep: prompt records parsed, rendered with the generation prompt, split, counted, bad ones reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from nemotron.data.errors import DataError
from nemotron.data.rl_records import VerifierCheck, parse_prompt_record, render_prompt
from nemotron.data.splits import SPLITS, SplitFractions

REPO = Path(__file__).resolve().parents[2]
TINY_TOKENIZER = REPO / "recipes/nano3/assets/tokenizer-tiny"
STAGE = "data_prep_rl"
USER = {"role": "user", "content": "What is 47 + 38?"}
REPLY = {"role": "assistant", "content": "7+8=15, 4+3+1=8, so 47+38=85"}


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(TINY_TOKENIZER))


@pytest.fixture(scope="module")
def template():
    from nemotron.data.chat_template import load_chat_template

    return load_chat_template("nano3", str(TINY_TOKENIZER))


def test_the_prompt_is_the_conversation_without_its_last_reply():
    system = {"role": "system", "content": "Be brief."}
    record = parse_prompt_record({"messages": [system, USER, REPLY], "expected_answer": "85"}, "exact_match")
    assert not isinstance(record, str)
    assert record.messages == [system, USER] and record.expected_answer == "85"
    assert record.verifier == "exact_match" and record.metadata == {}
    turns = [USER, REPLY, {"role": "user", "content": "And 1 + 1?"}]  # no reply to its last question
    record = parse_prompt_record({"messages": turns, "expected_answer": "2", "verifier": "math"}, "exact_match")
    assert not isinstance(record, str) and record.messages == turns and record.verifier == "math"


def test_a_question_is_one_user_turn_and_a_number_answer_its_text():
    record = parse_prompt_record({"question": "What is 47 + 38?", "expected_answer": 85, "metadata": {"k": 1}}, "x")
    assert not isinstance(record, str)
    assert record.messages == [USER] and record.expected_answer == "85" and record.metadata == {"k": 1}
    assert record.verifier == "x"  # the default verifier


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ([1, 2], "the record is a JSON list, not an object"),
        (
            {"expected_answer": "1", "text": "hi"},
            "no prompt: neither 'messages' nor 'question' (keys: 'expected_answer'",
        ),
        ({"messages": [], "expected_answer": "1"}, "no prompt: 'messages' is empty"),
        ({"messages": [REPLY], "expected_answer": "1"}, "no prompt: 'messages' holds only an assistant turn"),
        ({"messages": "hi", "expected_answer": "1"}, "'messages' is a str, not a list"),
        ({"messages": [{"role": "wizard", "content": "hi"}], "expected_answer": "1"}, "messages[0]: unknown role"),
        ({"messages": [{"role": "user"}], "expected_answer": "1"}, "messages[0]: user message has no 'content'"),
        ({"messages": [USER, REPLY, REPLY], "expected_answer": "1"}, "last turn, messages[1], is 'assistant'; it must"),
        (
            {"messages": [{"role": "system", "content": "x"}], "expected_answer": "1"},
            "messages[0], is 'system'; it must be 'user' or 'tool'",
        ),
        ({"question": "  ", "expected_answer": "1"}, "'question' must be a non-empty string"),
        ({"question": "q"}, "no 'expected_answer'; it must be a string (or a number)"),
        ({"question": "q", "expected_answer": True}, "'expected_answer' is a bool; it must be a string"),
        ({"question": "q", "expected_answer": ["1"]}, "'expected_answer' is a list"),
        ({"question": "q", "expected_answer": " "}, "'expected_answer' is empty"),
        ({"question": "q", "expected_answer": "1", "verifier": 3}, "'verifier' must be a verifier name, got 3"),
        ({"question": "q", "expected_answer": "1", "metadata": [1]}, "'metadata' is a list, not an object"),
    ],
)
def test_records_that_are_not_rl_prompts_say_why(record, problem):
    found = parse_prompt_record(record, "exact_match")
    assert isinstance(found, str) and problem in found, found


def test_a_prompt_renders_as_the_sft_prompt_before_its_reply(tokenizer, template):
    """The RL prompt is the text and ids SFT trains the reply after: its generation prompt included."""
    from nemotron.data.chat_template import render_with_mask

    system = {"role": "system", "content": "You are a helpful assistant."}
    rendered = render_prompt([system, USER], template, tokenizer)
    assert not isinstance(rendered, str)
    assert rendered.text == tokenizer.apply_chat_template(
        [system, USER], chat_template=template.text, add_generation_prompt=True, tokenize=False
    )
    assert rendered.text.endswith("<|im_start|>assistant\n")
    sft = render_with_mask([system, USER, REPLY], None, template, tokenizer)
    assert not isinstance(sft, str)
    first_trained = int(sft.loss_mask.argmax())
    assert rendered.ids == sft.input_ids[:first_trained].tolist()


def test_a_special_token_inside_a_prompt_is_refused(tokenizer, template):
    found = render_prompt([{"role": "user", "content": "hi<|im_end|>"}], template, tokenizer)
    assert isinstance(found, str) and "special token in text: messages[0] holds '<|im_end|>'" in found


def test_each_verifier_name_is_resolved_once(monkeypatch):
    import nemotron.data.verifiers as verifiers

    asked: list[list[str]] = []
    real = verifiers.check_verifier_names
    monkeypatch.setattr(verifiers, "check_verifier_names", lambda names: asked.append(list(names)) or real(names))
    check = VerifierCheck()
    assert [check.problem(n) for n in ("exact_match", "exact_match", "format")] == [None, None, None]
    problem = check.problem("exact_matsh")
    assert problem is not None and "unknown verifier 'exact_matsh' (did you mean 'exact_match'?)" in problem
    assert check.problem("exact_matsh") == problem
    assert asked == [["exact_match"], ["format"], ["exact_matsh"]]


# -- the stage, in this process ---------------------------------------------------------------------


def _config(tmp_path: Path, blend: Path, **keys) -> Path:
    config = {
        "blend_path": str(blend),
        "tokenizer": {"name_or_path": str(TINY_TOKENIZER)},
        "max_prompt_tokens": 40,
        "split": {"valid_fraction": 0.2, "test_fraction": 0.2, "seed": 1234},
        "num_shards": 2,
        "workers": 1,
        "max_bad_records": 0,
        "artifact_name": "test-rl",
    }
    config.update(keys)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _blend(tmp_path: Path, lines: list[str], name: str = "prompts.jsonl") -> Path:
    (tmp_path / name).write_text("".join(line + "\n" for line in lines))
    blend = tmp_path / "blend.json"
    blend.write_text(json.dumps({"datasets": [{"name": "prompts", "path": name, "weight": 1.0}]}))
    return blend


def _good(index: int) -> dict:
    a, b = 10 + index, 20 + index
    if index % 3 == 0:
        return {"question": f"What is {a} + {b}?", "expected_answer": a + b}
    record = {"messages": [{"role": "user", "content": f"{a} + {b} = ?"}, REPLY], "expected_answer": str(a + b)}
    if index % 3 == 1:
        return {**record, "verifier": "format", "metadata": {"format_regex": r"\d+$", "n": index}}
    return {**record, "verifier": "my_verifiers:near"}


BAD = {  # line (1-based) -> the record, and what its bad record example says
    4: ("{not json", "not a valid UTF-8 JSON line"),
    9: (json.dumps({"expected_answer": "1"}), "no prompt: neither 'messages' nor 'question'"),
    13: (json.dumps({"messages": [{"role": "wizard", "content": "hi"}], "expected_answer": "1"}), "unknown role"),
    17: (json.dumps({"question": "What is 1 + 1?"}), "no 'expected_answer'"),
    21: (json.dumps({"question": "q", "expected_answer": "1", "verifier": "nope"}), "unknown verifier 'nope'"),
    25: (json.dumps({"question": "1 + " * 40 + "1 = ?", "expected_answer": "41"}), "over max_prompt_tokens=40"),
}


def _lines(count: int = 40) -> list[str]:
    lines = [json.dumps(_good(i)) for i in range(count)]
    for line_no, (text, _) in BAD.items():
        lines[line_no - 1] = text
    return lines


@pytest.fixture
def user_verifier(tmp_path, monkeypatch):
    (tmp_path / "my_verifiers.py").write_text("def near(completion, expected_answer, metadata):\n    return 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def test_prompts_are_rendered_split_counted_and_a_rerun_reuses_them(
    tmp_path, prep_stage, artifact_metadata, registry_versions, user_verifier, tokenizer, template
):
    blend, registry = _blend(tmp_path, _lines()), tmp_path / "registry"
    config = _config(tmp_path, blend, max_bad_records=len(BAD))
    out = prep_stage(config, registry, STAGE)
    assert "published test-rl:v1" in out
    version = registry / "test-rl" / "v1"
    artifact = json.loads((version / "artifact.json").read_text())
    assert artifact["kind"] == "rl-data" and artifact["lineage"]["stage"] == "data-prep-rl"
    assert str(tmp_path / "prompts.jsonl") in artifact["lineage"]["inputs"]
    meta = artifact_metadata(registry, "test-rl")
    assert meta["format"] == "jsonl-prompts" and meta["chat_template"] == template.template_hash
    assert meta["tokenizer"]["name_or_path"] == str(TINY_TOKENIZER)
    assert meta["records"] == 40 - len(BAD) and meta["bad_records"] == len(BAD) and meta["prompts_too_long"] == 1
    assert meta["settings"]["max_prompt_tokens"] == 40 and meta["settings"]["default_verifier"] == "exact_match"
    for line_no, (_, problem) in list(BAD.items())[:5]:  # the first five are kept, each naming file and line
        assert any(f"prompts.jsonl:{line_no}: " in e and problem in e for e in meta["bad_examples"]), line_no

    fractions = SplitFractions(0.2, 0.2, 1234)
    prompts, verifiers = {}, {}
    for split in SPLITS:
        lines = _read(version / f"{split}.jsonl")
        counts = meta["splits"][split]
        assert lines and counts["records"] == len(lines), split
        assert counts["tokens"] == sum(len(line["prompt_ids"]) for line in lines)
        assert counts["prompt_tokens"]["max"] == max(len(line["prompt_ids"]) for line in lines) <= 40
        for line in lines:
            assert list(line) == [
                "id",
                "prompt_ids",
                "prompt_text",
                "messages",
                "expected_answer",
                "verifier",
                "metadata",
            ]
            dataset, key = line["id"].split("/", 1)
            assert dataset == "prompts" and key.startswith("prompts.jsonl:")  # file and byte offset: stable
            assert fractions.assign(dataset, key) == split
            assert line["prompt_text"].endswith("<|im_start|>assistant\n") and line["messages"][-1]["role"] == "user"
            assert line["prompt_ids"] == tokenizer(line["prompt_text"], add_special_tokens=False)["input_ids"]
            prompts[line["messages"][-1]["content"]] = line
            verifiers[line["verifier"]] = verifiers.get(line["verifier"], 0) + 1
        assert counts["verifiers"] == {v: sum(ln["verifier"] == v for ln in lines) for v in counts["verifiers"]}
    assert meta["verifiers"] == verifiers == {"exact_match": 11, "format": 12, "my_verifiers:near": 11}
    assert meta["prompt_tokens"]["max"] == max(len(p["prompt_ids"]) for p in prompts.values())
    assert prompts["What is 10 + 20?"]["expected_answer"] == "30"  # a number, as text
    assert prompts["11 + 21 = ?"]["metadata"] == {"format_regex": r"\d+$", "n": 1}

    again = prep_stage(config, registry, STAGE)
    assert "2 of 2 already done" in again
    assert f"nothing changed: test-rl:v1 already holds this data ({version})" in again
    assert registry_versions(registry, "test-rl") == ["v1"]


def test_more_bad_records_than_allowed_fail_listing_file_and_line(tmp_path, prep_stage, user_verifier):
    blend, registry = _blend(tmp_path, _lines()), tmp_path / "registry"
    with pytest.raises(DataError, match=r"6 malformed records \(max_bad_records=5\); first: .*prompts\.jsonl:4: "):
        prep_stage(_config(tmp_path, blend, max_bad_records=5), registry, STAGE)
    assert not (registry / "test-rl" / "v1").exists()


def test_a_default_verifier_that_does_not_resolve_fails_before_any_shard(tmp_path, prep_stage):
    blend, registry = _blend(tmp_path, [json.dumps(_good(0))]), tmp_path / "registry"
    with pytest.raises(DataError, match=r"config key 'default_verifier': unknown verifier 'exact'"):
        prep_stage(_config(tmp_path, blend, default_verifier="exact"), registry, STAGE)
    assert not registry.exists()


def test_a_parquet_question_column_gives_the_prompts_of_the_same_jsonl(tmp_path, prep_stage):
    """A Parquet file needs `messages` or `question`; its rows read as their JSON lines (null fields dropped)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [
        {"question": f"What is {i} + 1?", "expected_answer": str(i + 1), "metadata": {"a": 1} if i % 2 else {"b": 2}}
        for i in range(12)
    ]
    split = {"valid_fraction": 0.0, "test_fraction": 0.0, "seed": 1}
    outputs = []
    for name in ("q.jsonl", "q.parquet"):
        folder = tmp_path / name.replace(".", "-")
        folder.mkdir()
        if name.endswith(".parquet"):
            pq.write_table(pa.table({k: [r[k] for r in records] for k in records[0]}), folder / name)
        else:
            (folder / name).write_text("".join(json.dumps(r) + "\n" for r in records))
        blend = folder / "blend.json"
        blend.write_text(json.dumps({"datasets": [{"name": "q", "path": name, "weight": 1.0}]}))
        prep_stage(_config(folder, blend, split=split, num_shards=1), folder / "registry", STAGE)
        lines = _read(folder / "registry" / "test-rl" / "v1" / "train.jsonl")
        outputs.append([{k: v for k, v in line.items() if k != "id"} for line in lines])
    assert len(outputs[0]) == 12 and outputs[0] == outputs[1]
    assert outputs[1][1]["metadata"] == {"a": 1} and outputs[1][0]["metadata"] == {"b": 2}

    pq.write_table(pa.table({"text": ["hello"]}), tmp_path / "plain.parquet")
    blend = tmp_path / "plain.json"
    blend.write_text(json.dumps({"datasets": [{"name": "q", "path": "plain.parquet", "weight": 1.0}]}))
    with pytest.raises(DataError, match=r"plain\.parquet: no column 'messages' or 'question'; columns: text; RL data"):
        prep_stage(_config(tmp_path, blend), tmp_path / "registry", STAGE)
