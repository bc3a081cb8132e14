"""Render one RL work item's prompt records into per-split prompt files (JSONL) and a receipt.

A shard writes, per split, one JSONL file of its prompts (a line each, see `rl_records.prompt_line`) at
`prompts/<split>/<dataset>/shard_NNNNN.jsonl` (committed like the other preps' files: never rewritten, see
shard_files.py), then its receipt (last): a shard without a valid receipt is redone.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from nemotron.data.bad_records import count_bad
from nemotron.data.blend_spec import DatasetSpec
from nemotron.data.chat_template import ChatTemplate
from nemotron.data.receipts import InputFingerprint, files_intact, fingerprint, matching_receipt, write_receipt
from nemotron.data.rl_records import (
    RECORD_FIELDS,
    PromptRecord,
    RenderedPrompt,
    VerifierCheck,
    parse_prompt_record,
    prompt_line,
    render_prompt,
)
from nemotron.data.shard_files import commit_files, staged_file, staged_path
from nemotron.data.shard_plan import WorkItem
from nemotron.data.sources import RawRecord, iter_json_records
from nemotron.data.splits import SPLITS, SplitFractions
from nemotron.data.tokenizer import TextTokenizer

SUFFIX = ".jsonl"
_NO_PROMPT = "RL data needs a 'messages' (OpenAI chat) or 'question' column, and 'expected_answer'"


@dataclass(frozen=True)
class RlSettings:
    """What decides the shards' bytes; `settings_hash` names the data folder."""

    fractions: SplitFractions
    max_prompt_tokens: int
    default_verifier: str
    settings_hash: str


@dataclass
class PromptsOutput:
    """One split of a shard: counts and its prompts file (prefix relative to the data folder)."""

    prompts: int = 0
    tokens: int = 0  # prompt tokens, summed
    max_tokens: int = 0  # of the longest prompt
    verifiers: dict[str, int] = field(default_factory=dict)  # verifier name -> prompts
    prefix: str = ""
    size: int = 0
    sha256: str = ""


@dataclass
class RlReceipt:
    """What a finished RL shard consumed and produced (no timings: identical runs write identical bytes)."""

    item_id: str
    settings_hash: str
    inputs: list[InputFingerprint]
    splits: dict[str, PromptsOutput]
    too_long: int = 0  # prompts over max_prompt_tokens (also counted as bad records)
    bad: int = 0
    bad_examples: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> RlReceipt:
        raw: dict[str, Any] = json.loads(text)
        raw["inputs"] = [InputFingerprint(**i) for i in raw["inputs"]]
        raw["splits"] = {k: PromptsOutput(**v) for k, v in raw["splits"].items()}
        return cls(**raw)

    def progress_counts(self) -> tuple[int, int]:
        """Prompts and prompt tokens, for progress lines."""
        return sum(s.prompts for s in self.splits.values()), sum(s.tokens for s in self.splits.values())


def valid_rl_receipt(data_dir: Path, item: WorkItem, settings_hash: str) -> RlReceipt | None:
    """The shard's receipt when it matches the inputs and settings and its files are intact."""
    receipt = matching_receipt(data_dir, item.id, item.ranges, settings_hash, RlReceipt.from_json)
    if receipt is None:
        return None
    files = [(f"{o.prefix}{SUFFIX}", o.size, o.sha256) for o in receipt.splits.values() if o.prompts]
    return receipt if files_intact(data_dir, files) else None


@dataclass(frozen=True)
class RenderPrompts:
    """RL's per-item process for the shard runner (picklable): `render_prompts` with the worker's tokenizer."""

    specs: dict[str, DatasetSpec]
    settings: RlSettings
    template: ChatTemplate
    data_dir: Path

    def __call__(self, item: WorkItem, tokenizer: TextTokenizer) -> RlReceipt:
        spec = self.specs[item.dataset]
        return render_prompts(item, spec, self.settings, self.template, tokenizer.hf_tokenizer, self.data_dir)


def render_prompts(
    item: WorkItem,
    spec: DatasetSpec,
    settings: RlSettings,
    template: ChatTemplate,
    hf_tokenizer: Any,
    data_dir: Path,
) -> RlReceipt:
    """Render the item's prompts into one prompts file per split, then write the receipt (last).

    Whatever stops it (an error, a full disk, a signal), its temporary files are removed.
    """
    tag = f".tmp{os.getpid()}"
    files = _SplitFiles(data_dir, item, tag)
    try:
        return _render_prompts(item, spec, settings, template, hf_tokenizer, data_dir, files)
    except BaseException:
        files.discard()
        raise


def _base(item: WorkItem, split: str) -> str:
    """The first-generation prefix of the item's prompts file of `split` (relative to the data folder)."""
    return f"prompts/{split}/{item.dataset}/shard_{item.shard:05d}"


def _render_prompts(
    item: WorkItem,
    spec: DatasetSpec,
    settings: RlSettings,
    template: ChatTemplate,
    hf_tokenizer: Any,
    data_dir: Path,
    files: _SplitFiles,
) -> RlReceipt:
    receipt = RlReceipt(item.id, settings.settings_hash, fingerprint(item.ranges), {s: PromptsOutput() for s in SPLITS})
    verifiers = VerifierCheck()
    limit = settings.max_prompt_tokens
    for rng in item.ranges:
        for line in iter_json_records(rng, spec, RECORD_FIELDS, fix=_NO_PROMPT, required=2):
            prompt = _prompt(line, settings, template, hf_tokenizer, verifiers)
            if isinstance(prompt, str):
                count_bad(receipt, prompt)
                continue
            record, rendered = prompt
            tokens = len(rendered.ids)
            if tokens > limit:
                receipt.too_long += 1
                count_bad(receipt, f"{line.origin}: the prompt has {tokens} tokens, over max_prompt_tokens={limit}")
                continue
            split = settings.fractions.assign(item.dataset, line.key)
            files.write(split, prompt_line(f"{item.dataset}/{line.key}", record, rendered))
            out = receipt.splits[split]
            out.prompts += 1
            out.tokens += tokens
            out.max_tokens = max(out.max_tokens, tokens)
            out.verifiers[record.verifier] = out.verifiers.get(record.verifier, 0) + 1
    for split, out in receipt.splits.items():
        if out.prompts:
            out.prefix, sums = commit_files(data_dir, _base(item, split), {SUFFIX: files.close(split)})
            out.size, out.sha256 = sums[SUFFIX]
    write_receipt(data_dir, receipt)  # written last: a shard without a valid receipt is redone
    return receipt


def _prompt(
    line: RawRecord, settings: RlSettings, template: ChatTemplate, hf_tokenizer: Any, verifiers: VerifierCheck
) -> tuple[PromptRecord, RenderedPrompt] | str:
    """The record and its rendered prompt, or the problem (with the record's file and line) that makes it bad."""
    if line.problem is not None:
        return line.problem
    record = parse_prompt_record(line.value, settings.default_verifier)
    if isinstance(record, str):
        return f"{line.origin}: {record}"
    unknown = verifiers.problem(record.verifier)
    if unknown is not None:
        return f"{line.origin}: {unknown}"
    rendered = render_prompt(record.messages, template, hf_tokenizer)
    if isinstance(rendered, str):
        return f"{line.origin}: {rendered}"
    return record, rendered


class _SplitFiles:
    """The item's prompts file of each split under this process's temporary name, opened at its first line."""

    def __init__(self, data_dir: Path, item: WorkItem, tag: str) -> None:
        self._data_dir, self._item, self._tag = data_dir, item, tag
        self._open: dict[str, IO[bytes]] = {}

    def write(self, split: str, line: str) -> None:
        handle = self._open.get(split)
        if handle is None:  # (a killed earlier run's temporaries removed)
            path = staged_file(self._data_dir, _base(self._item, split), SUFFIX, self._tag)
            handle = self._open[split] = open(path, "wb")  # noqa: SIM115 - closed by close() or discard()
        handle.write(line.encode("utf-8"))

    def close(self, split: str) -> Path:
        """Close the split's file; its temporary path."""
        self._open.pop(split).close()
        return self._path(split)

    def discard(self) -> None:
        """Close and remove every temporary file."""
        for handle in self._open.values():
            handle.close()
        self._open.clear()
        for split in SPLITS:
            self._path(split).unlink(missing_ok=True)

    def _path(self, split: str) -> Path:
        return staged_path(self._data_dir, _base(self._item, split), SUFFIX, self._tag)
