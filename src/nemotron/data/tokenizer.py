"""Load a tokenizer for data prep: gigatoken when it matches Hugging Face ids, else Hugging Face."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nemotron.data.encoded_batch import EncodedBatch
from nemotron.data.errors import DataError
from nemotron.ranges import require_int_in_range

BACKENDS = ("auto", "gigatoken", "huggingface")


class TokenizerFallbackWarning(UserWarning):
    """backend "auto" could not use gigatoken and fell back to Hugging Face `tokenizers`."""


class _HuggingFaceEncoder:
    """The reference: transformers' `tokenizer(texts, add_special_tokens=False)`."""

    def __init__(self, hf_tokenizer: Any) -> None:
        self.hf_tokenizer = hf_tokenizer

    def encode_lists(self, texts: Sequence[str]) -> list[list[int]]:
        return self.hf_tokenizer(list(texts), add_special_tokens=False)["input_ids"]

    def encode_flat(self, texts: Sequence[str]) -> EncodedBatch:
        return EncodedBatch.from_lists(self.encode_lists(texts))


@dataclass(frozen=True)
class TokenizerSpec:
    """How to build a checked tokenizer again in another process; small and picklable.

    Get one from `TextTokenizer.spec()`: with backend "gigatoken" and the resolved file and
    ids filled in, `load()` builds gigatoken alone (no transformers import, no re-check).
    Otherwise `load()` calls `load_tokenizer(name_or_path, backend=backend, threads=threads)`.
    """

    name_or_path: str
    backend: str = "auto"
    threads: int | None = 1
    tokenizer_file: str | None = None
    eod_id: int | None = None
    vocab_size: int | None = None

    def load(self) -> TextTokenizer:
        tokenizer_file, eod_id, vocab_size = self.tokenizer_file, self.eod_id, self.vocab_size
        if self.backend == "gigatoken" and tokenizer_file is not None and eod_id is not None and vocab_size is not None:
            from nemotron.data.gigatoken_backend import GigatokenEncoder, GigatokenUnavailable

            try:
                encoder = GigatokenEncoder(tokenizer_file, threads=self.threads)
            except GigatokenUnavailable as err:
                raise DataError(f"tokenizer {self.name_or_path!r} (backend 'gigatoken'): {err}") from None
            return TextTokenizer(
                self.name_or_path,
                None,
                eod_id,
                vocab_size,
                backend="gigatoken",
                threads=self.threads,
                tokenizer_file=tokenizer_file,
                _encoder=encoder,
            )
        return load_tokenizer(self.name_or_path, backend=self.backend, threads=self.threads)


@dataclass
class TextTokenizer:
    """A loaded tokenizer: batch encoding without special tokens, and the end-of-document id.

    `backend` is "gigatoken" or "huggingface"; `fallback_reason` says why "auto" did not pick
    gigatoken (None otherwise). `hf_tokenizer` is None when built from a spec in a worker.
    Pickles as its `spec()`, so process pools can ship it.
    """

    name_or_path: str
    hf_tokenizer: Any
    eod_id: int
    vocab_size: int
    backend: str = "huggingface"
    fallback_reason: str | None = None
    threads: int | None = None
    tokenizer_file: str | None = None
    _encoder: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self._encoder is None:
            self._encoder = _HuggingFaceEncoder(self.hf_tokenizer)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Fresh Python lists of ids, one per text (compatibility; slower than the array forms)."""
        return self._encoder.encode_lists(texts)

    def encode_batch_arrays(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One uint32 numpy array of ids per text."""
        return self._encoder.encode_flat(texts).arrays()

    def encode_batch_flat(self, texts: Sequence[str], *, append_eod: bool = False) -> EncodedBatch:
        """All ids back to back (uint32) plus offsets; `append_eod` ends each document with `eod_id`."""
        batch = self._encoder.encode_flat(texts)
        return batch.with_suffix(self.eod_id) if append_eod else batch

    def identity(self) -> dict[str, Any]:
        """What identifies this tokenizer in lineage records."""
        return {
            "name_or_path": self.name_or_path,
            "vocab_size": self.vocab_size,
            "eod_id": self.eod_id,
            "backend": self.backend,
        }

    def spec(self, threads: int | None = 1) -> TokenizerSpec:
        """A picklable recipe to rebuild this tokenizer in a worker (one thread by default)."""
        return TokenizerSpec(
            self.name_or_path, self.backend, threads, self.tokenizer_file, self.eod_id, self.vocab_size
        )

    def __reduce__(self) -> tuple:
        return (_rebuild, (self.spec(self.threads),))


def _rebuild(spec: TokenizerSpec) -> TextTokenizer:
    return spec.load()


def load_tokenizer(
    name_or_path: str,
    *,
    backend: str = "auto",
    check_texts: Sequence[str] = (),
    threads: int | None = None,
) -> TextTokenizer:
    """Load `name_or_path` (local folder or hub name) with the chosen backend.

    The Hugging Face tokenizer (AutoTokenizer) is always loaded: it is the reference and gives
    eos/vocab size. "auto" then loads gigatoken from the same tokenizer.json and keeps it only
    if its vocab size and its ids on `check_texts` plus built-in tricky strings equal Hugging
    Face's; otherwise it warns (TokenizerFallbackWarning) and uses Hugging Face.
    "gigatoken" raises DataError where "auto" would fall back; "huggingface" skips gigatoken.
    `threads`: None leaves the libraries' defaults; 1 encodes on the calling thread (use it in
    worker processes); N > 1 sets RAYON_NUM_THREADS=N, which takes effect if no parallel
    encode has run yet in this process.
    """
    if backend not in BACKENDS:
        raise DataError(
            f"unknown tokenizer backend {backend!r} for {name_or_path!r}; use one of {', '.join(BACKENDS)}."
        )
    _apply_threads(threads)
    hf_tokenizer = _load_hf(name_or_path)
    eod_id = hf_tokenizer.eos_token_id
    if eod_id is None:
        raise DataError(
            f"tokenizer {name_or_path!r} has no eos_token; data prep appends it as end-of-document. "
            "Use a tokenizer that defines eos_token."
        )
    reference = TextTokenizer(name_or_path, hf_tokenizer, int(eod_id), len(hf_tokenizer), threads=threads)
    if backend == "huggingface":
        return reference
    tokenizer_file, reason = _tokenizer_file(name_or_path, hf_tokenizer)
    encoder = None
    if tokenizer_file is not None:
        encoder, reason = _checked_gigatoken(tokenizer_file, reference, check_texts, threads)
    if encoder is not None:
        return TextTokenizer(
            name_or_path,
            hf_tokenizer,
            reference.eod_id,
            reference.vocab_size,
            backend="gigatoken",
            threads=threads,
            tokenizer_file=tokenizer_file,
            _encoder=encoder,
        )
    if backend == "gigatoken":
        raise DataError(
            f"tokenizer {name_or_path!r} cannot use backend 'gigatoken': {reason}. "
            "Use backend 'auto' (falls back to Hugging Face) or 'huggingface'."
        )
    warnings.warn(
        f"tokenizer {name_or_path!r}: using Hugging Face tokenizers, not gigatoken: {reason}",
        TokenizerFallbackWarning,
        stacklevel=2,
    )
    reference.fallback_reason = reason
    return reference


def _apply_threads(threads: int | None) -> None:
    if threads is None:
        return
    require_int_in_range("tokenizer threads", threads, DataError, minimum=1, fix="Use None for the library default.")
    if threads == 1:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"  # read by HF tokenizers on every batch call
    else:
        os.environ["RAYON_NUM_THREADS"] = str(threads)  # sizes each library's pool when first used


def check_tokenizer_source(name_or_path: str) -> None:
    """DataError when `name_or_path` is written as a local path (absolute, ./, ../ or ~) that does not exist.

    A hub name ("gpt2", "org/name") is not checked here: only loading it tells. Launch and the job both call this.
    """
    local = Path(name_or_path).expanduser()
    if local.exists() or not (name_or_path.startswith((".", "~")) or local.is_absolute()):
        return
    raise DataError(
        f"cannot load tokenizer {name_or_path!r} (config key 'tokenizer.name_or_path'): no such folder {local}. "
        "Give a local folder with tokenizer.json or a hub name reachable from here."
    )


def _load_hf(name_or_path: str) -> Any:
    from transformers import AutoTokenizer

    check_tokenizer_source(name_or_path)
    local = Path(name_or_path).expanduser()
    source = str(local) if local.exists() else name_or_path
    try:
        return AutoTokenizer.from_pretrained(source)
    except Exception as err:  # transformers raises OSError/ValueError/HTTP errors alike
        raise DataError(
            f"cannot load tokenizer {name_or_path!r} (config key 'tokenizer.name_or_path'): {err}. "
            "Give a local folder with tokenizer.json or a hub name reachable from here."
        ) from None


def _tokenizer_file(name_or_path: str, hf_tokenizer: Any) -> tuple[str | None, str]:
    """The tokenizer.json the Hugging Face tokenizer came from (local folder or hub cache)."""
    if not getattr(hf_tokenizer, "is_fast", False):
        return None, "it is a slow (Python) tokenizer without a tokenizer.json"
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        path = local / "tokenizer.json"
        return (str(path.resolve()), "") if path.is_file() else (None, f"no tokenizer.json in {local}")
    if local.is_file() and local.name.endswith(".json"):
        return str(local.resolve()), ""
    try:
        from transformers.utils import cached_file

        found = cached_file(name_or_path, "tokenizer.json")
    except Exception as err:
        return None, f"cannot find its tokenizer.json ({type(err).__name__}: {err})"
    return (str(found), "") if found else (None, f"hub repo {name_or_path!r} has no tokenizer.json")


def _checked_gigatoken(
    tokenizer_file: str, reference: TextTokenizer, check_texts: Sequence[str], threads: int | None
) -> tuple[Any, str]:
    """(encoder, "") when gigatoken reproduces `reference` exactly, else (None, reason)."""
    from nemotron.data.gigatoken_backend import GigatokenEncoder, GigatokenUnavailable
    from nemotron.data.tokenizer_check import TRICKY_TEXTS, first_mismatch, special_token_texts

    try:
        encoder = GigatokenEncoder(tokenizer_file, threads=threads)
    except GigatokenUnavailable as err:
        return None, str(err)
    if encoder.vocab_size != reference.vocab_size:
        return None, (
            f"vocab size differs: gigatoken {encoder.vocab_size} from {tokenizer_file}, "
            f"Hugging Face {reference.vocab_size} (tokens added outside tokenizer.json?)"
        )
    added = [str(t) for t in reference.hf_tokenizer.get_added_vocab()]
    texts = [*check_texts, *TRICKY_TEXTS, *special_token_texts(added)]
    try:  # both gigatoken output paths: flat arrays and Python lists
        want = reference._encoder.encode_lists(texts)
        mismatch = first_mismatch(texts, want, encoder.encode_flat(texts).lists())
        mismatch = mismatch or first_mismatch(texts, want, encoder.encode_lists(texts))
    except Exception as err:  # a crash in either backend on odd input is also a reason not to use gigatoken
        return None, f"encoding the check texts failed: {type(err).__name__}: {err}"
    return (None, f"gigatoken {mismatch}") if mismatch else (encoder, "")
