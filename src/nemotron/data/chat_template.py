"""Chat templates for SFT data: load one, check a conversation record, render it with an exact loss mask."""

from __future__ import annotations

import hashlib
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
    The whole conversation is rendered with `tokenizer.apply_chat_template(..., chat_template=template.text)`;
    so is every prefix of it, and every prefix before an assistant turn with `add_generation_prompt`.
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
    """
    assistant_turns = [i for i, message in enumerate(messages) if message["role"] == "assistant"]
    trained = set(assistant_turns[-1:] if last_turn_only else assistant_turns)
    full = _render(messages, tools, template, tokenizer, add_generation_prompt=False)
    if not isinstance(full, str):
        return full.reason
    pieces: list[tuple[str, int]] = []  # (text, mask value), adjacent values differ
    done = 0  # the render up to here is in pieces
    for index in range(len(messages)):
        if index in trained:
            start = _cut(messages[:index], tools, template, tokenizer, full, done, generation_prompt=True)
            if isinstance(start, _Failure):
                return start.reason
            _append(pieces, full[done:start], 0)
            done = start
        end = _cut(messages[: index + 1], tools, template, tokenizer, full, done, generation_prompt=False)
        if isinstance(end, _Failure):
            return end.reason
        if index in trained and end == done:
            return f"chat template mismatch: the assistant turn messages[{index}] renders as nothing"
        _append(pieces, full[done:end], 1 if index in trained else 0)
        done = end
    _append(pieces, full[done:], 0)  # nothing, unless the template writes something after the last message
    return _tokenize(pieces, full, tokenizer)


@dataclass(frozen=True)
class _Failure:
    reason: str


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
        return _Failure(f"chat template failed on messages[:{len(messages)}]: {type(err).__name__}: {err}")
    if not isinstance(rendered, str):
        return _Failure(f"chat template rendered a {type(rendered).__name__}, not a string")
    return rendered


def _cut(
    prefix: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    template: ChatTemplate,
    tokenizer: Any,
    full: str,
    done: int,
    *,
    generation_prompt: bool,
) -> int | _Failure:
    """Where the render of `prefix` ends in the whole render `full` (at or after `done`)."""
    what = f"messages[:{len(prefix)}]" + (" with the generation prompt" if generation_prompt else "")
    if not prefix:  # transformers renders no empty conversation
        return _Failure(f"chat template mismatch: cannot render {what} (the conversation starts with the assistant)")
    rendered = _render(prefix, tools, template, tokenizer, add_generation_prompt=generation_prompt)
    if isinstance(rendered, _Failure):
        return rendered
    if not full.startswith(rendered):
        return _Failure(f"chat template mismatch: the render of {what} is not a prefix of the whole render")
    if len(rendered) < done:
        return _Failure(f"chat template mismatch: the render of {what} is shorter than the one before it")
    return len(rendered)


def _append(pieces: list[tuple[str, int]], text: str, mask: int) -> None:
    if not text:
        return
    if pieces and pieces[-1][1] == mask:
        pieces[-1] = (pieces[-1][0] + text, mask)
    else:
        pieces.append((text, mask))


def _tokenize(pieces: list[tuple[str, int]], full: str, tokenizer: Any) -> MaskedTokens | str:
    if not any(mask for _, mask in pieces):
        return "no assistant turn to train on"
    texts = [text for text, _ in pieces]
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    for text, ids in zip(texts, encoded, strict=True):
        if _decode(tokenizer, ids) != text:
            return f"tokenizer mismatch: the ids of the piece {_excerpt(text)} do not decode to it"
    input_ids = np.fromiter((i for ids in encoded for i in ids), dtype=np.int32)
    if _decode(tokenizer, input_ids.tolist()) != full:
        return "tokenizer mismatch: the pieces' ids together do not decode to the whole render"
    loss_mask = np.repeat(np.array([mask for _, mask in pieces], dtype=np.uint8), [len(ids) for ids in encoded])
    return MaskedTokens(input_ids, loss_mask)


def _decode(tokenizer: Any, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _excerpt(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
