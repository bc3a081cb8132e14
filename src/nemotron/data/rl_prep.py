"""RL data prep: render prompt records per shard (receipted, see rl_shard.py), then join each split's prompts.

Shards come from the same plan as the other preps' (`shard_plan.plan_work`) and run through the same
runner (`shard_runner`: skip valid receipts, a spawn process pool). `finalize_rl` checks every receipt and
writes each split's prompts, shard by shard in plan order, to one JSONL file.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nemotron.data.bad_records import check_bad_records, keep_examples
from nemotron.data.blend_spec import BlendSpec
from nemotron.data.chat_template import ChatTemplate
from nemotron.data.errors import DataError
from nemotron.data.record_shards import run_record_shards
from nemotron.data.rl_shard import SUFFIX, RenderPrompts, RlReceipt, RlSettings, valid_rl_receipt
from nemotron.data.shard_plan import WorkItem, plan_work
from nemotron.data.shard_runner import ShardRun, plan_receipts
from nemotron.data.splits import SPLITS
from nemotron.data.tokenizer import TextTokenizer
from nemotron.storage_errors import storage_errors


@dataclass(frozen=True)
class RlRequest:
    """One RL data prep run: inputs, shard plan size, settings, where, and how many workers."""

    blend: BlendSpec
    settings: RlSettings
    data_dir: Path
    num_shards: int
    workers: int
    force: bool = False
    max_bad_records: int = 0


@dataclass
class PromptSplit:
    """One split's prompts: how many, their tokens (sum and longest) and how many each verifier checks."""

    prompts: int = 0
    tokens: int = 0
    max_tokens: int = 0
    verifiers: dict[str, int] = field(default_factory=dict)

    @property
    def mean_tokens(self) -> float:
        return self.tokens / self.prompts if self.prompts else 0.0


@dataclass
class RlResult:
    shards: int
    shards_done_now: int
    splits: dict[str, PromptSplit]
    datasets: dict[str, dict[str, PromptSplit]] = field(default_factory=dict)  # dataset -> split -> counts
    too_long: int = 0
    bad_records: int = 0
    bad_examples: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # split -> prompts file name (in the output folder)
    seconds: float = 0.0

    def total(self) -> PromptSplit:
        """The splits together."""
        total = PromptSplit()
        for split in self.splits.values():
            _add(total, split.prompts, split.tokens, split.max_tokens, split.verifiers)
        return total


def run_rl_shards(
    request: RlRequest,
    template: ChatTemplate,
    load_tokenizer: Callable[[], TextTokenizer],
    log: Callable[[str], None] = print,
    only: Callable[[int], bool] = lambda i: True,
) -> ShardRun[RlReceipt]:
    """Render the planned items that `only(index)` selects and that lack a valid receipt (workers load
    their tokenizer with `load_tokenizer`, which must be picklable)."""
    return run_record_shards(
        request,
        template,
        load_tokenizer,
        RenderPrompts,
        lambda item: _valid(request, item),
        reads="RL data prep reads prompt records",
        records="prompts",
        log=log,
        only=only,
    )


def _valid(request: RlRequest, item: WorkItem) -> RlReceipt | None:
    return valid_rl_receipt(request.data_dir, item, request.settings.settings_hash)


def finalize_rl(
    request: RlRequest,
    out_dir: Path,
    run: ShardRun[RlReceipt],
    started: float,
    log: Callable[[str], None] = print,
    out_setting: str = "output_dir",
) -> RlResult:
    """Check every receipt, enforce `max_bad_records`, write each split's prompts to `out_dir/<split>.jsonl`.

    `out_setting` names what moves `out_dir` in the error of a folder that refuses the write.
    """
    items = plan_work(request.blend, request.num_shards)
    checked = plan_receipts(items, run, lambda item: _valid(request, item), request.data_dir)
    result = RlResult(len(items), run.done_now, {split: PromptSplit() for split in SPLITS})
    for item, receipt in zip(items, checked, strict=True):
        result.too_long += receipt.too_long
        result.bad_records += receipt.bad
        keep_examples(result.bad_examples, receipt.bad_examples)
        dataset = result.datasets.setdefault(item.dataset, {split: PromptSplit() for split in SPLITS})
        for split, out in receipt.splits.items():
            for into in (result.splits[split], dataset[split]):
                _add(into, out.prompts, out.tokens, out.max_tokens, out.verifiers)
    check_bad_records(result.bad_records, result.bad_examples, request.max_bad_records)
    if not result.splits["train"].prompts:
        raise DataError(
            f"the blend {request.blend.source} produced no train prompts ({result.bad_records} bad records, "
            f"{result.too_long} of them over max_prompt_tokens)"
        )
    for split, totals in result.splits.items():
        if not totals.prompts:
            log(f"warning: split {split!r} received no prompts")
            continue
        parts = [request.data_dir / f"{r.splits[split].prefix}{SUFFIX}" for r in checked if r.splits[split].prompts]
        name = f"{split}{SUFFIX}"
        # complete or absent: joined under a temporary name, then renamed (out_dir is a registry staging folder)
        _join(parts, out_dir / name, out_setting)
        result.files[split] = name
        verifiers = ", ".join(f"{verifier} {count}" for verifier, count in sorted(totals.verifiers.items()))
        log(
            f"{split}: {totals.prompts} prompts, {totals.tokens:,} prompt tokens "
            f"(mean {totals.mean_tokens:.1f}, max {totals.max_tokens}); verifiers: {verifiers}"
        )
    result.seconds = time.perf_counter() - started
    return result


def _add(into: PromptSplit, prompts: int, tokens: int, max_tokens: int, verifiers: dict[str, int]) -> None:
    into.prompts += prompts
    into.tokens += tokens
    into.max_tokens = max(into.max_tokens, max_tokens)
    for name, count in verifiers.items():
        into.verifiers[name] = into.verifiers.get(name, 0) + count


def _join(parts: list[Path], target: Path, setting: str) -> None:
    """Concatenate `parts` into `target` through a temporary sibling (removed on any failure)."""
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with storage_errors("RL prompts", target.parent, setting), open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as source:
                    shutil.copyfileobj(source, out)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
