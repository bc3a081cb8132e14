"""Validate a resolved config against a (nested) dataclass schema and build it."""

from __future__ import annotations

import dataclasses
import enum
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from nemotron.config.errors import ConfigError
from nemotron.config.resolved import resolved_container
from nemotron.suggest import did_you_mean

T = TypeVar("T")

_MISSING_VALUE = "???"  # omegaconf.MISSING
_INVALID = object()  # returned by _convert after recording a problem
_PROBLEM_KEY = re.compile(r"^(unknown )?key '([^']+)'")  # how a problem at a dotted key begins


def to_dataclass(cfg: Any, schema: type[T], *, source: str, overrides: Sequence[str] = ()) -> T:
    """Return ``schema`` built from ``cfg`` (a DictConfig or a plain mapping).

    Interpolations are resolved first. Every problem found (unknown keys with
    suggestions, wrong types, values outside a Literal, missing required keys) is
    reported in one ConfigError that names ``source`` and the full dotted keys; a
    problem at a key that one of ``overrides`` (``key=value`` as given) set names it.
    Supported field types: int, float (ints accepted), bool, str (ints accepted),
    Path, Enum, Any, Optional/Union, Literal, list/Sequence, tuple, dict/Mapping
    and nested dataclasses. A schema's ``__post_init__`` may raise TypeError/ValueError; one whose
    message starts "key '<field>'" is reported at that field's full dotted key.
    """
    if not (isinstance(schema, type) and dataclasses.is_dataclass(schema)):
        raise TypeError(f"to_dataclass needs a dataclass type as schema, got {schema!r}")
    from omegaconf import OmegaConf

    if OmegaConf.is_config(cfg):
        data: Any = resolved_container(cfg, source=source)
    elif isinstance(cfg, Mapping):
        data = dict(cfg)
    else:
        raise ConfigError(f"invalid config from {source}: expected a mapping, got {_show(cfg)}.")
    problems: list[str] = []
    result = _convert(data, schema, "", problems)
    problems = [_with_origin(problem, overrides) for problem in problems]
    if problems:
        if len(problems) == 1:
            raise ConfigError(f"invalid config from {source}: {problems[0]}")
        listed = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"invalid config from {source} ({len(problems)} problems):\n{listed}")
    return typing.cast(T, result)


def _with_origin(problem: str, overrides: Sequence[str]) -> str:
    """``problem`` followed by the command-line override that set its key, when one did.

    An override sets its key and everything under it (``model={...}`` sets ``model.hidden``); an
    unknown key is also the override's when the override added something under it (``+foo.bar=1``
    makes ``foo`` an unknown key).
    """
    match = _PROBLEM_KEY.match(problem)
    if match is None:
        return problem
    unknown, key = match.group(1) is not None, match.group(2)
    for text in reversed(overrides):  # the last override of a key wins
        target = text.partition("=")[0].lstrip("+~")
        if _is_under(key, target) or (unknown and _is_under(target, key)):
            body, dot, _ = problem.rpartition(".") if problem.endswith(".") else (problem, "", "")
            return f"{body} (set by the override '{text}'){dot}"
    return problem


def _is_under(key: str, prefix: str) -> bool:
    """``key`` is ``prefix`` or a key inside it (``a.b`` and ``a[0]`` are under ``a``; ``ab`` is not)."""
    return key == prefix or key.startswith((f"{prefix}.", f"{prefix}["))


def _convert(value: Any, tp: Any, key: str, problems: list[str]) -> Any:
    """Check ``value`` against type ``tp`` at dotted ``key``; record problems, return the value."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _convert(value, args[0], key, problems)
    if origin is Union or origin is types.UnionType:
        return _convert_union(value, args, key, problems)
    if value == _MISSING_VALUE and isinstance(value, str):
        problems.append(f"key '{key}' has no value ('???'); set it in the YAML or with an override '{key}=VALUE'.")
        return _INVALID
    if tp is Any or tp is object:
        return value
    if origin is Literal:
        return _convert_literal(value, args, key, problems)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _convert_dataclass(value, tp, key, problems)
    if origin in (list, Sequence) or tp in (list, Sequence):
        return _convert_list(value, args[0] if args else Any, tp, key, problems)
    if origin is tuple or tp is tuple:
        return _convert_tuple(value, args, tp, key, problems)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        key_tp, val_tp = args if args else (Any, Any)
        return _convert_dict(value, key_tp, val_tp, tp, key, problems)
    return _convert_scalar(value, tp, key, problems)


def _convert_union(value: Any, args: tuple[Any, ...], key: str, problems: list[str]) -> Any:
    """Optional[X] / X | Y: null when allowed, else the first member type that fits."""
    if value is None and type(None) in args:
        return None
    members = [a for a in args if a is not type(None)]
    if len(members) == 1:
        trial: list[str] = []
        result = _convert(value, members[0], key, trial)
        if trial == [_type_problem(key, members[0], value)]:  # say "int or null", not "int"
            # `X | Y` cannot be built from a run-time tuple of members; typing.Union[...] can.
            trial = [_type_problem(key, typing.Union[tuple(args)], value)]  # noqa: UP007
        problems.extend(trial)
        return result
    for member in members:
        attempt: list[str] = []
        result = _convert(value, member, key, attempt)
        if not attempt:
            return result
    problems.append(_type_problem(key, typing.Union[tuple(args)], value))  # noqa: UP007 (run-time tuple, as above)
    return _INVALID


def _convert_literal(value: Any, choices: tuple[Any, ...], key: str, problems: list[str]) -> Any:
    """The value must equal one of the Literal choices (true is not 1)."""
    for choice in choices:
        if type(choice) is type(value) and choice == value:
            return value
    shown = ", ".join(_show(c) for c in choices)
    hint = did_you_mean(value, [c for c in choices if isinstance(c, str)]) if isinstance(value, str) else ""
    problems.append(f"key '{key}' must be one of {shown}; got {_show(value)}{hint or '.'}")
    return _INVALID


def _convert_dataclass(value: Any, tp: type, key: str, problems: list[str]) -> Any:
    """A mapping becomes an instance of dataclass ``tp``; unknown and missing keys are problems."""
    if not isinstance(value, dict):
        problems.append(_type_problem(key, tp, value))
        return _INVALID
    fields = {f.name: f for f in dataclasses.fields(tp) if f.init}
    hints = _type_hints(tp)
    before = len(problems)
    kwargs: dict[str, Any] = {}
    for name, item in value.items():
        full = _join(key, str(name))
        if name not in fields:
            suggestion = did_you_mean(full, [_join(key, f) for f in fields])
            problems.append(
                f"unknown key '{full}'{suggestion or '.'} Remove it or fix the spelling "
                f"({tp.__name__} has: {', '.join(fields) or 'no fields'})."
            )
            continue
        kwargs[name] = _convert(item, hints[name], full, problems)
    for name, field in fields.items():
        if name in value:
            continue
        no_default = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        if no_default or (isinstance(field.default, str) and field.default == _MISSING_VALUE):
            full = _join(key, name)
            problems.append(
                f"missing required key '{full}' ({_label(hints[name])}); set it in the YAML "
                f"or with an override '+{full}=VALUE'."
            )
    if len(problems) > before:
        return _INVALID
    try:
        return tp(**kwargs)
    except (TypeError, ValueError) as exc:  # __post_init__ validation in the schema
        own = _PROBLEM_KEY.match(str(exc))  # "key 'field' ...": a problem at one of tp's own fields
        if own and own.group(1) is None:
            problems.append(f"key '{_join(key, own.group(2))}'{str(exc)[own.end() :]}")
        else:
            problems.append(f"key '{key or '<root>'}' ({_label(tp)}): {exc}")
        return _INVALID


def _convert_list(value: Any, item_tp: Any, tp: Any, key: str, problems: list[str]) -> Any:
    """A list whose items each fit ``item_tp``."""
    if not isinstance(value, list):
        problems.append(_type_problem(key, tp, value))
        return _INVALID
    return [_convert(item, item_tp, f"{key}[{i}]", problems) for i, item in enumerate(value)]


def _convert_tuple(value: Any, args: tuple[Any, ...], tp: Any, key: str, problems: list[str]) -> Any:
    """A list given for tuple[X, ...] or a fixed-length tuple[X, Y]."""
    if not isinstance(value, (list, tuple)):
        problems.append(_type_problem(key, tp, value))
        return _INVALID
    if not args or (len(args) == 2 and args[1] is Ellipsis):
        item_tp = args[0] if args else Any
        return tuple(_convert(v, item_tp, f"{key}[{i}]", problems) for i, v in enumerate(value))
    if len(value) != len(args):
        problems.append(f"key '{key}' expects {_label(tp)} ({len(args)} items), got {len(value)} items {_show(value)}.")
        return _INVALID
    return tuple(_convert(v, a, f"{key}[{i}]", problems) for i, (v, a) in enumerate(zip(value, args, strict=True)))


def _convert_dict(value: Any, key_tp: Any, val_tp: Any, tp: Any, key: str, problems: list[str]) -> Any:
    """A mapping whose keys fit ``key_tp`` (int keys become str for str) and values ``val_tp``."""
    if not isinstance(value, dict):
        problems.append(_type_problem(key, tp, value))
        return _INVALID
    out: dict[Any, Any] = {}
    for k, v in value.items():
        full = _join(key, str(k))
        if key_tp is str and isinstance(k, int) and not isinstance(k, bool):
            k = str(k)
        elif key_tp is not Any and not _is_instance(k, key_tp):
            problems.append(f"key '{full}': dict keys must be {_label(key_tp)}, got {_show(k)}.")
            continue
        out[k] = _convert(v, val_tp, full, problems)
    return out


def _convert_scalar(value: Any, tp: Any, key: str, problems: list[str]) -> Any:
    """int, float, bool, str, Path, Enum or any other class checked with isinstance."""
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is str and isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # e.g. a name written as 123
    if tp is Path and isinstance(value, (str, Path)):
        return Path(value)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if value == member.name or value == member.value or value is member:
                return member
        problems.append(f"key '{key}' must be one of {', '.join(repr(m.name) for m in tp)}; got {_show(value)}.")
        return _INVALID
    if isinstance(tp, type) and _is_instance(value, tp):
        return value
    problems.append(_type_problem(key, tp, value))
    return _INVALID


def _is_instance(value: Any, tp: type) -> bool:
    """isinstance, except that bools are not ints."""
    if isinstance(value, bool) and tp in (int, float):
        return False
    return isinstance(value, tp)


def _type_hints(tp: type) -> dict[str, Any]:
    """Field types of a dataclass with string annotations evaluated."""
    try:
        return typing.get_type_hints(tp, include_extras=True)
    except (NameError, TypeError) as exc:
        raise TypeError(
            f"cannot evaluate the field types of schema {tp.__qualname__}: {exc}; define the "
            "types it uses at module level."
        ) from exc


def _type_problem(key: str, tp: Any, value: Any) -> str:
    """The 'expects X, got Y; fix' message (the one type check of YAML values and overrides alike)."""
    return f"key '{key or '<root>'}' expects {_label(tp)}, got {_type_name(value)} {_show(value)}{_type_hint(tp)}."


def _type_hint(tp: Any) -> str:
    """How to write a value of type ``tp`` ("; give a whole number"), or "" when there is no one way."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _type_hint(typing.get_args(tp)[0])
    if origin is Union or origin is types.UnionType:
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        return _type_hint(members[0]) if len(members) == 1 else ""
    if tp is bool:
        return "; give true or false"
    if tp is int:
        return "; give a whole number"
    if tp is float:
        return "; give a number"
    if tp is str:  # e.g. name=true or name: [a]; quotes keep it text
        return "; quote the value to pass it as a string"
    if origin in (list, tuple, Sequence) or tp in (list, tuple, Sequence):
        return "; give a list like [a, b]"
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        return "; give a mapping like {k: v}"
    return ""


def _label(tp: Any) -> str:
    """A short readable name for a type annotation."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return f"a mapping ({tp.__name__})"
    if isinstance(tp, type):
        return tp.__name__
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Union or origin is types.UnionType:
        return " or ".join("null" if a is type(None) else _label(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(_show(a) for a in args)
    if origin is not None and args:
        inner = ", ".join("..." if a is Ellipsis else _label(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    return str(tp).replace("typing.", "")


def _type_name(value: Any) -> str:
    """A YAML-flavoured type name for a value."""
    return "null" if value is None else type(value).__name__


def _show(value: Any, limit: int = 80) -> str:
    """repr of a value, shortened for messages."""
    text = "null" if value is None else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _join(prefix: str, name: str) -> str:
    """Dotted key of ``name`` under ``prefix``."""
    return f"{prefix}.{name}" if prefix else name
