"""Load a Hugging Face tokenizer (hub name or local folder) for data prep, with its EOD token."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from nemotron.data.errors import DataError


@dataclass
class TextTokenizer:
    """A loaded tokenizer: batch encoding without special tokens, and the end-of-document id."""

    name_or_path: str
    hf_tokenizer: Any
    eod_id: int
    vocab_size: int

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.hf_tokenizer(list(texts), add_special_tokens=False)["input_ids"]

    def identity(self) -> dict[str, Any]:
        """What identifies this tokenizer in lineage records."""
        return {"name_or_path": self.name_or_path, "vocab_size": self.vocab_size, "eod_id": self.eod_id}


def load_tokenizer(name_or_path: str) -> TextTokenizer:
    """Load `name_or_path` with transformers' AutoTokenizer; fail clearly if it is unusable."""
    from transformers import AutoTokenizer

    local = Path(name_or_path).expanduser()
    source = str(local) if local.exists() else name_or_path
    try:
        hf_tokenizer = AutoTokenizer.from_pretrained(source)
    except Exception as err:  # transformers raises OSError/ValueError/HTTP errors alike
        raise DataError(
            f"cannot load tokenizer {name_or_path!r} (config key 'tokenizer.name_or_path'): {err}. "
            "Give a local folder with tokenizer.json or a hub name reachable from here."
        ) from None
    eod_id = hf_tokenizer.eos_token_id
    if eod_id is None:
        raise DataError(
            f"tokenizer {name_or_path!r} has no eos_token; data prep appends it as end-of-document. "
            "Use a tokenizer that defines eos_token."
        )
    return TextTokenizer(name_or_path, hf_tokenizer, int(eod_id), len(hf_tokenizer))
