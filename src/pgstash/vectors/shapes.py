"""SQL remembered by its shape: a fragment or statement composed once with markers in place of
its values, then bound on every call.

`compose` and `fragment` (pgstash.sql.composer) remember the text of each shape, but gather the
values, check the splice points and parameters and sort the slots on every call. A vector call
repeats a handful of shapes (a filter's leaf on a path, a search's statement around its
requirements), so `shaped` composes a shape once with a `Marker` for each value, notes which
value each `$n` binds, and afterwards only binds: the same SQL text and the same values, in the
same order, as composing it again. Values are always bound, never spliced.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from pgstash.sql.catalogue import Query
from pgstash.sql.composer import Fragment, fragment
from pgstash.sql.templates import SlotValue

__all__ = ["Marker", "shaped"]

_MOST_SHAPES = 4096


@attrs.frozen(slots=True)
class Marker:
    """Stands for a value while a shape is composed: where it comes from, and its name or place."""

    source: int
    key: str | int


_FRAGMENTS: dict[tuple[Any, ...], tuple[str, tuple[str, ...]]] = {}


def shaped(template: Query, slots: Mapping[str, SlotValue], **values: Any) -> Fragment:
    """`fragment(template, slots=slots, **values)` for a fragment without splice points for
    fragments (a filter's leaf): its text composed once per shape, its values bound in order."""
    key = (template.name, tuple(slots.items()), tuple(values))
    shape = _FRAGMENTS.get(key)
    if shape is None:
        markers: dict[str, Any] = {name: Marker(0, name) for name in values}
        marked = fragment(template, slots=slots, **markers)
        shape = (marked.sql, tuple(str(marker.key) for marker in marked.args))
        if len(_FRAGMENTS) >= _MOST_SHAPES:
            _FRAGMENTS.clear()
        _FRAGMENTS[key] = shape
    sql, order = shape
    return Fragment(sql, [values[name] for name in order])
