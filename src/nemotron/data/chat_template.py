"""Chat templates for SFT data: load one, check a conversation record, render it with an exact loss mask."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nemotron.data.errors import DataError
from nemotron.paths import recipes_root
from nemotron.suggest import did_you_mean

ROLES = ("system", "user", "assistant", "tool")
# chat_template names that are not paths; "nano3" is the template shipped in the recipes.
SHIPPED_TEMPLATES = {"nano3": "nano3/stage1_sft/templates/nano3.jinja"}
TOKENIZER_TEMPLATE = "tokenizer"
_USAGE = (
    "Set chat_template to 'nano3' (the shipped template), 'tokenizer' (the tokenizer's own) "
    "or the path of a Jinja template file."
)


@dataclass(frozen=True)
class ChatTemplate:
    """A Jinja chat template: its text, where it came from ("nano3", "tokenizer" or a file's absolute
    path) and the sha256 of its text (what identifies it in lineage records)."""

    text: str
    source: str
    template_hash: str

    @classmethod
    def from_text(cls, text: str, source: str) -> ChatTemplate:
        return cls(text, source, hashlib.sha256(text.encode("utf-8")).hexdigest())

    def identity(self) -> dict[str, str]:
        """What identifies this template in lineage records."""
        return {"source": self.source, "sha256": self.template_hash}


@dataclass(frozen=True)
class MaskedTokens:
    """A rendered conversation: token ids (int32) and a loss mask of the same length (uint8, 1 = trained)."""

    input_ids: np.ndarray
    loss_mask: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)


def load_chat_template(source: str, tokenizer_dir_or_name: str | None) -> ChatTemplate:
    """The template named by the `chat_template` setting: "nano3" (shipped in the recipes), "tokenizer"
    (the chat template saved with `tokenizer_dir_or_name`) or the path of a Jinja file.

    DataError (naming the setting and the fix) when it cannot be found or read, or is not valid Jinja.
    """
    if source in SHIPPED_TEMPLATES:
        try:
            path = recipes_root() / SHIPPED_TEMPLATES[source]
        except FileNotFoundError as err:
            raise DataError(f"chat_template {source!r}: {err}") from None
        template = ChatTemplate.from_text(_read_template_file(path, source), source)
    elif source == TOKENIZER_TEMPLATE:
        template = ChatTemplate.from_text(_tokenizer_template(tokenizer_dir_or_name), source)
    else:
        path = Path(source).expanduser().absolute()
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "no such file"
            hint = did_you_mean(source, [*SHIPPED_TEMPLATES, TOKENIZER_TEMPLATE], sentence=True)
            raise DataError(f"chat_template {source!r}: {what} ({path}).{hint} {_USAGE}")
        template = ChatTemplate.from_text(_read_template_file(path, source), str(path))
    _check_syntax(template)
    return template


def _read_template_file(path: Path, source: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"chat_template {source!r}: cannot read {path}: {err}. {_USAGE}") from None


def _tokenizer_template(tokenizer_dir_or_name: str | None) -> str:
    if tokenizer_dir_or_name is None:
        raise DataError(f"chat_template 'tokenizer' needs a tokenizer, and none is set. {_USAGE}")
    from nemotron.data.tokenizer import load_tokenizer

    found = load_tokenizer(tokenizer_dir_or_name, backend="huggingface").hf_tokenizer.chat_template
    if isinstance(found, dict):  # several named templates: the one a plain apply_chat_template uses
        found = found.get("default")
    if not isinstance(found, str) or not found.strip():
        raise DataError(
            f"chat_template 'tokenizer': tokenizer {tokenizer_dir_or_name!r} has no chat template "
            f"(none in its tokenizer_config.json or chat_template.jinja). {_USAGE}"
        )
    return found


def _check_syntax(template: ChatTemplate) -> None:
    """DataError when the template is not valid Jinja (compiled the way transformers compiles it)."""
    import jinja2
    from transformers.utils.chat_template_utils import render_jinja_template

    sample = [[{"role": "user", "content": "hello"}]]
    try:
        render_jinja_template(conversations=sample, chat_template=template.text, add_generation_prompt=True)
    except jinja2.TemplateSyntaxError as err:
        raise DataError(
            f"chat_template {template.source!r} is not valid Jinja: line {err.lineno}: {err.message}. "
            f"Fix the template, or: {_USAGE}"
        ) from None
    except Exception:  # only the syntax is checked here; what the template rejects is reported per record
        return


def validate_conversation(record: object) -> str | None:
    """Why `record` (one parsed JSON line) is not a usable chat record, or None when it is.

    A record is an object with `messages`, a non-empty list of objects with a known `role` and string
    `content`, at least one assistant turn, and optionally `tools` (a list of objects, null = none).
    An assistant turn needs non-blank content, unless it makes `tool_calls` (then content may be
    missing, null or empty); each call is an object with `function` {"name": str, "arguments": str or object}.
    """
    if not isinstance(record, dict):
        return f"the record is a JSON {type(record).__name__}, not an object"
    if "messages" not in record:
        keys = ", ".join(repr(str(k)) for k in list(record)[:6]) or "none"
        return f"no 'messages' field (keys: {keys})"
    messages = record["messages"]
    if not isinstance(messages, list):
        return f"'messages' is a {type(messages).__name__}, not a list"
    if not messages:
        return "'messages' is empty"
    for index, message in enumerate(messages):
        reason = _message_problem(message)
        if reason is not None:
            return f"messages[{index}]: {reason}"
    if not any(message["role"] == "assistant" for message in messages):
        return "no assistant turn"
    tools = record.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return f"'tools' is a {type(tools).__name__}, not a list"
        for index, tool in enumerate(tools):
            if not isinstance(tool, dict):
                return f"tools[{index}] is a {type(tool).__name__}, not an object"
    return None


def _message_problem(message: object) -> str | None:
    if not isinstance(message, dict):
        return f"a {type(message).__name__}, not an object"
    if "role" not in message:
        return "no 'role'"
    role = message["role"]
    if not isinstance(role, str) or role not in ROLES:
        hint = did_you_mean(role, ROLES) if isinstance(role, str) else ""
        return f"unknown role {role!r}{hint} (roles: {', '.join(ROLES)})"
    content = message.get("content")
    tool_calls = message.get("tool_calls")
    if role == "assistant" and tool_calls is not None:
        calls_problem = _tool_calls_problem(tool_calls)
        if calls_problem is not None:
            return calls_problem
        if content is None or (isinstance(content, str) and not content.strip()):
            return None
    if "content" not in message:
        return f"{role} message has no 'content'"
    if not isinstance(content, str):
        return f"{role} content is a {type(content).__name__}, not a string"
    if role == "assistant" and not content.strip():
        return "empty assistant turn"
    return None


def _tool_calls_problem(tool_calls: object) -> str | None:
    if not isinstance(tool_calls, list) or not tool_calls:
        return "'tool_calls' is not a non-empty list"
    for index, call in enumerate(tool_calls):
        function = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(function, dict)
            or not isinstance(function.get("name"), str)
            or not isinstance(function.get("arguments"), str | dict)
        ):
            return f"tool_calls[{index}] is not {{'function': {{'name': str, 'arguments': str or object}}}}"
    return None


def render_with_mask(
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    template: ChatTemplate,
    tokenizer: Any,
    *,
    last_turn_only: bool = False,
) -> MaskedTokens | str:
    """Token ids and a loss mask for one conversation (checked by `validate_conversation`), or the
    reason the mask cannot be computed exactly (then skip the record and count it; nothing is guessed).

    `tokenizer` is a Hugging Face fast tokenizer (`TextTokenizer.hf_tokenizer`, or AutoTokenizer's).
    The whole conversation is rendered as `tokenizer.apply_chat_template(..., chat_template=template.text)`
    renders it; so is every prefix of it, and every prefix before an assistant turn with `add_generation_prompt`.
    Each of those renders must be a prefix of the whole render (else "chat template mismatch: ...");
    they cut it into spans. An assistant turn's span (its content, tool calls and closing end marker,
    everything the template writes for it up to the next message, e.g. `Hello<|im_end|>\\n` for nano3)
    is trained (mask 1); the generation prompt `<|im_start|>assistant\\n` belongs to the text before
    it (mask 0). With `last_turn_only`, only the last assistant turn is trained.

    The text is tokenized in pieces, a piece being a longest run of spans with the same mask value, each
    without special tokens added; so the prompt of the first trained turn is tokenized exactly as
    `apply_chat_template(messages[:i], add_generation_prompt=True)` is at inference. Every piece's
    ids must decode to the piece and all ids to the whole render (else "tokenizer mismatch: ...").
    Markers such as `<|im_start|>` that are not tokens of the tokenizer become ordinary text pieces.
    A record whose own text (a message, a tool call, the tools) holds one of the tokenizer's special tokens
    is refused ("special token in text"): the tokenizer would read it as a marker of the template (a
    user could end a turn or start an assistant one from inside a message).

    How, for speed (the result is the same): where it can be shown to give what those calls give, the
    renders use the Jinja template that `apply_chat_template` compiles, compiled again in a copy of its
    environment whose attribute lookup answers `message.role` and `loop.first` as the sandbox does, without its
    general checks (`_with_quick_lookups`), fed the variables `apply_chat_template` passes (`_JinjaRenderer`);
    and the pieces are encoded and decoded by the tokenizer's Rust backend, as the tokenizer's own call does it
    (`_rust_tokenizer`); elsewhere `apply_chat_template` and the tokenizer are called. Renders that are known
    without running the template are not run again: the whole conversation's for its longest prefix (the same
    call), and, for a template that ends with `{% if add_generation_prompt %}<constant text>{% endif %}` and
    reads the variable nowhere else, a prefix with the generation prompt is its render without it and that text
    (`_appended_generation_prompt`). Neither holds for a template that can render the same input differently
    twice (`_may_differ_between_renders`). The ids of all pieces are not decoded again where the pieces' own
    checks imply the result (`_byte_level`). `render_batch_with_mask` does many conversations at once.
    """
    return render_batch_with_mask([(messages, tools)], template, tokenizer, last_turn_only=last_turn_only)[0]


def render_batch_with_mask(
    conversations: Sequence[tuple[list[dict[str, Any]], list[dict[str, Any]] | None]],
    template: ChatTemplate,
    tokenizer: Any,
    *,
    last_turn_only: bool = False,
) -> list[MaskedTokens | str]:
    """`render_with_mask(messages, tools, template, tokenizer, last_turn_only=...)` of each `(messages, tools)` of
    `conversations`, in order: the same results, for less time per conversation than a call each (what a shard
    worker calls on its records, a batch at a time). Each conversation is rendered and cut into pieces on its own;
    then, where the Rust tokenizer is used, the pieces of all of them are encoded by one call (`encode_batch_fast`,
    which encodes each text on its own, as one call per piece does), and each conversation's ids are checked as
    `render_with_mask` checks them. Raises what `render_with_mask` raises on one of them."""
    setup = _RenderSetup.create(template, tokenizer)
    cuts = [_pieces(messages, tools, template, tokenizer, setup, last_turn_only) for messages, tools in conversations]
    return _tokenize_all(cuts, tokenizer)


@dataclass(frozen=True)
class _Pieces:
    """A conversation's render `full` cut into pieces (text, mask value): adjacent values differ, the texts make up
    `full`, and at least one piece is trained."""

    pieces: list[tuple[str, int]]
    full: str


def _pieces(
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    template: ChatTemplate,
    tokenizer: Any,
    setup: _RenderSetup | None,
    last_turn_only: bool,
) -> _Pieces | str:
    """The pieces of one conversation (see `render_with_mask`), or the reason it has none."""
    injected = _special_token_in_text(messages, tools, tokenizer)
    if injected is not None:
        return injected
    assistant_turns = [i for i, message in enumerate(messages) if message["role"] == "assistant"]
    trained = set(assistant_turns[-1:] if last_turn_only else assistant_turns)
    render = _renderer(messages, tools, template, tokenizer, setup)
    full = render(len(messages), False)
    if not isinstance(full, str):
        return full.reason
    if not full.isascii():  # a lone surrogate (JSON "\ud800") cannot be tokenized: a bad record, not a crash
        try:
            full.encode("utf-8")
        except UnicodeEncodeError as err:
            return f"text is not valid Unicode ({err.reason} at character {err.start}); fix or drop the record"
    render_last_prefix = _may_differ_between_renders(template.text)
    pieces: list[tuple[str, int]] = []  # (text, mask value), adjacent values differ
    done = 0  # the render up to here is in pieces
    for index in range(len(messages)):
        if index in trained:
            start = _cut(render, index, full, done, generation_prompt=True)
            if isinstance(start, _Failure):
                return start.reason
            _append(pieces, full[done:start], 0)
            done = start
        if index + 1 == len(messages) and not render_last_prefix:
            end: int | _Failure = len(full)  # messages[: index + 1] is the whole conversation: rendered above
        else:
            end = _cut(render, index + 1, full, done, generation_prompt=False)
        if isinstance(end, _Failure):
            return end.reason
        if index in trained and end == done:
            return f"chat template mismatch: the assistant turn messages[{index}] renders as nothing"
        _append(pieces, full[done:end], 1 if index in trained else 0)
        done = end
    _append(pieces, full[done:], 0)  # nothing, unless the template writes something after the last message
    if not any(mask for _, mask in pieces):
        return "no assistant turn to train on"
    return _Pieces(pieces, full)


_SPECIAL_TOKENS: dict[int, tuple[Any, tuple[str, ...]]] = {}  # id(tokenizer) -> (tokenizer, its special tokens)


def _special_tokens(tokenizer: Any) -> tuple[str, ...]:
    """The tokenizer's special token strings (`<|im_end|>`, `<|endoftext|>`, ...), computed once per tokenizer."""
    cached = _SPECIAL_TOKENS.get(id(tokenizer))
    if cached is not None and cached[0] is tokenizer:
        return cached[1]
    found = set(getattr(tokenizer, "all_special_tokens", None) or ())
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    found |= {token.content for token in added.values() if getattr(token, "special", False)}
    tokens = tuple(sorted(t for t in found if isinstance(t, str) and t))
    _SPECIAL_TOKENS[id(tokenizer)] = (tokenizer, tokens)
    return tokens


def _special_token_in_text(messages: list[dict[str, Any]], tools: Any, tokenizer: Any) -> str | None:
    """Why the record cannot be trained on when its own text holds a special token, else None.

    The text searched is each message's JSON and the tools' JSON. All of the record is encoded in one call first:
    each of those texts is a part of that one (JSON writes a list as its items' JSON between separators), so when
    no special token occurs in it, none occurs in them; only a record that holds one is searched part by part."""
    specials = _special_tokens(tokenizer)
    if not specials:
        return None
    whole = _JSON.encode([messages, tools] if tools else messages)
    for token in specials:
        if token in whole:
            break
    else:
        return None
    texts = [(f"messages[{i}]", _JSON.encode(m)) for i, m in enumerate(messages)]
    if tools:
        texts.append(("tools", _JSON.encode(tools)))
    for where, text in texts:
        for token in specials:
            if token in text:
                return (
                    f"special token in text: {where} holds {token!r}, which the tokenizer reads as a template "
                    "marker; remove it from the data"
                )
    return None


# What `json.dumps(value, ensure_ascii=False, default=str)` encodes with (made once, not on each call).
_JSON = json.JSONEncoder(ensure_ascii=False, default=str)


@dataclass(frozen=True)
class _Failure:
    reason: str


# Renders `messages[:count]`, with the generation prompt or without.
_Render = Callable[[int, bool], "str | _Failure"]
# What a template can call that gives a different text on each render of the same conversation.
_NONDETERMINISTIC = ("random", "lipsum", "strftime_now")


@functools.cache
def _may_differ_between_renders(text: str) -> bool:
    """Whether the template may render the same conversation twice differently: it names the `random` filter,
    `lipsum` or transformers' `strftime_now` (the sandbox offers nothing else that varies). The rest of a
    template is a function of its variables, which it cannot modify (transformers' sandbox is immutable)."""
    return any(name in text for name in _NONDETERMINISTIC)


def _renderer(
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    template: ChatTemplate,
    tokenizer: Any,
    setup: _RenderSetup | None,
) -> _Render:
    fast = None if setup is None else _JinjaRenderer.for_conversation(setup, messages, tools)
    if fast is not None:
        return fast.render

    def render(count: int, add_generation_prompt: bool) -> str | _Failure:
        return _render(messages[:count], tools, template, tokenizer, add_generation_prompt=add_generation_prompt)

    return render


def _render(
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    template: ChatTemplate,
    tokenizer: Any,
    *,
    add_generation_prompt: bool,
) -> str | _Failure:
    try:
        rendered = tokenizer.apply_chat_template(
            messages,
            tools=tools,
            chat_template=template.text,
            add_generation_prompt=add_generation_prompt,
            tokenize=False,
        )
    except Exception as err:  # jinja2 errors, raise_exception() in the template, transformers' checks
        return _failed(len(messages), err)
    if not isinstance(rendered, str):
        return _Failure(f"chat template rendered a {type(rendered).__name__}, not a string")
    return rendered


def _failed(count: int, err: Exception) -> _Failure:
    return _Failure(f"chat template failed on messages[:{count}]: {type(err).__name__}: {err}")


@functools.cache
def _transformers_chat() -> Any:
    """transformers' chat template module when it has the pieces `apply_chat_template` (of
    `PreTrainedTokenizerBase`) is made of, as `_JinjaRenderer` uses them; else None."""
    try:
        from transformers.utils import chat_template_utils as chat
    except ImportError:
        return None
    needed = ("_compile_jinja_template", "_normalize_chat_messages", "_plain_template_data", "_alias_reasoning_fields")
    return chat if all(callable(getattr(chat, name, None)) for name in needed) else None


@functools.cache
def _reasoning_fields() -> frozenset[str] | None:
    """The keys `_alias_reasoning_fields` reads (it copies a message only when the message has a value under one of
    them, and returns the others as they are); None when transformers does not name them."""
    fields = getattr(_transformers_chat(), "_REASONING_FIELDS", None)
    if not isinstance(fields, tuple) or not all(isinstance(field, str) for field in fields):
        return None
    return frozenset(fields)


@functools.cache
def _compiled(text: str) -> tuple[Any, dict[str, Any], Callable[..., Any]]:
    """The template as transformers compiles it (same sandboxed environment, filters and globals; see
    `_with_quick_lookups`), its globals as one dict, and Jinja's `new_context` (imported here, jinja2 being
    imported only when a template is used). Raises what the compilation raises."""
    from jinja2.runtime import new_context

    compiled = _with_quick_lookups(_transformers_chat()._compile_jinja_template(text), text)
    return compiled, dict(compiled.globals), new_context


# The names an attribute lookup finds on an exact dict: those of its class and of `object` (a dict instance has no
# attributes of its own); for any other name, `getattr(a_dict, name)` raises AttributeError.
_DICT_ATTRIBUTES = frozenset(name for klass in dict.__mro__ for name in vars(klass))
# LoopContext's attributes that are ints or bools computed from its int counters, without running its iterator.
_LOOP_COUNTERS = frozenset(("first", "index", "index0", "depth", "depth0"))


def _with_quick_lookups(compiled: Any, text: str) -> Any:
    """`compiled` (a template compiled by transformers) compiled again, from `text`, in a copy of its environment
    (`Environment.overlay`: the same class, settings, filters, tests, globals and extensions) whose `getattr` (what
    the template's `x.name` calls) answers two cases without the sandbox's general checks, with what those checks
    answer there; `compiled` itself when its environment is not jinja2's `ImmutableSandboxedEnvironment` as is.

    jinja2's `SandboxedEnvironment.getattr(obj, name)` first tries `getattr(obj, name)`: when that raises
    AttributeError it returns `obj[name]` (an Undefined for `name` when that raises a KeyError); when it succeeds it
    returns the value unless `wrap_str_format` wraps it (str.format methods only) or `is_safe_attribute` refuses it.
    1. For an exact dict and a str name that is none of `_DICT_ATTRIBUTES` (`message.role`, `call.function`), the
       attribute lookup raises AttributeError: so `obj[name]`, or the Undefined.
    2. For an exact `LoopContext` and a name of `_LOOP_COUNTERS` (`loop.first`), the lookup succeeds, giving an int
       or a bool (no str.format method to wrap), and `ImmutableSandboxedEnvironment.is_safe_attribute` accepts it:
       the name has no leading underscore, a LoopContext is none of the objects `is_internal_attribute` looks
       into, and none of these names is a method that `modifies_known_mutable` refuses on any mutable type.
    Anything else goes to the sandbox's `getattr`."""
    from jinja2.runtime import LoopContext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    environment = compiled.environment
    checks = ("getattr", "is_safe_attribute", "wrap_str_format")
    if type(environment) is not ImmutableSandboxedEnvironment or any(name in vars(environment) for name in checks):
        return compiled
    own = environment.overlay()
    sandboxed = functools.partial(ImmutableSandboxedEnvironment.getattr, own)

    def quick_getattr(obj: Any, attribute: str) -> Any:
        kind = type(obj)
        if kind is dict:
            if type(attribute) is str and attribute not in _DICT_ATTRIBUTES:
                try:
                    return obj[attribute]
                except KeyError:
                    return own.undefined(obj=obj, name=attribute)
        elif kind is LoopContext and attribute in _LOOP_COUNTERS:
            return getattr(obj, attribute)
        return sandboxed(obj, attribute)

    own.getattr = quick_getattr  # type: ignore[method-assign]  # this environment only
    return own.from_string(text)


@functools.cache
def _renders_like_transformers(tokenizer_type: type) -> bool:
    """Whether this tokenizer class's `apply_chat_template` is transformers' own (the one `_JinjaRenderer`
    reproduces), not a subclass's or a processor's."""
    try:
        from transformers.tokenization_utils_base import PreTrainedTokenizerBase
    except ImportError:
        return False
    base = PreTrainedTokenizerBase
    return all(
        getattr(tokenizer_type, name, None) is getattr(base, name, 0)
        for name in ("apply_chat_template", "get_chat_template", "special_tokens_map")
    )


@dataclass(frozen=True)
class _RenderSetup:
    """What `_JinjaRenderer` takes from the template and the tokenizer, the same for every conversation of a batch:
    the compiled template, its globals, Jinja's `new_context`, the variables for the tokenizer's special tokens
    (copied as JSON data, or None when they are not; and as the tokenizer gives them), the globals and those
    variables merged, and the generation prompt that `_appended_generation_prompt` shows (or None)."""

    compiled: Any
    globals_: dict[str, Any]
    new_context: Callable[..., Any]
    special_tokens: dict[str, Any]
    json_special_tokens: dict[str, Any] | None
    merged: dict[str, Any] | None  # {**globals_, "tools": None, "documents": None, **json_special_tokens}
    generation_prompt: str | None

    @classmethod
    def create(cls, template: ChatTemplate, tokenizer: Any) -> _RenderSetup | None:
        """None (then `apply_chat_template` is called) unless the tokenizer's class uses transformers' own
        `apply_chat_template` and the text is not the name of one of the tokenizer's templates."""
        if _transformers_chat() is None or not _renders_like_transformers(tokenizer.__class__):
            return None
        named = tokenizer.chat_template
        if isinstance(named, dict) and template.text in named:
            return None  # get_chat_template would take the tokenizer's template of that name
        try:
            compiled, globals_, new_context = _compiled(template.text)
            if compiled.environment.is_async:
                return None
            special_tokens = tokenizer.special_tokens_map  # a new dict on each call
        except Exception:  # apply_chat_template raises the same: its path reports it
            return None
        json_special_tokens: dict[str, Any] | None = special_tokens
        if not all(type(k) is str and type(v) is str for k, v in special_tokens.items()):  # else as is
            try:
                json_special_tokens = _json_copy(special_tokens)
            except _NotJSON:
                json_special_tokens = None
        merged = None
        if json_special_tokens is not None:  # Template.render's context: the globals, then the variables
            merged = {**globals_, "tools": None, "documents": None, **json_special_tokens}
        prompt = None if _may_differ_between_renders(template.text) else _appended_generation_prompt(template.text)
        return cls(compiled, globals_, new_context, special_tokens, json_special_tokens, merged, prompt)


class _JinjaRenderer:
    """Renders prefixes of one conversation as `tokenizer.apply_chat_template(messages[:count], tools=tools,
    chat_template=text, add_generation_prompt=..., tokenize=False)` does, from the same pieces: transformers'
    compiled template (its sandboxed environment, filters and globals), fed the same variables (the messages
    without their None values, copied, with reasoning fields aliased, as transformers' functions make them;
    the tools; no documents; `add_generation_prompt`; the tokenizer's special tokens), rendered as
    `Template.render` renders (`new_context`, then `root_render_func`, errors re-raised by
    `handle_exception`). Unlike `apply_chat_template`, it converts the messages once per conversation (the
    conversion maps each message on its own, so a prefix's is a slice of the whole's; the template cannot
    modify them, transformers' sandbox being immutable), merges the globals once, and derives a render with
    the generation prompt when `_appended_generation_prompt` shows how.

    `create` gives None (then `apply_chat_template` is called) unless `_RenderSetup.create` gives a setup, the
    messages are a non-empty list of dicts, the tools None or a list of dicts, and the conversion succeeds."""

    def __init__(
        self,
        setup: _RenderSetup,
        chat: list[dict[str, Any]],
        variables: dict[str, Any],
    ) -> None:
        self._compiled = setup.compiled
        self._globals = setup.globals_
        self._new_context = setup.new_context
        self._chat = chat
        self._variables = variables  # Template.render's context: the globals, then the variables
        self._generation_prompt = setup.generation_prompt
        self._without_prompt: dict[int, str] = {}  # count -> render without the generation prompt

    @classmethod
    def create(
        cls, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, template: ChatTemplate, tokenizer: Any
    ) -> _JinjaRenderer | None:
        setup = _RenderSetup.create(template, tokenizer)
        return None if setup is None else cls.for_conversation(setup, messages, tools)

    @classmethod
    def for_conversation(
        cls, setup: _RenderSetup, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> _JinjaRenderer | None:
        if not isinstance(messages, list) or not messages or not all(type(m) is dict for m in messages):
            return None  # apply_chat_template's own errors, batches and message objects: its path
        if tools is not None and not (isinstance(tools, list) and all(type(t) is dict for t in tools)):
            return None  # tools given as functions (transformers converts them) or wrong: its path
        chat_utils = _transformers_chat()
        try:
            try:  # JSON data (what records are): the same copies, made faster
                chat = [_message_copy(message) for message in messages]
                if setup.merged is None:
                    raise _NotJSON
                variables = {**setup.merged, "tools": _json_copy(tools)}
            except _NotJSON:
                chat = chat_utils._plain_template_data(chat_utils._normalize_chat_messages(messages))
                variables = {
                    **setup.globals_,
                    "tools": chat_utils._plain_template_data(tools),
                    "documents": None,
                    **chat_utils._plain_template_data(setup.special_tokens),
                }
            reasoning = _reasoning_fields()
            if reasoning is None or not all(map(reasoning.isdisjoint, chat)):
                chat = chat_utils._alias_reasoning_fields(chat)  # else it gives the same messages back
        except Exception:  # apply_chat_template raises the same: its path reports it
            return None
        return cls(setup, chat, variables)

    def render(self, count: int, add_generation_prompt: bool) -> str | _Failure:
        if add_generation_prompt and self._generation_prompt is not None and count in self._without_prompt:
            return self._without_prompt[count] + self._generation_prompt  # what rendering it gives, shown there
        rendered = self._render(count, add_generation_prompt)
        if not add_generation_prompt and isinstance(rendered, str):
            self._without_prompt[count] = rendered
        return rendered

    def _render(self, count: int, add_generation_prompt: bool) -> str | _Failure:
        compiled = self._compiled
        variables = {**self._variables, "messages": self._chat[:count], "add_generation_prompt": add_generation_prompt}
        try:
            # Template.new_context(variables) with the globals merged already, and given as a dict, not a ChainMap
            context = self._new_context(
                compiled.environment, compiled.name, compiled.blocks, variables, True, self._globals
            )
            try:
                return str(compiled.environment.concat(compiled.root_render_func(context)))
            except Exception:
                compiled.environment.handle_exception()  # re-raises it, as Template.render does
                raise
        except Exception as err:
            return _failed(count, err)


@functools.cache
def _appended_generation_prompt(text: str) -> str | None:
    """The text that `add_generation_prompt` appends to the render, when the template does nothing else with
    it, so that rendering a conversation with it gives the render without it followed by that text; else None.

    Shown on the template's syntax tree (parsed by transformers' environment): the variable is named once, as the
    test of the template's last top-level statement, an `{% if %}` with no elif/else that outputs constant text
    only (`{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}`, as in nano3 and most ChatML
    templates). Everything before that statement runs the same either way (it never reads the variable; the
    template cannot load other templates, and `_may_differ_between_renders` is checked by the caller), and
    the statement writes that text or nothing. Raises nothing: None when anything is otherwise."""
    try:
        import jinja2.nodes as nodes

        environment = _compiled(text)[0].environment
        if environment.autoescape is not False or environment.finalize is not None:
            return None
        tree = environment.parse(text)
        named = [node for node in tree.find_all(nodes.Name) if node.name == "add_generation_prompt"]
        loads = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)
        if len(named) != 1 or not tree.body or any(True for _ in tree.find_all(loads)):
            return None
        last = tree.body[-1]
        if not isinstance(last, nodes.If) or last.test is not named[0] or last.elif_ or last.else_:
            return None
        parts = []
        for output in last.body:
            if not isinstance(output, nodes.Output):
                return None
            for node in output.nodes:
                if isinstance(node, nodes.TemplateData):
                    parts.append(node.data)
                elif isinstance(node, nodes.Const) and type(node.value) is str:
                    parts.append(node.value)
                else:
                    return None
        return "".join(parts)
    except Exception:
        return None


class _NotJSON(Exception):
    pass


def _json_copy(value: Any) -> Any:
    """A copy of JSON data (exact dict with str keys, list, str, int, float, bool, None; else _NotJSON): what
    transformers' `_plain_template_data` (and `_message_objects_to_dicts`) make of such data, a new dict or list
    for each one and the same scalars."""
    kind = type(value)
    if kind is str or value is None or kind is int or kind is float or kind is bool:
        return value
    if kind is dict:
        copy = {}
        for key, item in value.items():
            if type(key) is not str:
                raise _NotJSON
            copy[key] = _json_copy(item)
        return copy
    if kind is list:
        return [_json_copy(item) for item in value]
    raise _NotJSON


def _message_copy(message: dict[str, Any]) -> dict[str, Any]:
    """`_json_copy` of a message without its keys whose value is None, as `_normalize_chat_messages` drops them."""
    copy = {}
    for key, value in message.items():
        if type(key) is not str:
            raise _NotJSON
        if type(value) is str:  # most values: what `_json_copy` returns for them
            copy[key] = value
        elif value is not None:
            copy[key] = _json_copy(value)
    return copy


def _cut(render: _Render, count: int, full: str, done: int, *, generation_prompt: bool) -> int | _Failure:
    """Where the render of `messages[:count]` ends in the whole render `full` (at or after `done`)."""
    if not count:  # transformers renders no empty conversation
        return _mismatch(count, generation_prompt, "cannot render {} (the conversation starts with the assistant)")
    rendered = render(count, generation_prompt)
    if isinstance(rendered, _Failure):
        return rendered
    if not full.startswith(rendered):
        return _mismatch(count, generation_prompt, "the render of {} is not a prefix of the whole render")
    if len(rendered) < done:
        return _mismatch(count, generation_prompt, "the render of {} is shorter than the one before it")
    return len(rendered)


def _mismatch(count: int, generation_prompt: bool, problem: str) -> _Failure:
    what = f"messages[:{count}]" + (" with the generation prompt" if generation_prompt else "")
    return _Failure("chat template mismatch: " + problem.format(what))


def _append(pieces: list[tuple[str, int]], text: str, mask: int) -> None:
    if not text:
        return
    if pieces and pieces[-1][1] == mask:
        pieces[-1] = (pieces[-1][0] + text, mask)
    else:
        pieces.append((text, mask))


_FEW_TEXTS = 8  # fewer texts than this (one conversation's) are encoded one call each


def _tokenize_all(cuts: list[_Pieces | str], tokenizer: Any) -> list[MaskedTokens | str]:
    """Each conversation's ids and loss mask, or the reason it has none (see `render_with_mask`)."""
    backend = _rust_tokenizer(tokenizer)
    if backend is None:
        return [cut if isinstance(cut, str) else _tokenize(cut, tokenizer) for cut in cuts]
    # What `tokenizer(texts, add_special_tokens=False)` returns: the ids of `encode_batch(texts)`, each text encoded on
    # its own (no padding to apply; `encode_batch_fast` skips the offsets, which are not used), a few texts one call
    # each (sparing a hand-off to the thread pool, when it is used, for a few short texts); and what `_decode` returns
    # (no clean-up of spaces asked).
    texts = [text for cut in cuts if not isinstance(cut, str) for text, _ in cut.pieces]
    encode = backend.encode_batch_fast
    if len(texts) < _FEW_TEXTS:
        encodings = iter([encode([text], add_special_tokens=False)[0] for text in texts])
    else:
        encodings = iter(encode(texts, add_special_tokens=False))
    decode = functools.partial(backend.decode, skip_special_tokens=False)
    byte_level = _byte_level(backend)
    results: list[MaskedTokens | str] = []
    for cut in cuts:
        if isinstance(cut, str):
            results.append(cut)
        else:
            encoded = [next(encodings).ids for _ in cut.pieces]
            results.append(_checked(cut, encoded, decode, byte_level and "\ufffd" not in cut.full))
    return results


def _tokenize(cut: _Pieces, tokenizer: Any) -> MaskedTokens | str:
    """`_checked` with the ids that the tokenizer's own call gives."""
    encoded = tokenizer([text for text, _ in cut.pieces], add_special_tokens=False)["input_ids"]
    return _checked(cut, encoded, functools.partial(_decode, tokenizer), False)


def _checked(
    cut: _Pieces, encoded: list[list[int]], decode: Callable[[list[int]], str], whole_follows: bool
) -> MaskedTokens | str:
    """The conversation's ids and loss mask when each piece's ids decode to the piece and all of them to the whole
    render (known without decoding them when `whole_follows`: see `_byte_level`), else the reason."""
    for (text, _), ids in zip(cut.pieces, encoded, strict=True):
        if decode(ids) != text:
            return f"tokenizer mismatch: the ids of the piece {_excerpt(text)} do not decode to it"
    all_ids = list(itertools.chain.from_iterable(encoded))
    if not whole_follows and decode(all_ids) != cut.full:
        return "tokenizer mismatch: the pieces' ids together do not decode to the whole render"
    input_ids = np.array(all_ids, dtype=np.int32)
    loss_mask = np.repeat(np.array([mask for _, mask in cut.pieces], dtype=np.uint8), [len(ids) for ids in encoded])
    return MaskedTokens(input_ids, loss_mask)


def _byte_level(backend: Any) -> bool:
    """Whether the Rust tokenizer's decoder is tokenizers' `ByteLevel`: then, for a render that holds no U+FFFD,
    the ids of all its pieces decode to the render once each piece's ids have decoded to the piece, and decoding them
    all again proves nothing more.

    `decode(ids)` maps each id to its token (none skipped here, special tokens being kept), and `ByteLevel` each token
    to bytes (through the byte-level alphabet, or the token's UTF-8), then returns all those bytes, concatenated,
    decoded as UTF-8 with U+FFFD for what is not valid UTF-8. The ids of a piece that decode to the piece, which holds
    no U+FFFD, thus give its UTF-8 bytes; all ids give the concatenation of those, the UTF-8 of the render."""
    from tokenizers.decoders import ByteLevel

    return type(backend.decoder) is ByteLevel


def _decode(tokenizer: Any, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


@functools.cache
def _encodes_like_transformers(tokenizer_type: type) -> bool:
    """Whether `tokenizer(texts, add_special_tokens=False)["input_ids"]` and `tokenizer.decode(ids,
    skip_special_tokens=False, clean_up_tokenization_spaces=False)` of this class are transformers'
    `TokenizersBackend` ones: one `encode_batch` of its Rust tokenizer (after setting no truncation, no padding
    and `encode_special_tokens` to `split_special_tokens`) and one `decode` of it."""
    try:
        from transformers.tokenization_utils_base import PreTrainedTokenizerBase
        from transformers.tokenization_utils_tokenizers import TokenizersBackend
    except ImportError:
        return False
    if not issubclass(tokenizer_type, TokenizersBackend) or hasattr(tokenizer_type, "_switch_to_input_mode"):
        return False
    same = (
        (PreTrainedTokenizerBase, ("__call__", "decode", "_get_padding_truncation_strategies")),
        (TokenizersBackend, ("_encode_plus", "set_truncation_and_padding", "_convert_encoding", "_decode")),
    )
    return all(
        getattr(tokenizer_type, name, None) is getattr(owner, name, 0) for owner, names in same for name in names
    )


def _rust_tokenizer(tokenizer: Any) -> Any:
    """The Rust tokenizer behind `tokenizer` when calling it as below gives what transformers gives (see
    `_encodes_like_transformers`), without building a BatchEncoding; else None (another tokenizer class, or
    truncation, padding or `encode_special_tokens` set on the backend, which transformers' call would reset
    first: then the tokenizer itself is called, and resets them)."""
    if not _encodes_like_transformers(tokenizer.__class__):
        return None
    backend = tokenizer._tokenizer
    if (
        backend.truncation is not None
        or backend.padding is not None
        or backend.encode_special_tokens != tokenizer.split_special_tokens
    ):
        return None
    return backend


def _excerpt(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
