"""RL prompt records: read one (a prompt, its expected answer and verifier), render and tokenize its prompt.

A record is an object with the prompt as `messages` (OpenAI chat form; a last assistant turn, a reference
reply, is not part of the prompt) or as `question` (one user turn), `expected_answer` (a string; a number
is taken as its text), optionally `verifier` (a name, see verifiers.py; default: the stage's
`default_verifier`) and `metadata` (an object passed to the verifier).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from nemotron.data.chat_template import ChatTemplate, _special_token_in_text, validate_conversation

RECORD_FIELDS = ("messages", "question", "expected_answer", "verifier", "metadata")  # what a record is read for
PROMPT_ENDS = ("user", "tool")  # the roles a prompt may end with: the policy replies to them


@dataclass(frozen=True)
class PromptRecord:
    """One usable RL record: the prompt's messages, the answer its reply is checked against, and how."""

    messages: list[dict[str, Any]]
    expected_answer: str
    verifier: str
    metadata: dict[str, Any]


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt rendered with the chat template and its generation prompt, and its token ids."""

    text: str
    ids: list[int]


def parse_prompt_record(value: object, default_verifier: str) -> PromptRecord | str:
    """The record's prompt, expected answer, verifier name and metadata, or why it is not a usable RL record
    (the verifier name is not resolved here: `VerifierCheck` does that once per name)."""
    if not isinstance(value, dict):
        return f"the record is a JSON {type(value).__name__}, not an object"
    messages = _prompt_messages(value)
    if isinstance(messages, str):
        return messages
    answer = value.get("expected_answer")
    if isinstance(answer, bool) or not isinstance(answer, str | int | float):
        found = "no 'expected_answer'" if answer is None else f"'expected_answer' is a {type(answer).__name__}"
        return f"{found}; it must be a string (or a number)"
    answer = str(answer)
    if not answer.strip():
        return "'expected_answer' is empty"
    verifier = value.get("verifier")
    if verifier is None:
        verifier = default_verifier
    elif not isinstance(verifier, str) or not verifier.strip():
        return f"'verifier' must be a verifier name, got {verifier!r}"
    metadata = value.get("metadata")
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):
        return f"'metadata' is a {type(metadata).__name__}, not an object"
    return PromptRecord(messages, answer, verifier.strip(), metadata)


def _prompt_messages(record: dict[str, Any]) -> list[dict[str, Any]] | str:
    """The prompt of a record: its `messages` without a last assistant turn, or its `question` as a user turn."""
    if "messages" in record:
        messages = record["messages"]
        if not isinstance(messages, list):
            return f"'messages' is a {type(messages).__name__}, not a list"
        if not messages:
            return "no prompt: 'messages' is empty"
        # the checks of an SFT conversation; a placeholder reply stands for the one a prompt does not have
        reply = {"role": "assistant", "content": "."}
        problem = validate_conversation({"messages": [*messages, reply]})
        if problem is not None:
            return problem
        prompt = messages[:-1] if messages[-1]["role"] == "assistant" else messages
        if not prompt:
            return "no prompt: 'messages' holds only an assistant turn"
        if prompt[-1]["role"] not in PROMPT_ENDS:
            return (
                f"the prompt's last turn, messages[{len(prompt) - 1}], is {prompt[-1]['role']!r}; "
                f"it must be {' or '.join(map(repr, PROMPT_ENDS))} for the model to answer"
            )
        return prompt
    question = record.get("question")
    if question is None:
        keys = ", ".join(repr(str(k)) for k in list(record)[:6]) or "none"
        return f"no prompt: neither 'messages' nor 'question' (keys: {keys})"
    if not isinstance(question, str) or not question.strip():
        return f"'question' must be a non-empty string, got {question!r:.60}"
    return [{"role": "user", "content": question}]


def render_prompt(messages: list[dict[str, Any]], template: ChatTemplate, hf_tokenizer: Any) -> RenderedPrompt | str:
    """The prompt rendered as `apply_chat_template(messages, add_generation_prompt=True)` renders it (the text a
    policy continues) and tokenized once, without special tokens added; or why it cannot be (a template error,
    or ids that do not decode to the text). A prompt whose own text holds one of the tokenizer's special tokens
    is refused, as for SFT: the tokenizer would read it as a marker of the template."""
    injected = _special_token_in_text(messages, None, hf_tokenizer)
    if injected is not None:
        return injected
    try:
        text = hf_tokenizer.apply_chat_template(
            messages, chat_template=template.text, add_generation_prompt=True, tokenize=False
        )
    except Exception as err:  # jinja2 errors, raise_exception() in the template, transformers' checks
        return f"chat template failed on the prompt: {type(err).__name__}: {err}"
    if not isinstance(text, str):
        return f"chat template rendered a {type(text).__name__}, not a string"
    ids = list(hf_tokenizer(text, add_special_tokens=False)["input_ids"])
    if hf_tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False) != text:
        return "tokenizer mismatch: the prompt's ids do not decode to the rendered prompt"
    return RenderedPrompt(text, ids)


class VerifierCheck:
    """Whether a verifier name resolves (`check_verifier_names`), asked once per name: a worker meets the
    same few names in every record."""

    def __init__(self) -> None:
        self._problems: dict[str, str | None] = {}

    def problem(self, name: str) -> str | None:
        if name not in self._problems:
            from nemotron.data.verifiers import VerifierError, check_verifier_names

            try:
                check_verifier_names([name])
                self._problems[name] = None
            except VerifierError as err:
                self._problems[name] = str(err)
        return self._problems[name]


def prompt_line(record_id: str, record: PromptRecord, rendered: RenderedPrompt) -> str:
    """The output line of one prompt (JSON, the same bytes for the same record, settings and tokenizer)."""
    line = {
        "id": record_id,
        "prompt_ids": rendered.ids,
        "prompt_text": rendered.text,
        "messages": record.messages,
        "expected_answer": record.expected_answer,
        "verifier": record.verifier,
        "metadata": record.metadata,
    }
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n"
