"""`--where` filters of the command line: `PATH OP VALUE` with OP one of `= != > >= < <=`, or
`PATH in (A,B,...)`; repeated, all must hold. A value is read as JSON (`3`, `true`, `"3"`), else
taken as text (`lang=en`). PATH is a dotted payload path."""

from __future__ import annotations

import re
from typing import Any

import orjson

from pgstash.vectors.filters import AttributeRequirement

__all__ = ["paths_of", "requirements"]

_COMPARISON = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=|!=|=|>|<)\s*(.*?)\s*$", re.S)
_IN = re.compile(r"^\s*([A-Za-z_][\w.]*)\s+in\s*\((.*)\)\s*$", re.S | re.I)
_BUILDERS = {
    "=": AttributeRequirement.equal,
    "!=": AttributeRequirement.not_equal,
    ">": AttributeRequirement.greater,
    ">=": AttributeRequirement.greater_or_equal,
    "<": AttributeRequirement.less,
    "<=": AttributeRequirement.less_or_equal,
}
USAGE = "--where takes PATH=VALUE, PATH!=VALUE, PATH>N (>=, <, <=) or 'PATH in (A,B)'"


def _value(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _parse(expression: str) -> tuple[str, str, Any]:
    if found := _IN.match(expression):
        items = [item.strip() for item in found.group(2).split(",")]
        if not all(items):
            raise ValueError(f"{USAGE}; got {expression!r} (an empty value in the list)")
        return found.group(1), "in", [_value(item) for item in items]
    if found := _COMPARISON.match(expression):
        return found.group(1), found.group(2), _value(found.group(3))
    raise ValueError(f"{USAGE}; got {expression!r}")


def requirements(expressions: list[str]) -> AttributeRequirement | None:
    """Every `--where` expression as one requirement (all of them), None without any."""
    combined: AttributeRequirement | None = None
    for expression in expressions:
        path, operator, value = _parse(expression)
        if operator == "in":
            requirement = AttributeRequirement.contained_in(path, value)
        else:
            requirement = _BUILDERS[operator](path, value)
        combined = requirement if combined is None else combined & requirement
    return combined


def paths_of(expressions: list[str]) -> list[str]:
    """The payload paths the `--where` expressions filter on, in order, once each."""
    return list(dict.fromkeys(_parse(expression)[0] for expression in expressions))
