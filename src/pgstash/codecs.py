"""JSON text for jsonb values (orjson), with NaN and Infinity refused. The connection's binary
codecs live in `pgstash.connection.codecs`."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import orjson

__all__ = ["dumps_json"]


def dumps_json(value: Any) -> bytes:
    """`value` as JSON text (orjson). NaN and +-Infinity raise `ValueError` naming where they
    are: orjson would write them as `null`, storing another value than the caller's, silently.
    (Only text holding `null` is searched for them, so the common case costs one scan.)"""
    data = orjson.dumps(value)
    if b"null" in data:
        found = _non_finite(value, "$")
        if found is not None:
            path, number = found
            raise ValueError(f"{number} at {path}: JSON has no NaN or Infinity (orjson would store null)")
    return data


def _non_finite(value: Any, path: str) -> tuple[str, float] | None:
    """The path and value of the first NaN or infinite float in a JSON-bound value, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, value)
    if isinstance(value, dict):
        items: Any = ((f"{path}.{key}", item) for key, item in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{path}[{index}]", item) for index, item in enumerate(value))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = ((f"{path}.{field.name}", getattr(value, field.name)) for field in dataclasses.fields(value))
    else:
        return None
    for where, item in items:
        found = _non_finite(item, where)
        if found is not None:
            return found
    return None
