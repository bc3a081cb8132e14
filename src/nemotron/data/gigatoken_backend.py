"""Encode with gigatoken (a Rust reimplementation of Hugging Face BPE tokenizers) from a tokenizer.json."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nemotron.data.encoded_batch import ID_DTYPE, EncodedBatch


class GigatokenUnavailable(Exception):
    """gigatoken is not installed or cannot load this tokenizer.json; the message says why."""


class GigatokenEncoder:
    """A gigatoken tokenizer loaded from a tokenizer.json file.

    Encoding matches Hugging Face `tokenizer(texts, add_special_tokens=False)`: no
    post-processor tokens (BOS/EOS) are added, and added/special tokens that occur
    literally in the text (e.g. "<|endoftext|>") are encoded as their single id, as HF does
    unless `split_special_tokens` is set. `load_tokenizer` verifies this on sample texts.

    `threads=1` encodes on the calling thread; `threads=None` or >1 uses gigatoken's
    process-wide thread pool (sized by RAYON_NUM_THREADS when it is first used).
    """

    def __init__(self, tokenizer_file: str | Path, threads: int | None = None) -> None:
        self.tokenizer_file = str(tokenizer_file)
        self.threads = threads
        self._tokenizer = _load(Path(tokenizer_file))

    @property
    def vocab_size(self) -> int:
        return int(self._tokenizer.vocab_size)

    def encode_flat(self, texts: Sequence[str]) -> EncodedBatch:
        return _flatten(self._tokenizer.encode_batch(_as_list(texts), parallel=self._parallel()))

    def encode_lists(self, texts: Sequence[str]) -> list[list[int]]:
        return self._tokenizer.encode_batch_list(_as_list(texts), parallel=self._parallel())

    def _parallel(self) -> bool | None:
        return None if self.threads is None else self.threads > 1  # None: gigatoken decides (off in workers)


def _as_list(texts: Sequence[str]) -> list[str]:
    return texts if isinstance(texts, list) else list(texts)


def _load(tokenizer_file: Path) -> Any:
    try:
        import gigatoken
    except ImportError as err:
        raise GigatokenUnavailable(f"gigatoken is not installed ({err}); `pip install gigatoken`") from None
    if not tokenizer_file.is_file():
        raise GigatokenUnavailable(f"no tokenizer.json at {tokenizer_file}")
    try:
        return gigatoken.Tokenizer.from_json(tokenizer_file.read_bytes())
    except Exception as err:  # Rust load errors surface as RuntimeError/ValueError
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise GigatokenUnavailable(f"gigatoken cannot load {tokenizer_file}: {first_line}") from None


def _flatten(result: Any) -> EncodedBatch:
    """The awkward array gigatoken returns, as flat ids + offsets without per-token Python work."""
    layout = result.layout
    offsets = getattr(layout, "offsets", None)
    content = getattr(layout, "content", None)
    if offsets is not None and content is not None and hasattr(content, "data"):
        off = np.asarray(offsets.data, dtype=np.int64)
        ids = np.asarray(content.data)[off[0] : off[-1]].astype(ID_DTYPE, copy=False)
        return EncodedBatch(ids, off - off[0] if off[0] else off)
    import awkward as ak  # other layouts (not produced by gigatoken 0.10, kept for safety)

    lengths = np.asarray(ak.num(result, axis=1), dtype=np.int64)
    off = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=off[1:])
    return EncodedBatch(np.asarray(ak.flatten(result, axis=1), dtype=ID_DTYPE), off)
