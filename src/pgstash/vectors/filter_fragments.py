"""`requirement_fragment`: an `AttributeRequirement` (filters.py) as the SQL condition a statement
splices at its `{requirements}` point, one fragment of `queries/fragments/filters.sql` per
operator, nested through the and/or/not fragments' splice points. Paths (`TEXT[]`) and values
(`JSONB`) are always bound parameters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from pgstash.sql import names
from pgstash.sql.catalogue import Query
from pgstash.sql.composer import Fragment, fragment
from pgstash.vectors.filters import AttributeRequirement, KeyOf, check_size
from pgstash.vectors.shapes import shaped

__all__ = ["EVERYTHING", "ColumnOf", "requirement_fragment"]

# A leaf's SQL from the table's own columns (pgstash.vectors.columns), or None: the JSONB fragment.
ColumnOf = Callable[[AttributeRequirement, list[str]], Fragment | None]

_NO_SLOTS: dict[str, Any] = {}
# JSON null as a parameter: a bare None would bind SQL NULL, which no jsonb comparison matches.
_JSON_NULL = orjson.Fragment(b"null")

# Each operator's fragment (queries/fragments/filters.sql).
_FRAGMENTS: dict[str, Query] = {
    "equal": names.filter_equal,
    "not_equal": names.filter_not_equal,
    "greater": names.filter_greater,
    "greater_or_equal": names.filter_greater_or_equal,
    "less": names.filter_less,
    "less_or_equal": names.filter_less_or_equal,
    "contained_in": names.filter_contained_in,
    "contains": names.filter_contains,
    "contains_any": names.filter_contains_any,
    "text_match": names.filter_text_match,
    "text_words": names.filter_text_words,
    "exists": names.filter_exists,
    "and": names.filter_and,
    "or": names.filter_or,
    "not": names.filter_not,
}
EVERYTHING = fragment(names.filter_everything)  # no requirement: every row (no values, made once)


def _joined(template: Query, parts: list[Fragment]) -> Fragment:
    """`parts` joined by the two-sided `template` (filter_and, filter_or) as a balanced tree:
    its SQL nests log2(len(parts)) parentheses deep, not len(parts)."""
    if len(parts) == 1:
        return parts[0]
    middle = len(parts) // 2
    lhs, rhs = _joined(template, parts[:middle]), _joined(template, parts[middle:])
    return fragment(template, fragments={"lhs": lhs, "rhs": rhs})


def _nested(path: Sequence[str], leaf: Any) -> Any:
    for key in reversed(path):
        leaf = {key: leaf}
    return leaf


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _json(value: Any) -> Any:
    return _JSON_NULL if value is None else value


def requirement_fragment(
    requirement: object, *, key_of: KeyOf | None = None, column_of: ColumnOf | None = None
) -> Fragment:
    """The SQL condition of `requirement` (None: every row) as a fragment for a statement's
    `{requirements}` splice point. `key_of` maps attrs fields in paths to payload keys (for the
    index's converter: `pgstash.vectors.payload_keys.payload_key_of`); `column_of` answers a
    comparison from an indexed field's column (`columns.column_fragment`). Anything but an
    `AttributeRequirement` or None raises `TypeError`."""
    if requirement is None:
        return EVERYTHING
    if not isinstance(requirement, AttributeRequirement):
        raise TypeError(
            f"requirements must be a pgstash AttributeRequirement, not {type(requirement).__name__}"
        )
    check_size(requirement)
    return _compiled(requirement, key_of, column_of)


def _compiled(
    requirement: AttributeRequirement, key_of: KeyOf | None, column_of: ColumnOf | None
) -> Fragment:
    operator = requirement.operator
    template = _FRAGMENTS[operator]
    if operator in ("and", "or"):
        return _joined(template, [_compiled(operand, key_of, column_of) for operand in requirement.operands])
    if operator == "not":
        return fragment(
            template, fragments={"operand": _compiled(requirement.operands[0], key_of, column_of)}
        )
    path = list(requirement.keys(key_of))
    value = requirement.value
    if column_of is not None and (from_column := column_of(requirement, path)) is not None:
        return from_column
    if operator == "equal":
        return shaped(template, _NO_SLOTS, document=_nested(path, value), path=path, value=_json(value))
    if operator == "contains":
        return shaped(template, _NO_SLOTS, document=_nested(path, [value]), path=path, value=_json(value))
    if operator == "contained_in":
        probes = [_nested(path, candidate) for candidate in value]
        return shaped(template, _NO_SLOTS, documents=probes, path=path, candidates=value)
    if operator == "contains_any":
        probes = [_nested(path, [candidate]) for candidate in value]
        return shaped(template, _NO_SLOTS, documents=probes, path=path, candidates=value)
    parents = _nested(path[:-1], {})
    if operator == "text_match":
        return shaped(template, _NO_SLOTS, parents=parents, path=path, pattern=_like_pattern(value))
    if operator == "text_words":
        # a word is \w characters only, never a regex metacharacter; bounded by non-word or the ends
        patterns = [f"(^|[^[:alnum:]_]){word}($|[^[:alnum:]_])" for word in value]
        return shaped(template, _NO_SLOTS, parents=parents, path=path, patterns=patterns)
    if operator == "exists":
        return shaped(template, _NO_SLOTS, parents=parents, path=path)
    return shaped(template, _NO_SLOTS, parents=parents, path=path, value=_json(value))
