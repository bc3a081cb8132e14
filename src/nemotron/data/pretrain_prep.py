"""Pretraining data prep: tokenize a blend into Megatron bin/idx files per split, plus blend.json."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from nemotron.data.blend_spec import BlendSpec, DatasetSpec
from nemotron.data.megatron_blend import write_blend
from nemotron.data.sources import iter_documents
from nemotron.data.splits import SPLITS, SplitFractions
from nemotron.data.tokenizer import TextTokenizer

BLEND_FILE = "blend.json"


@dataclass(frozen=True)
class PretrainPrepSettings:
    """Everything that decides the bytes of the output (recorded in the artifact)."""

    blend: BlendSpec
    fractions: SplitFractions
    append_eod: bool = True
    batch_size: int = 256


@dataclass
class SplitStats:
    """Counts for one dataset in one split."""

    documents: int = 0
    tokens: int = 0
    bytes: int = 0


@dataclass
class PrepResult:
    """What was written: the blend file (relative to the output dir) and counts per dataset/split."""

    blend_file: str
    dtype: str
    stats: dict[str, dict[str, SplitStats]] = field(default_factory=dict)
    empty_documents: int = 0
    seconds: float = 0.0

    def totals(self) -> dict[str, SplitStats]:
        out = {split: SplitStats() for split in SPLITS}
        for per_split in self.stats.values():
            for split, s in per_split.items():
                out[split].documents += s.documents
                out[split].tokens += s.tokens
                out[split].bytes += s.bytes
        return out


def prepare_pretrain_data(
    settings: PretrainPrepSettings,
    tokenizer: TextTokenizer,
    out_dir: Path,
    log: Callable[[str], None] = print,
) -> PrepResult:
    """Write `<out_dir>/<split>/<dataset>.{bin,idx}` and `<out_dir>/blend.json`."""
    import numpy as np
    from megatron.core.datasets.indexed_dataset import DType

    dtype = DType.optimal_dtype(tokenizer.vocab_size)
    result = PrepResult(blend_file=BLEND_FILE, dtype=np.dtype(dtype).name)
    started = time.perf_counter()
    for spec in settings.blend.datasets:
        result.stats[spec.name] = _prepare_dataset(spec, settings, tokenizer, out_dir, dtype, result, log)
    per_split: dict[str, list[tuple[float, str]]] = {split: [] for split in SPLITS}
    for spec in settings.blend.datasets:
        for split in SPLITS:
            if result.stats[spec.name][split].documents:
                per_split[split].append((spec.weight, f"{split}/{spec.name}"))
    for split, entries in per_split.items():
        if not entries:
            log(f"warning: split {split!r} received no documents (raise its fraction or add data)")
    write_blend(out_dir / BLEND_FILE, per_split)
    result.seconds = time.perf_counter() - started
    return result


def _prepare_dataset(
    spec: DatasetSpec,
    settings: PretrainPrepSettings,
    tokenizer: TextTokenizer,
    out_dir: Path,
    dtype: type,
    result: PrepResult,
    log: Callable[[str], None],
) -> dict[str, SplitStats]:
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    builders = {}
    for split in SPLITS:
        (out_dir / split).mkdir(parents=True, exist_ok=True)
        builders[split] = IndexedDatasetBuilder(str(out_dir / split / f"{spec.name}.bin"), dtype=dtype)
    stats = {split: SplitStats() for split in SPLITS}
    batch: list[tuple[str, str]] = []  # (split, text)
    index = 0

    def flush() -> None:
        ids_batch = tokenizer.encode_batch([text for _, text in batch])
        for (split, text), ids in zip(batch, ids_batch):
            if settings.append_eod:
                ids.append(tokenizer.eod_id)
            builders[split].add_document(ids, [len(ids)])
            s = stats[split]
            s.documents += 1
            s.tokens += len(ids)
            s.bytes += len(text.encode("utf-8"))
        batch.clear()

    started = time.perf_counter()
    for document in iter_documents(spec):
        if not document.text.strip():
            result.empty_documents += 1
            continue
        batch.append((settings.fractions.assign(spec.name, index), document.text))
        index += 1
        if len(batch) >= settings.batch_size:
            flush()
    if batch:
        flush()
    for split in SPLITS:
        prefix = out_dir / split / spec.name
        builders[split].finalize(f"{prefix}.idx")
        if not stats[split].documents:  # Megatron cannot map empty files; blend.json omits them
            for suffix in (".bin", ".idx"):
                Path(f"{prefix}{suffix}").unlink(missing_ok=True)
    tokens = sum(s.tokens for s in stats.values())
    elapsed = max(time.perf_counter() - started, 1e-9)
    log(
        f"dataset {spec.name}: {index} documents, {tokens} tokens "
        f"(train {stats['train'].documents} / valid {stats['valid'].documents} / test {stats['test'].documents} docs), "
        f"{tokens / elapsed:,.0f} tokens/s"
    )
    return stats
