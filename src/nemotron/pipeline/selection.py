"""Which stages of a pipe a command covers: `--from`, `--to`, `--only` and `--force`."""

from __future__ import annotations

from dataclasses import dataclass

from nemotron.config.errors import ConfigError
from nemotron.suggest import did_you_mean


@dataclass(frozen=True)
class Selection:
    """The stages a command may run (`selected`) and those it runs even when done (`forced`)."""

    selected: frozenset[str]
    forced: frozenset[str]


def select_stages(
    names: tuple[str, ...],
    *,
    start: str | None = None,
    stop: str | None = None,
    only: str | None = None,
    force: str | None = None,
) -> Selection:
    """`--from START --to STOP` keep a contiguous part of the pipe; `--only A,B` exactly those stages
    (not with --from/--to); `--force A,B|all` runs those even when their output exists."""
    if only and (start or stop):
        raise ConfigError("--only names the stages to run; it cannot be combined with --from/--to")
    if only:
        selected = set(_names(only, names, "--only"))
    else:
        first = names.index(_name(start, names, "--from")) if start else 0
        last = names.index(_name(stop, names, "--to")) if stop else len(names) - 1
        if first > last:
            raise ConfigError(f"--from {start} comes after --to {stop} in the pipe ({' -> '.join(names)})")
        selected = set(names[first : last + 1])
    forced: set[str] = set()
    if force:
        forced = set(names) if force.strip() == "all" else set(_names(force, names, "--force"))
        outside = sorted(forced - selected, key=names.index)
        if outside and force.strip() != "all":
            raise ConfigError(f"--force {','.join(outside)}: not among the stages this command runs")
        forced &= selected
    return Selection(frozenset(selected), frozenset(forced))


def _names(text: str, names: tuple[str, ...], option: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ConfigError(f"{option} is empty; name stages of the pipe: {', '.join(names)}")
    return [_name(item, names, option) for item in items]


def _name(item: str | None, names: tuple[str, ...], option: str) -> str:
    if item not in names:
        raise ConfigError(
            f"{option} {item!r}: no such stage in the pipe{did_you_mean(str(item), names) or ''}; "
            f"stages: {', '.join(names)}"
        )
    return item
