"""'Did you mean ...?' suggestions for misspelled names, keys and dotted keys (config, env, training)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable


def _normalized(text: str) -> str:
    return text.lower().replace("-", "_")


def _tail(text: str) -> str:
    return text.rsplit(".", 1)[-1]


# Ways to compare a word with a candidate, tried in order until one finds something close:
# as written; ignoring case and '-' vs '_' (GPUS-per-node -> gpus_per_node); the last segment
# of a dotted key, which can score low as a whole string ("x.y.itres" -> "x.y.iters").
_PASSES: tuple[tuple[Callable[[str], str], float], ...] = ((str, 0.6), (_normalized, 0.6), (_tail, 0.75))


def close_matches(word: str, candidates: Iterable[str], *, n: int = 3) -> list[str]:
    """Up to `n` candidates that look like `word`, best first.

    Only candidates nearly as close as the best one are kept, so an obvious typo gets one
    suggestion rather than a list of loosely similar keys.
    """
    pool = sorted({str(c) for c in candidates} - {word})
    for key, cutoff in _PASSES:
        scored = sorted(
            ((difflib.SequenceMatcher(None, key(word), key(c)).ratio(), c) for c in pool),
            key=lambda sc: (-sc[0], sc[1]),
        )
        scored = [(r, c) for r, c in scored if r >= cutoff]
        if scored:
            best = scored[0][0]
            return [c for r, c in scored if r >= best - 0.1][:n]
    return []


def did_you_mean(word: str, candidates: Iterable[str], *, sentence: bool = False) -> str:
    """The hint "; did you mean 'x'?" (or "... 'x' or 'y'?"), or "" when nothing is close.

    With `sentence`, the hint is its own sentence for messages written as sentences:
    " Did you mean 'x'?" (one suggestion).
    """
    matches = close_matches(word, candidates, n=1 if sentence else 3)
    if not matches:
        return ""
    quoted = [f"'{m}'" for m in matches]
    names = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    return f" Did you mean {names}?" if sentence else f"; did you mean {names}?"
