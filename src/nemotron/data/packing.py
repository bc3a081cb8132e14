"""Pack tokenized SFT conversations into rows of at most `pack_size` tokens, keeping document boundaries."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nemotron.data.errors import DataError
from nemotron.ranges import require_int_in_range
from nemotron.storage_errors import storage_errors
from nemotron.suggest import did_you_mean

PACKING_ALGORITHMS = ("first_fit_shuffle", "first_fit_decreasing", "concatenative")
OVERFLOW_MODES = ("truncate", "drop")
_INT32_MAX = 2**31 - 1
# seq_start_id and Arrow's list offsets are int32, so a row holds at most this many tokens.
MAX_PACK_SIZE = _INT32_MAX
PARQUET_COLUMNS = ("input_ids", "loss_mask", "seq_start_id")
_ROWS_PER_GROUP = 1024  # rows per Parquet row group (and per Arrow batch while writing)
_TOKENS_PER_BATCH = 2**26  # also flush a batch before its token count nears the int32 offsets' limit


@dataclass(frozen=True)
class PackingStats:
    """What a plan packs: efficiency is real tokens over slots (packs * pack_size); padding is never stored."""

    documents: int  # documents given to plan_packs
    packed_documents: int  # placed in a pack (truncated ones included)
    packs: int
    pack_size: int
    real_tokens: int
    truncated: int  # longer than pack_size, cut to their first pack_size tokens
    dropped: int  # longer than pack_size with overflow="drop"
    empty: int  # zero tokens: nothing to train on, so never placed
    loss_tokens: int | None = None  # tokens with loss_mask 1 in the packs, when masks were given

    @property
    def slots(self) -> int:
        return self.packs * self.pack_size

    @property
    def efficiency(self) -> float:
        return self.real_tokens / self.slots if self.slots else 0.0

    def summary(self) -> str:
        """One log line, e.g. "packed 1,000 documents into 120 rows of 4,096 tokens: efficiency 97.31% ..."."""
        loss = f", {self.loss_tokens:,} loss tokens" if self.loss_tokens is not None else ""
        return (
            f"packed {self.packed_documents:,} of {self.documents:,} documents into {self.packs:,} rows of "
            f"{self.pack_size:,} tokens: {self.real_tokens:,} tokens{loss}, efficiency {self.efficiency:.2%} "
            f"(truncated {self.truncated:,}, dropped {self.dropped:,}, empty {self.empty:,})"
        )


@dataclass(frozen=True)
class PackPlan:
    """Which documents go into which pack, in the order they are laid out in its row.

    `lengths` are the documents' token counts as given; a document placed after truncation takes
    `min(length, pack_size)` tokens. Every index appears in exactly one of `bins`, `dropped`, `empty`.
    """

    pack_size: int
    algorithm: str
    seed: int
    overflow: str
    lengths: tuple[int, ...]
    bins: tuple[tuple[int, ...], ...]
    truncated: tuple[int, ...]
    dropped: tuple[int, ...]
    empty: tuple[int, ...]

    def placed_length(self, document: int) -> int:
        return min(self.lengths[document], self.pack_size)

    def stats(self, masks_list: Sequence[Sequence[int] | np.ndarray] | None = None) -> PackingStats:
        """The plan's counts; with the documents' loss masks, also the loss tokens inside the packs."""
        placed = [doc for bin_ in self.bins for doc in bin_]
        loss_tokens = None
        if masks_list is not None:
            _check_count(masks_list, len(self.lengths), "loss masks")
            loss_tokens = sum(int(np.count_nonzero(np.asarray(masks_list[d])[: self.pack_size])) for d in placed)
        return PackingStats(
            documents=len(self.lengths),
            packed_documents=len(placed),
            packs=len(self.bins),
            pack_size=self.pack_size,
            real_tokens=sum(self.placed_length(d) for d in placed),
            truncated=len(self.truncated),
            dropped=len(self.dropped),
            empty=len(self.empty),
            loss_tokens=loss_tokens,
        )


@dataclass(frozen=True)
class PackedRow:
    """One packed sequence: documents laid end to end, no padding.

    `seq_start_id` holds each document's start offset inside the row (the first is 0); a document
    ends where the next starts, the last at `len(input_ids)`. `loss_mask` is *unshifted*: aligned with
    `input_ids`, 1 where that token is a training target (an assistant token). The trainer shifts it
    per document [s, e): inputs `input_ids[s:e-1]`, labels `input_ids[s+1:e]`, label mask
    `loss_mask[s+1:e]`, so no label crosses a document boundary. (NVIDIA Nemotron stores the mask
    already shifted per document; ours stays aligned so a row reads as the documents it holds.)
    """

    input_ids: np.ndarray  # int32
    loss_mask: np.ndarray  # uint8
    seq_start_id: np.ndarray  # int32

    def documents(self) -> list[tuple[int, int]]:
        """The (start, end) token span of each document in the row."""
        starts = [int(s) for s in self.seq_start_id]
        return list(zip(starts, starts[1:] + [len(self.input_ids)], strict=True))


def plan_packs(
    lengths: Sequence[int] | np.ndarray,
    pack_size: int,
    algorithm: str = "first_fit_shuffle",
    seed: int = 0,
    *,
    overflow: str = "truncate",
) -> PackPlan:
    """Assign documents of the given token `lengths` to packs of at most `pack_size` tokens.

    - `first_fit_shuffle`: documents in a seeded random order (`random.Random(seed)`), each into the
      first pack with room;
    - `first_fit_decreasing`: longest first (ties keep input order), each into the first pack with room;
    - `concatenative`: input order, a new pack whenever the next document does not fit.

    A document is never split across packs. One longer than `pack_size` is cut to its first
    `pack_size` tokens (`overflow="truncate"`) or left out (`"drop"`); both are counted. First fit
    finds the pack in O(log n) with a max tree over the packs' free room, so the plan takes
    O(n log n) for n documents.
    """
    require_int_in_range(
        "pack_size",
        pack_size,
        DataError,
        minimum=1,
        maximum=MAX_PACK_SIZE,
        fix="Set pack_size to the tokens per packed training sequence, e.g. 4096 (usually the model's seq_length)",
    )
    if algorithm not in PACKING_ALGORITHMS:
        raise DataError(
            f"packing={algorithm!r} is not a packing algorithm{did_you_mean(str(algorithm), PACKING_ALGORITHMS)}; "
            f"set packing to one of {', '.join(PACKING_ALGORITHMS)}"
        )
    if overflow not in OVERFLOW_MODES:
        raise DataError(
            f"overflow={overflow!r} is not an overflow mode{did_you_mean(str(overflow), OVERFLOW_MODES)}; "
            "set overflow to 'truncate' (keep the first pack_size tokens) or 'drop' (leave the document out)"
        )
    require_int_in_range("seed", seed, DataError, minimum=0, fix="Set seed to an integer >= 0")
    sizes = _checked_lengths(lengths)

    truncated, dropped, empty, order = [], [], [], []
    for doc, size in enumerate(sizes):
        if size == 0:
            empty.append(doc)
        elif size > pack_size and overflow == "drop":
            dropped.append(doc)
        else:
            if size > pack_size:
                truncated.append(doc)
            order.append(doc)
    placed = [min(size, pack_size) for size in sizes]

    if algorithm == "concatenative":
        bins = _concatenate(order, placed, pack_size)
    else:
        if algorithm == "first_fit_shuffle":
            random.Random(seed).shuffle(order)
        else:
            order.sort(key=lambda doc: -placed[doc])  # stable: equal lengths keep input order
        bins = _first_fit(order, placed, pack_size)
    return PackPlan(
        pack_size=pack_size,
        algorithm=algorithm,
        seed=seed,
        overflow=overflow,
        lengths=tuple(sizes),
        bins=tuple(tuple(bin_) for bin_ in bins),
        truncated=tuple(truncated),
        dropped=tuple(dropped),
        empty=tuple(empty),
    )


def _checked_lengths(lengths: Sequence[int] | np.ndarray) -> list[int]:
    array = np.asarray(lengths)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise DataError(f"document lengths must be a flat sequence of integers, got {array.dtype}, shape {array.shape}")
    if array.size and array.min() < 0:
        doc = int(np.argmin(array))
        raise DataError(f"document {doc} has a negative length ({int(array[doc])}); lengths are token counts")
    return [int(size) for size in array.tolist()]


def _concatenate(order: list[int], sizes: list[int], pack_size: int) -> list[list[int]]:
    bins: list[list[int]] = []
    room = 0
    for doc in order:
        if sizes[doc] > room:
            bins.append([])
            room = pack_size
        bins[-1].append(doc)
        room -= sizes[doc]
    return bins


def _first_fit(order: list[int], sizes: list[int], pack_size: int) -> list[list[int]]:
    """Each document of `order` (all sizes 1..pack_size) into the lowest-numbered pack with room.

    `free` is a max tree over len(order) rounded up to a power of two leaves, leaf b being pack b's
    free room (free[1] the root, node i's children 2i and 2i+1). Packs not opened yet are empty, so
    the leftmost leaf with room is an open pack or the next one to open.
    """
    leaves = 1 << max(len(order) - 1, 0).bit_length()
    free = [pack_size] * (2 * leaves)
    bins: list[list[int]] = []
    for doc in order:
        size = sizes[doc]
        node = 1
        while node < leaves:  # descend to the leftmost leaf with room
            node <<= 1
            if free[node] < size:
                node += 1
        pack = node - leaves
        if pack == len(bins):
            bins.append([])
        bins[pack].append(doc)
        value = free[node] - size
        free[node] = value
        while node > 1:  # refresh the maxima above it, stopping where nothing changes
            sibling = free[node ^ 1]
            node >>= 1
            best = value if value >= sibling else sibling
            if free[node] == best:
                break
            free[node] = best
            value = best
    return bins


def materialize(
    plan: PackPlan,
    ids_list: Sequence[Sequence[int] | np.ndarray],
    masks_list: Sequence[Sequence[int] | np.ndarray],
) -> Iterator[PackedRow]:
    """The plan's packs as rows, in pack order, from each document's token ids and (unshifted) loss mask."""
    _check_count(ids_list, len(plan.lengths), "token id lists")
    _check_count(masks_list, len(plan.lengths), "loss masks")
    for bin_ in plan.bins:
        ids_parts, mask_parts, starts = [], [], []
        offset = 0
        for doc in bin_:
            ids, mask = _document_arrays(doc, ids_list[doc], masks_list[doc], plan.lengths[doc])
            keep = plan.placed_length(doc)
            ids_parts.append(ids[:keep])
            mask_parts.append(mask[:keep])
            starts.append(offset)
            offset += keep
        yield PackedRow(
            input_ids=np.concatenate(ids_parts),
            loss_mask=np.concatenate(mask_parts),
            seq_start_id=np.asarray(starts, dtype=np.int32),
        )


def _check_count(values: Sequence[Any], expected: int, what: str) -> None:
    if len(values) != expected:
        raise DataError(f"the plan has {expected} documents but {len(values)} {what} were given")


def _document_arrays(
    doc: int, ids: Sequence[int] | np.ndarray, mask: Sequence[int] | np.ndarray, length: int
) -> tuple[np.ndarray, np.ndarray]:
    ids_array, mask_array = np.asarray(ids), np.asarray(mask)
    if len(ids_array) != length or len(mask_array) != length:
        raise DataError(
            f"document {doc}: the plan has {length} tokens but its ids have {len(ids_array)} and its loss mask "
            f"{len(mask_array)}; plan with the lengths of the ids that are packed"
        )
    if not np.issubdtype(ids_array.dtype, np.integer) or ids_array.min() < 0 or ids_array.max() > _INT32_MAX:
        raise DataError(f"document {doc}: token ids must be integers in [0, 2**31 - 1] (they are stored as int32)")
    if mask_array.dtype != np.bool_ and np.any((mask_array != 0) & (mask_array != 1)):
        raise DataError(f"document {doc}: the loss mask must hold only 0 and 1")
    return ids_array.astype(np.int32, copy=False), mask_array.astype(np.uint8, copy=False)


def write_packed_parquet(rows: Iterable[PackedRow], path: str | Path, *, setting: str = "output_dir") -> int:
    """Write packed rows to a zstd Parquet file at `path`; returns the number of rows.

    Columns: `input_ids` list<int32>, `loss_mask` list<uint8>, `seq_start_id` list<int32>. The file
    is written under a temporary name in the same folder and renamed into place, so `path` is
    either complete or absent; a failure leaves no temporary behind. A folder that refuses the write
    is a StorageError naming `setting` (what moves the folder).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    schema = pa.schema(
        [
            ("input_ids", pa.list_(pa.int32())),
            ("loss_mask", pa.list_(pa.uint8())),
            ("seq_start_id", pa.list_(pa.int32())),
        ]
    )
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    written = 0
    try:  # the StorageError is worked out before the temporary goes: a full disk may hide its errno
        with storage_errors("packed sequences", path.parent, setting):
            with pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
                pending: list[PackedRow] = []
                pending_tokens = 0
                for row in rows:
                    if pending and (
                        len(pending) >= _ROWS_PER_GROUP or pending_tokens + len(row.input_ids) > _TOKENS_PER_BATCH
                    ):
                        writer.write_table(_table(pending, schema), row_group_size=len(pending))
                        written += len(pending)
                        pending, pending_tokens = [], 0
                    pending.append(row)
                    pending_tokens += len(row.input_ids)
                if pending:
                    writer.write_table(_table(pending, schema), row_group_size=len(pending))
                    written += len(pending)
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return written


def _table(rows: list[PackedRow], schema: Any) -> Any:
    import pyarrow as pa

    def column(field: str, dtype: Any) -> Any:
        parts = [np.asarray(getattr(row, field), dtype=dtype) for row in rows]
        offsets = np.zeros(len(parts) + 1, dtype=np.int32)
        np.cumsum([len(part) for part in parts], out=offsets[1:])
        values = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
        return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))

    arrays = [column("input_ids", np.int32), column("loss_mask", np.uint8), column("seq_start_id", np.int32)]
    return pa.Table.from_arrays(arrays, schema=schema)


def read_packed_parquet(path: str | Path) -> list[PackedRow]:
    """The rows of a file written by `write_packed_parquet` (for tests and training data loaders)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    missing = [name for name in PARQUET_COLUMNS if name not in table.column_names]
    if missing:
        raise DataError(f"{path}: not a packed SFT file: no column {', '.join(missing)}; write it with packing")
    columns = []
    for name in PARQUET_COLUMNS:
        array = table.column(name).combine_chunks()
        columns.append((array.offsets.to_numpy(), array.values.to_numpy(zero_copy_only=False)))
    rows = []
    for index in range(table.num_rows):
        ids, mask, starts = (values[offsets[index] : offsets[index + 1]] for offsets, values in columns)
        rows.append(PackedRow(input_ids=ids, loss_mask=mask, seq_start_id=starts))
    return rows
