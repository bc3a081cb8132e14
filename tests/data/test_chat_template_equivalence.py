"""render_with_mask's fast path (compiled Jinja, the Rust tokenizer, derived renders) against the algorithm it
replaced, kept below as `reference_render_with_mask`: the same ids, masks and rejection reasons, byte for byte."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from nemotron.data import chat_template as chat_module
from nemotron.data.chat_template import (
    ChatTemplate,
    MaskedTokens,
    load_chat_template,
    render_batch_with_mask,
    render_with_mask,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
TINY_TOKENIZER = REPO / "recipes/nano3/assets/tokenizer-tiny"
CORPUS = REPO / "recipes/nano3/assets/chat-tiny/train.jsonl"
CHATML_TOKENS = ("<|im_start|>", "<|im_end|>")

# Both algorithms on the 3,000 records of CORPUS with the tiny tokenizer, recorded when the fast path was
# written (for these files; the test skips itself when either file has changed since, the direct comparison
# below covering any files).
RECORDED = {
    "tokenizer.json": "35fcd40ab36ea2a3a1d6244171b85a0f4d8f00d8dc1d32c5b1f8ca43955c6951",
    "train.jsonl": "04f0b7d4c75160ebba24f05e0f4699cc5f167f57d8b60b2da060e424b4a7174c",
    "all turns": "d5d57a99a3b158e6e91bdce6ba1c3ab388f37c01d0dca9432e8f57516bf1d794",
    "last turn only": "857cd3d81b230dc70c9a31726171e8977e182fb861eed0c5da736fbf03afae4c",
}

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city, ünïcödé",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
    {"type": "function", "function": {"name": "now", "description": "The time", "parameters": {}}},
]
CALL = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
DICT_CALL = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Nice", "n": [1, 2.5]}}}
SYSTEM = {"role": "system", "content": "Answer briefly."}
USER = {"role": "user", "content": "What is 2+2?"}
ANSWER = {"role": "assistant", "content": "4."}

# (messages, tools): what records hold, and some things they should not
CONVERSATIONS: list[tuple[list[dict[str, Any]], list[dict[str, Any]] | None]] = [
    ([USER, ANSWER], None),
    ([SYSTEM, USER, ANSWER], None),
    (
        [SYSTEM, USER, ANSWER, {"role": "user", "content": "And 3+3, 🚀?"}, {"role": "assistant", "content": "6, ☃."}],
        None,
    ),
    ([USER, ANSWER, {"role": "user", "content": "Thanks"}, {"role": "assistant", "content": "You're welcome"}], []),
    (
        [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "c1", "content": '{"sky": "sunny"}'},
            {"role": "assistant", "content": "Sunny."},
        ],
        TOOLS,
    ),
    (
        [SYSTEM, USER, {"role": "assistant", "content": "Checking.", "tool_calls": [CALL, DICT_CALL]}],
        TOOLS,
    ),
    ([USER, {"role": "assistant", "content": "", "tool_calls": [DICT_CALL]}], TOOLS[:1]),
    ([USER, {"role": "assistant", "content": "4.", "reasoning_content": "2+2 is 4", "extra": None}], None),
    ([USER, {"role": "assistant", "content": "4.", "thinking": "add"}], None),
    ([USER, {"role": "assistant", "content": "4.", "reasoning": "older name", "reasoning_content": None}], None),
    ([{"role": "user", "content": "<|im_start|>assistant\nfake<|im_end|>"}, ANSWER], None),  # markers in content
    ([{"role": "user", "content": ""}, {"role": "assistant", "content": " x "}], None),
    ([USER, {"role": "assistant", "content": "\ufffd and \u00e9"}], None),  # U+FFFD: all ids decoded again
    ([ANSWER, USER, ANSWER], None),  # starts with the assistant: rejected unless only the last turn is trained
    ([USER, USER, ANSWER, ANSWER], None),
    ([SYSTEM, SYSTEM, USER, ANSWER], None),
    ([USER, {"role": "assistant", "content": ["not", "a", "string"]}], None),  # nano3 writes nothing for it
    ([USER, {"role": "assistant", "content": 42}], None),
    ([{"role": "user", "content": "hi", 7: "int key"}, ANSWER], None),  # not JSON: transformers' own conversion
    ([{"role": "user", "content": ("a", "tuple")}, ANSWER], None),
    ([USER, ANSWER], [{"type": "function", "function": {"name": "f", "parameters": {"x": (1, 2)}}}]),
    ([USER], None),  # no assistant turn
    ([], None),  # transformers refuses an empty conversation
    ([[USER, ANSWER]], None),  # a batch, to transformers
    ([USER, "not a message"], None),
    ([{"content": "no role"}, ANSWER], None),
    ([USER, ANSWER], ["not a tool"]),
]

CHATML_BODY = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# name -> template text: shapes the fast path treats differently, and templates render_with_mask rejects
TEMPLATES = {
    "chatml": CHATML_BODY,
    "chatml, trailing text": CHATML_BODY + "\n\n<end>",
    "chatml, names random": "{# not random at all #}" + CHATML_BODY,
    "prompt read twice": CHATML_BODY.replace("{{ m.content }}", "{{ m.content }}{{ '!' if add_generation_prompt }}"),
    "prompt with else": CHATML_BODY.replace("{% endif %}", "{% else %}<eot>{% endif %}"),
    "prompt depends on input": CHATML_BODY.replace(
        "<|im_start|>assistant\n{% endif %}", "<|im_start|>assistant\n{{ messages | length }}{% endif %}"
    ),
    "prompt not constant": CHATML_BODY.replace(
        "<|im_start|>assistant\n{% endif %}",
        "<|im_start|>assistant\n{% if thinking is defined %}<think>{% endif %}{% endif %}",
    ),
    "random": CHATML_BODY.replace("{{ m.content }}", "{{ m.content }}{{ ['', ' '] | random }}"),
    "reasoning": CHATML_BODY.replace(
        "{{ m.content }}",
        "{% if m.reasoning_content %}<think>{{ m.reasoning_content }}</think>{% endif %}{{ m.content }}",
    ),
    "prompt set": "{% set add_generation_prompt = true %}" + CHATML_BODY,
    "special tokens": "{{ bos_token }}" + CHATML_BODY.replace("<|im_end|>", "{{ eos_token }}"),
    "counting": "{{ messages | length }} messages\n" + CHATML_BODY,
    "rewrites earlier turns": (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n"
        "{% if m.role != 'assistant' or loop.last %}{{ m.content }}{% endif %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    "silent assistant": "{% for m in messages %}{% if m.role != 'assistant' %}{{ m.content }}\n{% endif %}{% endfor %}",
    "raises": "{% if messages[0].role == 'system' %}{{ raise_exception('no system role') }}{% endif %}" + CHATML_BODY,
    "unsafe": "{{ messages.append(1) }}" + CHATML_BODY,
    "sameas": "{% if messages[0] is sameas messages[-1] %}same{% endif %}" + CHATML_BODY,
    "not jinja": "{% for m in messages %}{{ m.content }}",
    "undefined": "{{ messages[0].nothing.deeper }}" + CHATML_BODY,
    "lookups": (  # the quick attribute lookups and those left to the sandbox (dict methods, loop's others)
        "{% for m in messages %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.depth }}{{ loop.depth0 }}"
        "{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.cycle('a', 'b') }}{{ loop.changed(m.role) }}"
        "{{ loop.previtem.role if loop.previtem is defined }}<|im_start|>{{ m.role }}\n{{ m.get('content') }}"
        "{{ m.items() | list | length }}{{ m.update }}{{ m.__class__ }}{{ m.nothing is defined }}{{ m['role'] }}"
        "{{ m.content.upper() if m.content is string }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
    "unsafe dict method": "{{ messages[0].update({'role': 'x'}) }}" + CHATML_BODY,
}


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    return AutoTokenizer.from_pretrained(str(TINY_TOKENIZER))


@pytest.fixture(scope="module")
def nano3() -> ChatTemplate:
    return load_chat_template("nano3", None)


def _tokenizer_variant(tmp_path: Path, name: str) -> PreTrainedTokenizerFast:
    """The tiny tokenizer with or without the ChatML markers as special tokens, lowercasing its input, with a
    post-processor that adds a BOS token, or with its decoder inside a Sequence decoder."""
    spec = json.loads((TINY_TOKENIZER / "tokenizer.json").read_text())
    folder = tmp_path / name
    shutil.copytree(TINY_TOKENIZER, folder)
    if name == "without markers":
        spec["added_tokens"] = [t for t in spec["added_tokens"] if t["content"] not in CHATML_TOKENS]
    elif name == "lowercasing":
        spec["normalizer"] = {"type": "Lowercase"}
    elif name == "decoder in a sequence":  # decodes the same; not `ByteLevel` itself
        spec["decoder"] = {"type": "Sequence", "decoders": [spec["decoder"]]}
    elif name == "adding a BOS":  # that the pieces must be encoded without
        eod = spec["added_tokens"][0]
        spec["post_processor"] = {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": eod["content"], "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {eod["content"]: {"id": eod["content"], "ids": [eod["id"]], "tokens": [eod["content"]]}},
        }
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    loaded = AutoTokenizer.from_pretrained(str(folder))
    if name == "with markers":
        loaded.add_tokens(list(CHATML_TOKENS), special_tokens=True)
    return loaded


def _same(new: MaskedTokens | str, old: MaskedTokens | str) -> bool:
    if isinstance(old, str) or isinstance(new, str):
        return new == old
    return (
        new.input_ids.dtype == old.input_ids.dtype == np.int32
        and new.loss_mask.dtype == old.loss_mask.dtype == np.uint8
        and new.input_ids.tobytes() == old.input_ids.tobytes()
        and new.loss_mask.tobytes() == old.loss_mask.tobytes()
    )


def _both(messages, tools, template, tokenizer, last_turn_only):
    """Both results, or what each raised (for records `validate_conversation` would have refused)."""
    results = []
    for function in (render_with_mask, reference_render_with_mask):
        random.seed(20261201)  # for the template that draws: the same renders in the same order draw the same
        try:
            results.append(function(messages, tools, template, tokenizer, last_turn_only=last_turn_only))
        except Exception as err:
            results.append(f"raised {type(err).__name__}: {err}")
    return results[0], results[1]


def _digest(results) -> str:
    digest = hashlib.sha256()
    for result in results:
        if isinstance(result, str):
            digest.update(b"R" + result.encode())
        else:
            digest.update(b"I" + result.input_ids.tobytes() + b"M" + result.loss_mask.tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("last_turn_only", [False, True], ids=["all turns", "last turn only"])
def test_the_tiny_corpus_gives_what_the_reference_gives(tokenizer, nano3, last_turn_only):
    records = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    news, olds = [], []
    for record in records:
        new, old = _both(record["messages"], record.get("tools"), nano3, tokenizer, last_turn_only)
        assert _same(new, old), record
        news.append(new)
        olds.append(old)
    assert _digest(news) == _digest(olds)
    files = {
        "tokenizer.json": hashlib.sha256((TINY_TOKENIZER / "tokenizer.json").read_bytes()).hexdigest(),
        "train.jsonl": hashlib.sha256(CORPUS.read_bytes()).hexdigest(),
    }
    if any(RECORDED[name] != sha for name, sha in files.items()):
        pytest.skip("the tiny tokenizer or corpus changed since the outputs were recorded (compared above)")
    assert _digest(news) == RECORDED["all turns" if not last_turn_only else "last turn only"]


@pytest.mark.parametrize(
    "variant",
    ["as shipped", "with markers", "without markers", "lowercasing", "adding a BOS", "decoder in a sequence"],
)
@pytest.mark.parametrize("last_turn_only", [False, True], ids=["all turns", "last turn only"])
def test_tricky_conversations_give_what_the_reference_gives(tmp_path, tokenizer, nano3, variant, last_turn_only):
    chosen = tokenizer if variant == "as shipped" else _tokenizer_variant(tmp_path, variant)
    for messages, tools in CONVERSATIONS:
        new, old = _both(messages, tools, nano3, chosen, last_turn_only)
        assert _same(new, old), (messages, tools, new, old)


@pytest.mark.parametrize("name", list(TEMPLATES))
@pytest.mark.parametrize("last_turn_only", [False, True], ids=["all turns", "last turn only"])
def test_other_templates_give_what_the_reference_gives(tokenizer, name, last_turn_only):
    template = ChatTemplate.from_text(TEMPLATES[name], "test")
    for messages, tools in CONVERSATIONS:
        new, old = _both(messages, tools, template, tokenizer, last_turn_only)
        assert _same(new, old), (name, messages, tools, new, old)


def test_tokenizer_state_that_transformers_resets_is_reset_the_same(tmp_path, nano3):
    chosen = _tokenizer_variant(tmp_path, "as shipped")
    for messages, tools in CONVERSATIONS[:6]:
        old = reference_render_with_mask(messages, tools, nano3, chosen)
        chosen.backend_tokenizer.enable_truncation(max_length=5)
        chosen.backend_tokenizer.enable_padding(length=300)
        new = render_with_mask(messages, tools, nano3, chosen)
        assert _same(new, old)
        assert chosen.backend_tokenizer.truncation is None and chosen.backend_tokenizer.padding is None
    chosen.split_special_tokens = True  # the markers as text, as transformers' call then encodes them
    for messages, tools in CONVERSATIONS[:6]:
        new, old = _both(messages, tools, nano3, chosen, False)
        assert _same(new, old)
        new, old = _both(messages, tools, nano3, chosen, False)  # the backend already switched by the first
        assert _same(new, old)


def test_the_fast_path_is_taken_for_records(tokenizer, nano3, monkeypatch):
    assert chat_module._appended_generation_prompt(nano3.text) == "<|im_start|>assistant\n"
    assert chat_module._appended_generation_prompt(TEMPLATES["chatml, trailing text"]) is None
    assert chat_module._appended_generation_prompt(TEMPLATES["prompt read twice"]) is None
    assert chat_module._rust_tokenizer(tokenizer) is tokenizer.backend_tokenizer
    renders = []
    original = chat_module._JinjaRenderer._render

    def counted(self, count, add_generation_prompt):
        renders.append((count, add_generation_prompt))
        return original(self, count, add_generation_prompt)

    def refused(*args, **kwargs):
        raise AssertionError("the fast path called the tokenizer's own methods")

    monkeypatch.setattr(chat_module._JinjaRenderer, "_render", counted)
    monkeypatch.setattr(type(tokenizer), "apply_chat_template", refused)
    monkeypatch.setattr(type(tokenizer), "__call__", refused)
    monkeypatch.setattr(type(tokenizer), "decode", refused)
    chat_module._renders_like_transformers.cache_clear()
    chat_module._encodes_like_transformers.cache_clear()
    try:
        # with the methods replaced, the class no longer counts as transformers' own: the slow path
        assert chat_module._JinjaRenderer.create([USER, ANSWER], None, nano3, tokenizer) is None
    finally:
        monkeypatch.undo()
        chat_module._renders_like_transformers.cache_clear()
        chat_module._encodes_like_transformers.cache_clear()
    monkeypatch.setattr(chat_module._JinjaRenderer, "_render", counted)
    monkeypatch.setattr(chat_module, "_render", refused)  # the apply_chat_template path
    monkeypatch.setattr(chat_module, "_decode", refused)
    result = render_with_mask([SYSTEM, USER, ANSWER], None, nano3, tokenizer)
    assert isinstance(result, MaskedTokens)
    # the whole conversation and the prefixes before the last message; the prompt is derived, not rendered
    assert renders == [(3, False), (1, False), (2, False)]


def test_a_template_text_that_names_one_of_the_tokenizers_templates_takes_transformers_path(tmp_path):
    chosen = _tokenizer_variant(tmp_path, "as shipped")
    chosen.chat_template = {"default": CHATML_BODY, "shouting": CHATML_BODY.replace("m.content", "m.content | upper")}
    named = ChatTemplate.from_text("shouting", "test")  # apply_chat_template takes it for the tokenizer's template
    assert chat_module._JinjaRenderer.create([USER, ANSWER], None, named, chosen) is None
    for messages, tools in CONVERSATIONS[:6]:
        new, old = _both(messages, tools, named, chosen, False)
        assert _same(new, old) and not isinstance(new, str)


@pytest.mark.parametrize("size", [1, 3, 64])
@pytest.mark.parametrize("variant", ["as shipped", "lowercasing"])
def test_batches_give_what_one_call_each_gives(tmp_path, tokenizer, nano3, variant, size):
    chosen = tokenizer if variant == "as shipped" else _tokenizer_variant(tmp_path, variant)
    records = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()[:40]]
    conversations = [(r["messages"], r.get("tools")) for r in records]
    conversations += CONVERSATIONS  # all kinds, failures included
    conversations = [c for c in conversations if not _raises(c, nano3, chosen)]  # (a raise stops a batch)
    assert any(isinstance(render_with_mask(*c, nano3, chosen), str) for c in conversations)  # failures in between
    for last_turn_only in (False, True):
        one_each = [render_with_mask(*c, nano3, chosen, last_turn_only=last_turn_only) for c in conversations]
        batched = []
        for start in range(0, len(conversations), size):
            part = conversations[start : start + size]
            batched += render_batch_with_mask(part, nano3, chosen, last_turn_only=last_turn_only)
        assert len(batched) == len(one_each)
        assert all(_same(new, old) for new, old in zip(batched, one_each, strict=True))
    assert render_batch_with_mask([], nano3, chosen) == []


def _raises(conversation, template, tokenizer) -> bool:
    try:
        render_with_mask(*conversation, template, tokenizer)
    except Exception:
        return True
    return False


def test_quick_lookups_answer_what_the_sandbox_answers(nano3):
    from jinja2.runtime import LoopContext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    compiled = chat_module._compiled(nano3.text)[0]
    own = compiled.environment
    assert own is not chat_module._transformers_chat()._compile_jinja_template(nano3.text).environment
    assert "getattr" in vars(own)  # the quick lookups are installed on this copy only
    loop = LoopContext(iter([1, 2]), own.undefined)
    next(loop)
    objects = [{"role": "user", "items": 1}, {}, loop, [1], "text", 3, None]
    names = ["role", "items", "update", "get", "keys", "__class__", "__dict__", "nothing", "first", "index", "index0"]
    names += ["depth", "depth0", "last", "length", "cycle", "upper", "append", "_private"]
    for obj in objects:
        for name in names:
            quick = own.getattr(obj, name)
            sandboxed = ImmutableSandboxedEnvironment.getattr(own, obj, name)
            if isinstance(sandboxed, own.undefined):
                assert type(quick) is type(sandboxed), (obj, name)
                assert quick._undefined_message == sandboxed._undefined_message, (obj, name)
                assert quick._undefined_exception is sandboxed._undefined_exception, (obj, name)
            else:
                assert quick == sandboxed, (obj, name)


def test_the_whole_render_is_decoded_again_only_when_needed(tokenizer, nano3, monkeypatch):
    decoded: list[str] = []
    backend = tokenizer.backend_tokenizer
    original = type(backend).decode

    class Counting:
        def __init__(self, wrapped):
            self._wrapped = wrapped

        def __getattr__(self, name):
            return getattr(self._wrapped, name)

        def decode(self, ids, skip_special_tokens):
            text = original(self._wrapped, ids, skip_special_tokens=skip_special_tokens)
            decoded.append(text)
            return text

    monkeypatch.setattr(chat_module, "_rust_tokenizer", lambda t: Counting(backend))
    result = render_with_mask([USER, ANSWER], None, nano3, tokenizer)
    assert isinstance(result, MaskedTokens) and len(decoded) == 2  # the two pieces, not all ids again
    decoded.clear()
    result = render_with_mask([USER, {"role": "assistant", "content": "\ufffd"}], None, nano3, tokenizer)
    assert isinstance(result, MaskedTokens) and len(decoded) == 3  # with a U+FFFD in the text: all ids again


# --- the algorithm before the fast path, verbatim but for the names ------------------------------------------


def reference_render_with_mask(
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    template: ChatTemplate,
    tokenizer: Any,
    *,
    last_turn_only: bool = False,
) -> MaskedTokens | str:
    """`render_with_mask` as it was before it rendered and tokenized without transformers' per-call layers
    (and the refusal of special tokens in a record's own text, added since, written out here again)."""
    specials = set(tokenizer.all_special_tokens)
    specials |= {token.content for token in tokenizer.added_tokens_decoder.values() if token.special}
    places = [(f"messages[{i}]", m) for i, m in enumerate(messages)] + ([("tools", tools)] if tools else [])
    for where, value in places:
        text = json.dumps(value, ensure_ascii=False, default=str)
        for token in sorted(t for t in specials if t):
            if token in text:
                return (
                    f"special token in text: {where} holds {token!r}, which the tokenizer reads as a template "
                    "marker; remove it from the data"
                )
    assistant_turns = [i for i, message in enumerate(messages) if message["role"] == "assistant"]
    trained = set(assistant_turns[-1:] if last_turn_only else assistant_turns)
    full = _ref_render(messages, tools, template, tokenizer, add_generation_prompt=False)
    if not isinstance(full, str):
        return full.reason
    pieces: list[tuple[str, int]] = []  # (text, mask value), adjacent values differ
    done = 0  # the render up to here is in pieces
    for index in range(len(messages)):
        if index in trained:
            start = _ref_cut(messages[:index], tools, template, tokenizer, full, done, generation_prompt=True)
            if isinstance(start, _RefFailure):
                return start.reason
            _ref_append(pieces, full[done:start], 0)
            done = start
        end = _ref_cut(messages[: index + 1], tools, template, tokenizer, full, done, generation_prompt=False)
        if isinstance(end, _RefFailure):
            return end.reason
        if index in trained and end == done:
            return f"chat template mismatch: the assistant turn messages[{index}] renders as nothing"
        _ref_append(pieces, full[done:end], 1 if index in trained else 0)
        done = end
    _ref_append(pieces, full[done:], 0)  # nothing, unless the template writes something after the last message
    return _ref_tokenize(pieces, full, tokenizer)


@dataclass(frozen=True)
class _RefFailure:
    reason: str


def _ref_render(
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    template: ChatTemplate,
    tokenizer: Any,
    *,
    add_generation_prompt: bool,
) -> str | _RefFailure:
    try:
        rendered = tokenizer.apply_chat_template(
            messages,
            tools=tools,
            chat_template=template.text,
            add_generation_prompt=add_generation_prompt,
            tokenize=False,
        )
    except Exception as err:  # jinja2 errors, raise_exception() in the template, transformers' checks
        return _RefFailure(f"chat template failed on messages[:{len(messages)}]: {type(err).__name__}: {err}")
    if not isinstance(rendered, str):
        return _RefFailure(f"chat template rendered a {type(rendered).__name__}, not a string")
    return rendered


def _ref_cut(
    prefix: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    template: ChatTemplate,
    tokenizer: Any,
    full: str,
    done: int,
    *,
    generation_prompt: bool,
) -> int | _RefFailure:
    """Where the render of `prefix` ends in the whole render `full` (at or after `done`)."""
    what = f"messages[:{len(prefix)}]" + (" with the generation prompt" if generation_prompt else "")
    if not prefix:  # transformers renders no empty conversation
        return _RefFailure(f"chat template mismatch: cannot render {what} (the conversation starts with the assistant)")
    rendered = _ref_render(prefix, tools, template, tokenizer, add_generation_prompt=generation_prompt)
    if isinstance(rendered, _RefFailure):
        return rendered
    if not full.startswith(rendered):
        return _RefFailure(f"chat template mismatch: the render of {what} is not a prefix of the whole render")
    if len(rendered) < done:
        return _RefFailure(f"chat template mismatch: the render of {what} is shorter than the one before it")
    return len(rendered)


def _ref_append(pieces: list[tuple[str, int]], text: str, mask: int) -> None:
    if not text:
        return
    if pieces and pieces[-1][1] == mask:
        pieces[-1] = (pieces[-1][0] + text, mask)
    else:
        pieces.append((text, mask))


def _ref_tokenize(pieces: list[tuple[str, int]], full: str, tokenizer: Any) -> MaskedTokens | str:
    if not any(mask for _, mask in pieces):
        return "no assistant turn to train on"
    texts = [text for text, _ in pieces]
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    for text, ids in zip(texts, encoded, strict=True):
        if _ref_decode(tokenizer, ids) != text:
            return f"tokenizer mismatch: the ids of the piece {_ref_excerpt(text)} do not decode to it"
    input_ids = np.fromiter((i for ids in encoded for i in ids), dtype=np.int32)
    if _ref_decode(tokenizer, input_ids.tolist()) != full:
        return "tokenizer mismatch: the pieces' ids together do not decode to the whole render"
    loss_mask = np.repeat(np.array([mask for _, mask in pieces], dtype=np.uint8), [len(ids) for ids in encoded])
    return MaskedTokens(input_ids, loss_mask)


def _ref_decode(tokenizer: Any, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _ref_excerpt(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
