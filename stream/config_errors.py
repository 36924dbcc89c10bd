"""pydantic's validation errors as anomstream's: one `ConfigError` listing every problem, each
under its dotted key (`detector.templates[0].name`), in words an operator reads at a glance.

    config error at 'alerts.min_run': must be > 0 (got -1)
    config error at 'kafka.bootstrap_server': unknown key, did you mean 'bootstrap_servers'?
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from anomstream.stream.errors import ConfigError

__all__ = [
    "Problem",
    "annotation_mentions",
    "config_error",
    "dotted_key",
    "model_in",
    "problems_from",
    "set_dotted",
]

Problem = tuple[str, str]

# pydantic error type -> what was expected
_EXPECTED = {
    "int_type": "expected an integer",
    "float_type": "expected a number",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "tuple_type": "expected a list",
    "list_type": "expected a list",
    "dict_type": "expected a table",
    "model_type": "expected a table",
    "model_attributes_type": "expected a table",
}
_BOUNDS = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}
_BOUND_CTX = {
    "greater_than": "gt",
    "greater_than_equal": "ge",
    "less_than": "lt",
    "less_than_equal": "le",
}


def config_error(problems: Sequence[Problem]) -> ConfigError:
    """One error for every problem; `.key` is the first one's (what callers test)."""
    (key, problem), *more = problems
    return ConfigError(key, problem, more=more)


def dotted_key(loc: Sequence[str | int]) -> str:
    """("detector", "templates", 0, "name") -> "detector.templates[0].name"."""
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def set_dotted(tree: dict[str, Any], dotted: str, value: Any, problems: list[Problem]) -> None:
    """Set `a.b.c` in a nested dict; a path through a non-table is reported in `problems`."""
    *parents, leaf = dotted.split(".")
    node = tree
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            problems.append((dotted, f"unknown key ({part!r} is not a table)"))
            return
        node = child
    node[leaf] = value


def problems_from(exc: ValidationError, model: type[BaseModel]) -> list[Problem]:
    """Every error of `exc` (raised validating `model`) as (dotted key, problem)."""
    problems: list[Problem] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        key = dotted_key(loc)
        if error["type"] == "config_problems":  # cross-field checks, keys relative to loc
            problems.extend((f"{key}.{k}" if key else k, p) for k, p in error["ctx"]["problems"])
        elif error["type"] == "extra_forbidden":
            problems.append((key, _unknown_key(model, loc)))
        else:
            problems.append((key or "<root>", _describe(error, secret=_is_secret(model, loc))))
    return problems


def _describe(error: Any, *, secret: bool) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    got = "a secret value" if secret else repr(error.get("input"))
    if kind in _EXPECTED:
        return f"{_EXPECTED[kind]}, got {got}"
    if kind in _BOUNDS:
        return f"must be {_BOUNDS[kind]} {ctx[_BOUND_CTX[kind]]} (got {got})"
    if kind in ("string_too_short", "too_short"):
        return "must not be empty"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']} (got {got})"
    if kind == "value_error":
        return str(ctx["error"])
    return str(error["msg"])


def _unknown_key(model: type[BaseModel], loc: tuple[str | int, ...]) -> str:
    parent = _model_at(model, loc[:-1])
    if parent is None:
        return "unknown key"
    known = sorted(parent.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        return f"unknown key, did you mean {close[0]!r}?"
    return f"unknown key (known: {', '.join(known)})"


def _model_at(model: type[BaseModel] | None, loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class that validates the table at `loc`, if any."""
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue  # an item of a tuple of tables: the item model is already `model`
        field = model.model_fields.get(part)
        model = model_in(field.annotation) if field is not None else None
    return model


def model_in(annotation: Any) -> type[BaseModel] | None:
    """The model class in `annotation` (`KafkaConfig`, `tuple[DetectorTemplate, ...]`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = model_in(arg)
        if found is not None:
            return found
    return None


def _is_secret(model: type[BaseModel], loc: tuple[str | int, ...]) -> bool:
    # Never echo a secret back, not even a mistyped one.
    while loc and isinstance(loc[-1], int):
        loc = loc[:-1]
    parent = _model_at(model, loc[:-1]) if loc else None
    field = parent.model_fields.get(str(loc[-1])) if parent is not None else None
    return field is not None and annotation_mentions(field.annotation, SecretStr)


def annotation_mentions(annotation: Any, target: type) -> bool:
    """Whether `target` appears in `annotation` (`tuple[SecretStr, ...]` mentions SecretStr)."""
    return annotation is target or any(
        annotation_mentions(arg, target) for arg in typing.get_args(annotation)
    )
