"""`dumps_json`: a value as the JSON text pgstash stores in jsonb, with one error policy.

orjson does the encoding. What it cannot encode raises `TypeError`; what jsonb would store
differently from the caller's value raises `ValueError`: NaN and +-Infinity (orjson writes
`null`) and NUL characters (jsonb cannot hold `\\u0000`); so do lone surrogates (not Unicode).
Both messages name `what` and the place in the value (`$.a.b[2]`); without `what`, only the
place (for callers that name the value themselves). It serves every JSON pgstash writes: the
stores' values, the jsonb codec's parameters (`pgstash.connection.codecs`) and the vector
payloads. The common case costs one encoding and two substring scans: the walk that finds the
place runs only when the text holds `null` or an escaped NUL.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import orjson

__all__ = ["dumps_json"]

_NUL = b"\\u0000"


def dumps_json(value: Any, what: str | None = None) -> bytes:
    """`value` as JSON text for jsonb, else `TypeError`/`ValueError` saying `what cannot be
    stored as JSON: <why> at <where>` (without `what`: `<why> at <where>`)."""
    subject = "" if what is None else f"{what} cannot be stored as JSON: "
    try:
        data = orjson.dumps(value)
    except orjson.JSONEncodeError as error:
        where = _unencodable(value, "$")
        at = f" at {where}" if where not in (None, "$") else ""
        if "surrogates not allowed" in str(error):  # text that is not Unicode: bad input, as NUL
            raise ValueError(f"{subject}a lone surrogate{at}: UTF-8 and PostgreSQL cannot hold it") from None
        raise TypeError(f"{subject}{error}{at}") from None
    if b"null" in data or _NUL in data:
        problem = _unfaithful(value, "$")
        if problem is not None:
            raise ValueError(f"{subject}{problem}")
    return data


def _children(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}", key
            yield f"{path}.{key}", item
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield f"{path}[{index}]", item
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield f"{path}.{field.name}", getattr(value, field.name)


def _unfaithful(value: Any, path: str) -> str | None:
    """Where the first NaN, infinity or NUL character of a JSON-bound value is, said in words."""
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return f"{value} at {path}: JSON has no NaN or Infinity (not a JSON number)"
    if isinstance(value, str):
        if "\x00" in value:
            return f"a NUL character at {path}: PostgreSQL jsonb cannot hold it"
        return None
    for where, item in _children(value, path):
        found = _unfaithful(item, where)
        if found is not None:
            return found
    return None


def _unencodable(value: Any, path: str) -> str | None:
    """The path of the innermost part of `value` orjson cannot encode (best effort)."""
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                return f"{path} (key {key!r})"
    for where, item in _children(value, path):
        try:
            orjson.dumps(item)
        except orjson.JSONEncodeError:
            return _unencodable(item, where) or where
    return None
