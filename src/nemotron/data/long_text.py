"""Cut a long text into pieces whose ids, one after another, are the ids of the whole text."""

from __future__ import annotations

import re
import warnings
from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from nemotron.data.tokenizer_check import TRICKY_TEXTS, special_token_texts

if TYPE_CHECKING:
    from nemotron.data.tokenizer import TextTokenizer

DEFAULT_PIECE_CHARS = 1_000_000  # ~250k-900k tokens: ~100 MB of gigatoken or ~300 MB of HF tokenizers memory
MIN_PIECE_CHARS = 1_000  # the config's floor: smaller pieces only add calls and hard cuts

# Candidate cuts: where the pre-tokenizers of the GPT-2 / Llama 3 / Qwen / Mistral families end a
# pre-token whatever comes before: before a space that follows a non-space character, and after the
# last letter or digit of a run of them. `(?<=[^\W\d_])` is a letter, `\d` a digit.
WORD_START = r"(?<=\S)(?= )"
RUN_END = r"(?<=[^\W\d_])(?=[\d\W_])|(?<=\d)(?=\D)"
RULES = (f"{WORD_START}|{RUN_END}", WORD_START)  # the first that passes the self-test is used
CONTEXT = 64  # characters on each side of a candidate that its pre-tokenizer check sees
STEP = 1024  # characters searched at a time, backwards from the end of the longest piece
SEARCH = 64 * STEP  # characters searched at most before a piece's end; without a safe cut there, a hard cut

# Texts whose pieces the self-test compares with the whole: all kinds of characters and joins.
PROBE_TEXTS = (
    *TRICKY_TEXTS,
    "The quick brown fox, 3.14 (approx.) jumped over 1,000,000 lazy dogs; it's 9:45pm! Isn't it?",
    "def f(x_1, y2):\n    return x_1**2 + y2  # snake_case camelCase HTTPServer\n\n\n\tx = [1,2,3]\r\n",
    "https://example.com/a/b?c=1&d=%20e#frag user@example.org C:\\Windows\\path",
    "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODkrLw== 0123456789abcdefABCDEF",
    "12345678901234567890 1e10 0xDEADbeef v2.0.1-rc3 \u0663\u0664\u0665 x\u00b2+y\u00b3 \u2167\u2168",
    "e\u0301t\u00e9 \u00c5ngstr\u00f6m \u0391\u0392\u0393 \u0430\u0431\u0432 \u65e5\u672c123\u8a9e",
)


class LongTextWarning(UserWarning):
    """Long documents are tokenized whole (no safe cuts for this tokenizer), or one was cut where ids may differ."""


class LongTextSplitter:
    """Cuts texts longer than `piece_chars` into pieces of at most that many characters.

    A cut is made at a candidate position (RULES) where the tokenizer's own pre-tokenizer, run on
    the text around it, puts no pre-token across it and no added token (e.g. "<|endoftext|>") is
    near; tokenizing the pieces one by one then gives the ids of the whole text. That holds for
    pre-tokenizers that decide a pre-token ending in a letter, digit or punctuation mark without
    looking further than the next character (the GPT-2, Llama 3, Qwen, Mistral regexes,
    Whitespace, Metaspace...). A self-test checks it on mixed texts when the splitter is built:
    if cuts at every candidate change the ids, only WORD_START is tried, then no cuts at all.

    A text is never cut when `reason` is not None: the tokenizer has a normalizer (it may join
    characters across a cut), no pre-tokenizer, no `tokenizers` backend, or failed the self-test.

    When the last SEARCH characters of a piece (all of it, if shorter) hold no safe cut (e.g. one
    letter repeated, a long run of digits), it is cut at the limit anyway (`hard_cuts` counts
    them): memory stays bounded and the ids still decode to the text, but they may differ from the
    whole text's near the cut.
    """

    def __init__(self, backend: Any, piece_chars: int) -> None:
        if piece_chars < 1:
            raise ValueError(f"piece_chars must be >= 1, got {piece_chars}")
        self.piece_chars = piece_chars
        self.hard_cuts = 0
        self._pre = backend.pre_tokenizer if backend is not None else None
        added = _added_tokens(backend)
        self._added = re.compile("|".join(map(re.escape, added))) if added else None
        self._longest_added = max(map(len, added), default=0)
        self._context = CONTEXT + self._longest_added
        self._rule = re.compile(RULES[0])
        self.reason = self._unsupported(backend) or self._self_test(backend, added)

    def pieces(self, text: str) -> Iterator[str]:
        """The text in pieces of at most `piece_chars` characters (the whole text when it is that short)."""
        start, size = 0, self.piece_chars
        while self.reason is None and len(text) - start > size:
            end = start + size
            cut = self._last_cut(text, max(start + 1, end - SEARCH + 1), end)
            if cut is None:
                cut = self._hard_cut(text, start + 1, end)
            yield text[start:cut]
            start = cut
        yield text[start:] if start else text

    def cuts(self, text: str, begin: int, end: int) -> list[int]:
        """The safe cuts c with begin <= c <= end, ascending (0 and len(text) are never listed)."""
        begin, end = max(begin, 1), min(end, len(text) - 1)
        found = [m.start() for m in self._rule.finditer(text, begin, end + 1)]
        if not found or self._pre is None:
            return []
        lo, hi = max(0, found[0] - self._context), min(len(text), found[-1] + self._context)
        window = text[lo:hi]
        spans = [offsets for _, offsets in self._pre.pre_tokenize_str(window)]
        starts = [a for a, _ in spans]
        blocked = [(m.start() - 1, m.end() + 1) for m in self._added.finditer(window)] if self._added else []
        safe = []
        for cut in found:
            at = cut - lo
            inside = bisect_left(starts, at) - 1  # the last pre-token that starts before the cut
            if inside >= 0 and spans[inside][1] > at:
                continue
            if any(a <= at <= b for a, b in blocked):
                continue
            safe.append(cut)
        return safe

    def _last_cut(self, text: str, lo: int, hi: int) -> int | None:
        end = hi
        while end >= lo:
            begin = max(lo, end - STEP + 1)
            found = self.cuts(text, begin, end)
            if found:
                return found[-1]
            end = begin - 1
        return None

    def _hard_cut(self, text: str, lo: int, hi: int) -> int:
        """`hi`, or the start of an added token that `hi` would cut through."""
        if self.hard_cuts == 0:
            warnings.warn(
                f"a document has {min(hi - lo + 1, SEARCH):,} characters without a safe cut for its tokenizer; it "
                "is cut anyway, and its ids near the cut may differ from tokenizing it whole (docs/data-prep.md)",
                LongTextWarning,
                stacklevel=3,
            )
        self.hard_cuts += 1
        if self._added is not None:
            near = max(lo, hi - self._longest_added)
            for m in self._added.finditer(text, near, hi + self._longest_added):
                if m.start() < hi < m.end() and m.start() >= lo:
                    return m.start()
        return hi

    def _unsupported(self, backend: Any) -> str | None:
        if backend is None:
            return "it has no Hugging Face `tokenizers` backend (a slow tokenizer)"
        if backend.normalizer is not None:
            return f"its normalizer ({type(backend.normalizer).__name__}) may join characters across a cut"
        if self._pre is None:
            return "it has no pre-tokenizer, so any cut may change the ids"
        return None

    def _self_test(self, backend: Any, added: list[str]) -> str | None:
        """None when cutting the probe at every safe cut keeps its ids, trying each of RULES."""
        probe = "\n".join(PROBE_TEXTS) + " " + " ".join((*PROBE_TEXTS, *special_token_texts(added[:8])))
        whole = backend.encode(probe, add_special_tokens=False).ids
        for rule in RULES:
            self._rule = re.compile(rule)
            bounds = [0, *self.cuts(probe, 1, len(probe) - 1), len(probe)]
            pieces = [probe[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
            ids = [i for e in backend.encode_batch(pieces, add_special_tokens=False) for i in e.ids]
            if len(bounds) > 2 and ids == whole:
                return None
        return "cutting a check text at the pre-tokenizer's boundaries changed its ids"


def backend_of(tokenizer: TextTokenizer) -> Any:
    """The Hugging Face `tokenizers.Tokenizer` behind `tokenizer` (from its tokenizer.json in a gigatoken worker)."""
    if tokenizer.hf_tokenizer is not None:
        return getattr(tokenizer.hf_tokenizer, "backend_tokenizer", None)
    if tokenizer.tokenizer_file is None:
        return None
    from tokenizers import Tokenizer

    return Tokenizer.from_file(tokenizer.tokenizer_file)


def splitter_for(tokenizer: TextTokenizer, piece_chars: int) -> LongTextSplitter:
    """A splitter for `tokenizer`; warns (LongTextWarning) when it cannot cut texts and says why."""
    splitter = LongTextSplitter(backend_of(tokenizer), piece_chars)
    if splitter.reason is not None:
        warnings.warn(
            f"tokenizer {tokenizer.name_or_path!r}: documents longer than {piece_chars:,} characters are "
            f"tokenized whole, so memory grows with them: {splitter.reason}",
            LongTextWarning,
            stacklevel=2,
        )
    return splitter


def _added_tokens(backend: Any) -> list[str]:
    if backend is None:
        return []
    return sorted({token.content for token in backend.get_added_tokens_decoder().values()}, key=len, reverse=True)
