"""'Did you mean ...?' suggestions for misspelled names and dotted keys."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(word: str, candidates: Iterable[str], *, n: int = 3) -> list[str]:
    """Return up to ``n`` candidates that look like ``word``, best first.

    Only candidates nearly as close as the best one are kept, so an obvious typo
    gets one suggestion rather than a list of loosely similar keys.
    """
    pool = sorted({str(c) for c in candidates} - {word})
    scored = sorted(
        ((difflib.SequenceMatcher(None, word, c).ratio(), c) for c in pool),
        key=lambda sc: (-sc[0], sc[1]),
    )
    scored = [(r, c) for r, c in scored if r >= 0.6]
    if not scored:
        # A misspelled last segment of a long dotted key can score low as a whole
        # string; compare last segments too ("x.y.itres" -> "x.y.iters").
        tail = word.rsplit(".", 1)[-1]
        scored = sorted(
            (
                (difflib.SequenceMatcher(None, tail, c.rsplit(".", 1)[-1]).ratio(), c)
                for c in pool
            ),
            key=lambda sc: (-sc[0], sc[1]),
        )
        scored = [(r, c) for r, c in scored if r >= 0.75]
    if not scored:
        return []
    best = scored[0][0]
    return [c for r, c in scored if r >= best - 0.1][:n]


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """Return "; did you mean 'x'?" (or "... 'x' or 'y'?"), or "" when nothing is close."""
    matches = close_matches(word, candidates)
    if not matches:
        return ""
    quoted = [f"'{m}'" for m in matches]
    if len(quoted) == 1:
        return f"; did you mean {quoted[0]}?"
    return f"; did you mean {', '.join(quoted[:-1])} or {quoted[-1]}?"
