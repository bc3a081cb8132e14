"""Range checks of config values shared by config, env and training: each raises the caller's error class."""

from __future__ import annotations

import math
from typing import Any, TypeGuard


def is_int(value: Any) -> TypeGuard[int]:
    """An int that is not a bool (YAML `true` is not a count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> TypeGuard[int | float]:
    """A finite int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_positive_int(value: Any) -> TypeGuard[int]:
    """An integer >= 1 (not a bool)."""
    return is_int(value) and value >= 1


def require_positive_int(key: str, value: Any, error: type[Exception]) -> None:
    """Raise `error` unless `value` is an integer >= 1."""
    if not is_positive_int(value):
        raise error(f"{key}={value!r} must be a positive integer")


def require_non_negative_int(key: str, value: Any, error: type[Exception]) -> None:
    """Raise `error` unless `value` is an integer >= 0."""
    if not is_int(value) or value < 0:
        raise error(f"{key}={value!r} must be an integer >= 0")


def is_positive_number(value: Any) -> TypeGuard[int | float]:
    """A finite int or float > 0 that is not a bool (a learning rate, a blend weight)."""
    return is_number(value) and value > 0


def require_int_in_range(
    key: str,
    value: Any,
    error: type[Exception],
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    fix: str = "",
) -> None:
    """Raise `error("<key> must be >= 1, got 0. <fix>")` unless `value` is an integer within the bounds."""
    if not is_int(value):
        problem = f"must be an integer, got {value!r}"
    elif minimum is not None and value < minimum:
        problem = f"must be >= {minimum}, got {value}"
    elif maximum is not None and value > maximum:
        problem = f"must be <= {maximum}, got {value}"
    else:
        return
    raise error(f"{key} {problem}" + (f". {fix}" if fix else ""))
