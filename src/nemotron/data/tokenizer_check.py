"""Compare two tokenizer backends' ids on sample documents and built-in tricky strings."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# Strings where byte-level BPE implementations tend to diverge: non-ASCII, emoji sequences,
# whitespace runs, control characters, digits, contractions, and special-token look-alikes.
TRICKY_TEXTS: tuple[str, ...] = (
    "",
    " ",
    "a",
    "Hello, world!",
    "  leading spaces",
    "trailing spaces   ",
    "tabs\tand\t\ttabs\n",
    "\n\n\nthree newlines then text\r\nwindows line\rcarriage",
    " " * 40 + "x" + "\n" * 40,
    "non\u00a0breaking\u2009thin\u3000ideographic\u2028line\u2029para",
    "caf\u00e9 cafe\u0301 na\u00efve \ufb01nance \u212b \u00c5",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 \u4e2d\u6587 \ud55c\uad6d\uc5b4",
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u05e2\u05d1\u05e8\u05d9\u05ea \u0939\u093f\u0928\u094d\u0926\u0940",
    "emoji \U0001f600\U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f1fa\U0001f1f8 \u2764\ufe0f",
    "\x00\x01\x1b[31mred\x1b[0m\x7f",
    "numbers 1234567890 3.14159 1,000,000 0x1F 2024-01-31",
    "don't I'll we've they're she'd it's DON'T",
    "def f(x):\n    return x  # comment\n\n\tif x:\n\t\tpass\n",
    "a" * 3000,
    "<|endoftext|>",
    "text<|endoftext|>more text",
    "a <|endoftext|> b <|endoftext|><|endoftext|>c",
    "<|endoftext|\n>",
    "<|endoftext",
    "endoftext|>",
    "<|pad|> <|im_start|>user<|im_end|> <s></s> [CLS] [SEP] <unk>",
)


def special_token_texts(tokens: Iterable[str]) -> list[str]:
    """Texts with each of the tokenizer's own added tokens inside, at the start and at the end."""
    out = []
    for token in tokens:
        out += [token, f"before {token} after", f"x{token}y", f"{token}{token} end", f"start {token}"]
    return out


def first_mismatch(texts: Sequence[str], want: Sequence[Sequence[int]], got: Sequence[Sequence[int]]) -> str | None:
    """None when `got` equals the reference ids `want` for every text, else where they first differ."""
    if len(want) != len(got):
        return f"returned {len(got)} documents for {len(texts)} texts"
    for i, (w, g) in enumerate(zip(want, got, strict=True)):
        w, g = list(w), list(g)
        if w == g:
            continue
        at = next((k for k, (a, b) in enumerate(zip(w, g, strict=False)) if a != b), min(len(w), len(g)))
        return (
            f"ids differ on check text #{i} {_preview(texts[i])}: at token {at}, "
            f"reference {w[at : at + 4]} vs {g[at : at + 4]} ({len(w)} vs {len(g)} tokens)"
        )
    return None


def _preview(text: str, limit: int = 40) -> str:
    return repr(text[:limit] + ("..." if len(text) > limit else ""))
