"""Apply Hydra-grammar command-line overrides to a plain config, strictly."""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nemotron.config.errors import ConfigError
from nemotron.suggest import did_you_mean

if TYPE_CHECKING:
    from hydra.core.override_parser.types import Override
    from omegaconf import DictConfig

_ABSENT = object()
_MISSING_VALUE = "???"
_GRAMMAR_URL = "https://hydra.cc/docs/advanced/override_grammar/basic/"


def apply_overrides(cfg: DictConfig, overrides: Sequence[str], *, source: str = "command line") -> DictConfig:
    """Return a new config with ``overrides`` applied in order; ``cfg`` is not modified.

    Grammar and value parsing are Hydra's (``key=value``, ``+key=value``,
    ``++key=value``, ``~key``, ``~key=value``). Unlike Hydra, changing a key that
    does not exist, adding one that does, and deleting one that does not are errors.
    Value types are not judged here: a value is read like the current one where that
    changes its meaning (an int for a float key becomes a float; a number for a string
    key keeps its digits as typed) and otherwise kept as parsed, for the stage's schema
    (``to_dataclass``) to check once. Interpolations (``${...}``) are stored unresolved.
    ``source`` names where the overrides came from in error messages.
    """
    from omegaconf import OmegaConf

    if OmegaConf.is_config(cfg):
        data = OmegaConf.to_container(cfg, resolve=False)
    else:
        data = copy.deepcopy(dict(cfg))
    if not isinstance(data, dict):
        raise ConfigError(f"overrides from {source} need a mapping config, got a list.")
    for text in overrides:
        _apply_one(data, _parse(text, source), text, source)
    try:
        return OmegaConf.create(data)
    except Exception as exc:  # pragma: no cover - values come from Hydra's parser
        raise ConfigError(f"{source} overrides {list(overrides)} produced an invalid config: {exc}") from exc


@functools.cache
def _parser() -> Any:
    """Hydra's override parser (built once; importing hydra is deferred to first use)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def _parse(text: str, source: str) -> Override:
    """Parse one override with Hydra's parser; reject forms that have no single value."""
    from hydra.errors import OverrideParseException

    if not isinstance(text, str):
        raise ConfigError(f"{source} override {text!r} must be a string like 'key=value'.")
    try:
        [override] = _parser().parse_overrides([text])
    except OverrideParseException as exc:
        lines = [
            ln.strip()
            for ln in str(exc).splitlines()
            if ln.strip() and not ln.startswith(("Error parsing override", "See https://"))
        ]
        reason = "; ".join(lines) or "syntax error"
        raise ConfigError(
            f"cannot parse {source} override '{text}': {reason}. Write it as key=value, "
            f"+key=value, ++key=value or ~key, and quote values with special characters "
            f"(key='a=b'); grammar: {_GRAMMAR_URL}"
        ) from exc
    if not override.key_or_group:
        raise ConfigError(
            f"cannot parse {source} override '{text}': no key before '='. Write it as "
            "key=value (dotted keys like train.iters=10)."
        )
    if override.package is not None:
        raise ConfigError(
            f"{source} override '{text}': '@package' overrides are not supported; write the full dotted key instead."
        )
    if override.is_sweep_override():
        raise ConfigError(
            f"{source} override '{text}': sweeps are not supported; give one value "
            f"(quote it if it contains a comma: {override.key_or_group}='a,b')."
        )
    _check_plain(override.value(), text, source)
    return override


def _check_plain(value: Any, text: str, source: str) -> None:
    """Reject parser results that are not YAML-like values (e.g. glob(...))."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, list):
        for item in value:
            _check_plain(item, text, source)
        return
    if isinstance(value, dict):
        for item in value.values():
            _check_plain(item, text, source)
        return
    raise ConfigError(
        f"{source} override '{text}': {type(value).__name__} values are not supported; "
        "give a number, string, bool, null, list or dict."
    )


def _apply_one(data: dict[Any, Any], override: Override, text: str, source: str) -> None:
    """Apply one parsed override to the plain nested ``data`` in place."""
    key: str = override.key_or_group
    parts = key.split(".")
    value = override.value()
    parent, last, current = _locate(data, parts)
    exists = current is not _ABSENT

    if override.is_delete():
        if not exists:
            raise ConfigError(
                _with_suggestion(
                    f"cannot delete unknown key '{key}' in {source} override '{text}'",
                    key,
                    data,
                    "Check the spelling; only existing keys can be deleted.",
                )
            )
        if "=" in text and not _same_value(data, key, current, value, override):
            raise ConfigError(
                f"cannot delete '{key}' in {source} override '{text}': its value is "
                f"{_show(current)}, not {_show(value)}; use '~{key}' to delete it whatever "
                "its value."
            )
        del parent[last]
        return

    value_text = _value_text(text)
    if override.is_add() and exists:
        raise ConfigError(
            f"{source} override '{text}': key '{key}' already exists (current value "
            f"{_show(current)}); use '{key}={value_text}' to change it or "
            f"'++{key}={value_text}' to force."
        )
    if not exists and not (override.is_add() or override.is_force_add()):
        raise ConfigError(
            _with_suggestion(
                f"unknown key '{key}' in {source} override '{text}'",
                key,
                data,
                f"Use '+{key}={value_text}' to add a new key.",
            )
        )
    if exists:
        new = _read_like(current, value, override)
        if isinstance(current, dict) and isinstance(new, dict):
            _deep_merge(current, new)  # Hydra merges a dict value into an existing dict
        else:
            parent[last] = new
        return
    _add(data, parts, value, text, source)


def _locate(data: dict[Any, Any], parts: list[str]) -> tuple[Any, Any, Any]:
    """Return (container, key-in-container, value) for a dotted key; value is _ABSENT if missing."""
    node: Any = data
    for seg in parts[:-1]:
        _, node = _child(node, seg)
        if node is _ABSENT:
            return None, None, _ABSENT
    real_key, value = _child(node, parts[-1])
    return node, real_key, value


def _child(node: Any, seg: str) -> tuple[Any, Any]:
    """Return (key, value) of ``seg`` in a dict or list node; value _ABSENT if not there."""
    if isinstance(node, dict):
        if seg in node:
            return seg, node[seg]
        try:
            as_int = int(seg)
        except ValueError:
            return seg, _ABSENT
        return (as_int, node[as_int]) if as_int in node else (seg, _ABSENT)
    if isinstance(node, list):
        try:
            index = int(seg)
        except ValueError:
            return seg, _ABSENT
        return (index, node[index]) if 0 <= index < len(node) else (seg, _ABSENT)
    return seg, _ABSENT


def _add(data: dict[Any, Any], parts: list[str], value: Any, text: str, source: str) -> None:
    """Create a new key, making intermediate mappings as needed."""
    node: Any = data
    for i, seg in enumerate(parts[:-1]):
        _, child = _child(node, seg)
        if child is _ABSENT:
            if not isinstance(node, dict):
                break
            child = node[seg] = {}
        if not isinstance(child, (dict, list)):
            prefix = ".".join(parts[: i + 1])
            raise ConfigError(
                f"{source} override '{text}': cannot add a key under '{prefix}', which holds "
                f"{_show(child)} rather than a mapping."
            )
        node = child
    if not isinstance(node, dict):
        raise ConfigError(
            f"{source} override '{text}': new keys can only be added to mappings, not lists; "
            "give the whole list instead (key=[a,b])."
        )
    node[parts[-1]] = value


def _read_like(current: Any, new: Any, override: Override) -> Any:
    """Read ``new`` the way the current value is read; judging its type is the schema's job.

    Only conversions that change how a value is read happen here: an int given for a
    float becomes a float, and a number given for a string keeps its digits as typed
    (``name=007`` is ``"007"``, not 7). Any other value is returned as parsed, fitting or
    not: the stage's schema (``nemotron.config.to_dataclass``) checks every type once,
    after interpolations are resolved, and names the key, the expected type and the fix.
    """
    if new is None or current is None or _is_placeholder(current) or _is_interpolation(new):
        return new
    if isinstance(new, bool) or not isinstance(new, (int, float)):
        return new  # bools, strings, lists and dicts are kept as parsed; a misfit is the schema's to report
    if isinstance(current, float):
        return float(new)  # lr=1 is 1.0
    if isinstance(current, str):
        return _number_text(override, new)  # e.g. name=123 keeps the digits as typed
    return new


def _number_text(override: Override, value: int | float) -> str:
    """The number as the user typed it ("007", "1.10"), falling back to str(value)."""
    raw = override.get_value_string().strip()
    return raw if raw and "(" not in raw else str(value)


def _same_value(data: dict[Any, Any], key: str, current: Any, value: Any, override: Override) -> bool:
    """Whether a conditional delete (``~key=value``) matches the current value."""
    if _equal(current, value):
        return True
    if isinstance(current, str) and isinstance(value, (int, float)) and not isinstance(value, bool):
        if current == _number_text(override, value):
            return True
    if _is_interpolation(current):  # Hydra compares against the resolved value
        from omegaconf import OmegaConf

        try:
            resolved = OmegaConf.select(OmegaConf.create(data), key)
        except Exception:
            return False
        return _equal(resolved, value)
    return False


def _equal(a: Any, b: Any) -> bool:
    """Equality that does not confuse true with 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)


def _deep_merge(into: dict[Any, Any], new: dict[Any, Any]) -> None:
    """Merge ``new`` into ``into``: mappings key by key, everything else replaced."""
    for k, v in new.items():
        if isinstance(into.get(k), dict) and isinstance(v, dict):
            _deep_merge(into[k], v)
        else:
            into[k] = v


def _with_suggestion(message: str, key: str, data: dict[Any, Any], fix: str) -> str:
    """``message`` + "; did you mean ...?" when a key is close + the fix sentence."""
    ancestors = {key.rsplit(".", n)[0] for n in range(1, key.count(".") + 1)}
    suggestion = did_you_mean(key, [k for k in _all_keys(data) if k not in ancestors])
    return f"{message}{suggestion} {fix}" if suggestion else f"{message}. {fix}"


def _all_keys(data: Any, prefix: str = "") -> list[str]:
    """Every dotted key of nested mappings (inner nodes and leaves; not list items)."""
    keys: list[str] = []
    if isinstance(data, dict):
        for k, v in data.items():
            full = f"{prefix}{k}"
            keys.append(full)
            keys.extend(_all_keys(v, full + "."))
    return keys


def _is_interpolation(value: Any) -> bool:
    """Whether a raw config value is an OmegaConf interpolation like '${a.b}'."""
    return isinstance(value, str) and "${" in value


def _is_placeholder(value: Any) -> bool:
    """Whether a raw config value is an interpolation or the '???' missing marker."""
    return _is_interpolation(value) or value == _MISSING_VALUE


def _value_text(text: str) -> str:
    """The value part of an override as typed ('a.b=x y' -> 'x y')."""
    return text.split("=", 1)[1] if "=" in text else ""


def _show(value: Any) -> str:
    """A value for messages: strings quoted, null as null."""
    return "null" if value is None else repr(value)
