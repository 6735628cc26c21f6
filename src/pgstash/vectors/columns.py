"""Indexed payload fields: `create_table(model, ..., indexed={"year": int, "published": datetime})`.

Each field is a stored generated column (`field_<keys joined by __>`) extracted from the payload,
of the declared JSON type or NULL (missing, JSON null, another type), with a B-tree on it
(schema/templates/vector_table.sql). A requirement `equal`, `not_equal`, `greater`,
`greater_or_equal`, `less` or `less_or_equal` on that path then reads the column
(`column_fragment`, queries/fragments/filters.sql), so the B-tree serves range filters; the rows it matches
are the rows the JSONB filter matches (numbers compare as numbers, strings by code point in the
"C" collation), except that a datetime field compares instants, not text. A table without the
column keeps the JSONB filter. A value of the wrong type for an indexed path raises `TypeError`
naming the path: the column could not answer it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import re
import types
import typing
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import attrs

from pgstash.sql import names
from pgstash.sql.composer import Fragment
from pgstash.sql.templates import Constant
from pgstash.vectors.facts import TableFacts, index_name
from pgstash.vectors.filters import AttributeRequirement, KeyOf, path_of
from pgstash.vectors.shapes import shaped

__all__ = ["KINDS", "IndexedField", "column_fragment", "existing_fields", "indexed_fields"]

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")  # a payload key the DDL may name


@attrs.frozen(slots=True)
class Kind:
    """What a field's column holds: its template, the type its values are cast to in filters
    (an allow-listed type name, quoted like an identifier), the type the catalog prints, and the
    Python values a requirement on it may compare with."""

    name: str
    template: str
    cast: str
    catalog: str
    accepts: tuple[type, ...]


_NUMBER = Kind("number", "vector_table_field_number", "numeric", "numeric", (int, float))
_TEXT = Kind("text", "vector_table_field_text", "text", "text", (str,))
_BOOLEAN = Kind("boolean", "vector_table_field_boolean", "bool", "boolean", (bool,))
_INSTANT = Kind(
    "datetime", "vector_table_field_timestamptz", "timestamptz", "timestamp with time zone", (str,)
)
# The allow-list of `indexed=` types (never caller text in the DDL).
KINDS: Mapping[type, Kind] = {int: _NUMBER, float: _NUMBER, str: _TEXT, bool: _BOOLEAN, dt.datetime: _INSTANT}
_BY_CATALOG = {kind.catalog: kind for kind in KINDS.values()}
_OPERATORS = {
    "equal": names.filter_column_equal,
    "not_equal": names.filter_column_not_equal,
    "greater": names.filter_column_greater,
    "greater_or_equal": names.filter_column_greater_or_equal,
    "less": names.filter_column_less,
    "less_or_equal": names.filter_column_less_or_equal,
}
_PATH = re.compile(r"'\{([^']*)\}'::text\[\]")  # the path constant in the column's expression


def column_name(path: tuple[str, ...]) -> str:
    """`field_<keys joined by __>`, shortened with a digest to PostgreSQL's 63 bytes."""
    name = "field_" + "__".join(path)
    if len(name) <= 63:
        return name
    digest = hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
    return f"{name[:54]}_{digest}"


@attrs.frozen(slots=True)
class IndexedField:
    """One indexed payload field: its key path and what its column holds."""

    path: tuple[str, ...]
    kind: Kind

    @property
    def column(self) -> str:
        return column_name(self.path)

    def slots(self, table: str) -> dict[str, str | int | Constant]:
        return {
            "field_column": self.column,
            "field_path": Constant("{" + ",".join(f'"{key}"' for key in self.path) + "}"),
            "field_index": index_name(table, f"{self.column}_idx"),
        }


def indexed_fields(indexed: object, model: type, key_of: KeyOf | None) -> tuple[IndexedField, ...]:
    """The checked `indexed=` mapping: each path (a dotted string or an attrs field, as a
    requirement's path) names a field of `model`, each type is on the allow-list (`KINDS`);
    anything else raises `ValueError` before any SQL."""
    if indexed is None:
        return ()
    if not isinstance(indexed, Mapping):
        raise ValueError(f"indexed maps payload paths to types, e.g. {{'year': int}}, not {indexed!r}")
    found: dict[tuple[str, ...], IndexedField] = {}
    for path, python_type in indexed.items():
        try:
            keys = path_of(path, key_of)
        except TypeError as error:
            raise ValueError(f"indexed: {error}") from error
        if not all(_KEY.fullmatch(key) for key in keys):
            raise ValueError(
                f"indexed path {path!r}: each key is 1 to 63 of A-Z, a-z, 0-9 and _, "
                "not starting with a digit"
            )
        kind = KINDS.get(python_type) if isinstance(python_type, type) else None
        if kind is None:
            allowed = ", ".join(sorted(t.__name__ for t in KINDS))
            raise ValueError(f"indexed path {'.'.join(keys)!r}: type {python_type!r} is not one of {allowed}")
        if not _in_model(model, keys, key_of):
            raise ValueError(f"indexed path {'.'.join(keys)!r} is not a field of {model.__name__}'s payload")
        if keys in found and found[keys].kind != kind:
            raise ValueError(f"indexed path {'.'.join(keys)!r} is given twice with different types")
        found[keys] = IndexedField(keys, kind)
    return tuple(found.values())


def _fields_of(cls: Any) -> list[tuple[str, Any, Any]] | None:
    """(name, attrs field or None, annotation) of an attrs class or dataclass, else None."""
    if isinstance(cls, type) and attrs.has(cls):
        hints = _hints(cls)
        return [(field.name, field, hints.get(field.name, field.type)) for field in attrs.fields(cls)]
    if isinstance(cls, type) and dataclasses.is_dataclass(cls):
        hints = _hints(cls)
        return [(field.name, None, hints.get(field.name, field.type)) for field in dataclasses.fields(cls)]
    return None


def _hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # an annotation that does not resolve: no nested walk through it
        return {}


def _in_model(cls: Any, keys: tuple[str, ...], key_of: KeyOf | None) -> bool:
    """Whether the payload of `cls` can hold `keys`: each key a field (by the key the converter
    writes) down to the last, or below a field that is a mapping or untyped."""
    fields = _fields_of(cls)
    if fields is None:
        origin = typing.get_origin(cls) or cls
        return cls is Any or (isinstance(origin, type) and issubclass(origin, Mapping))
    for name, field, annotation in fields:
        written = name
        if field is not None and key_of is not None:
            try:
                written = key_of(field)
            except ValueError:
                continue
        if written != keys[0]:
            continue
        if len(keys) == 1:
            return True
        options = [option for option in typing.get_args(annotation) if option is not type(None)]
        union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
        candidates = options if union else [annotation]
        return any(_in_model(candidate, keys[1:], key_of) for candidate in candidates)
    return False


@functools.lru_cache(maxsize=256)
def _parsed(columns: tuple[str, ...]) -> Mapping[tuple[str, ...], IndexedField]:
    found: dict[tuple[str, ...], IndexedField] = {}
    for described in columns:
        head, _, expression = described.partition(": ")
        name, _, catalog = head.partition(" ")
        kind = _BY_CATALOG.get(catalog)
        path = _PATH.search(expression)
        if kind is None or path is None:
            continue  # a column pgstash did not make
        keys = tuple(key.strip('"') for key in path.group(1).split(","))
        if column_name(keys) == name:
            found[keys] = IndexedField(keys, kind)
    return found


def existing_fields(facts: TableFacts | None) -> Mapping[tuple[str, ...], IndexedField]:
    """The table's indexed fields by path, as its catalog shows them."""
    return _parsed(facts.field_columns) if facts is not None else {}


def check_existing(fields: tuple[IndexedField, ...], facts: TableFacts, table: str) -> None:
    """`ValueError` when a field asked for is indexed already as another type."""
    present = existing_fields(facts)
    for field in fields:
        there = present.get(field.path)
        if there is not None and there.kind != field.kind:
            raise ValueError(
                f'table "{table}" indexes {".".join(field.path)!r} as {there.kind.name}, not '
                f"{field.kind.name}: drop its column ({field.column}) first to change it"
            )


def _value(field: IndexedField, value: Any) -> Any:
    """The requirement's (JSON) value as the column's type; `TypeError` naming the path when it
    is not of the field's type."""
    kind = field.kind
    wrong = isinstance(value, bool) != (kind is _BOOLEAN) or not isinstance(value, kind.accepts)
    if kind is _INSTANT and not wrong:
        try:
            instant = dt.datetime.fromisoformat(value)
        except ValueError:
            wrong = True
        else:
            return instant if instant.tzinfo is not None else instant.replace(tzinfo=dt.UTC)
    if wrong:
        raise TypeError(
            f"{'.'.join(field.path)!r} is an indexed {kind.name} field; {value!r} is not a {kind.name}"
        )
    if kind is _NUMBER:
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return value


def column_fragment(
    fields: Mapping[tuple[str, ...], IndexedField], requirement: AttributeRequirement, path: list[str]
) -> Fragment | None:
    """The requirement read from its path's column, or None (no column, another operator, or a
    comparison with JSON null, which the JSONB filter answers)."""
    template = _OPERATORS.get(requirement.operator)
    field = fields.get(tuple(path)) if template is not None else None
    if field is None or template is None or requirement.value is None:
        return None
    slots = {"field_column": field.column, "field_type": field.kind.cast}
    value = _value(field, requirement.value)
    if requirement.operator == "not_equal":
        return shaped(template, slots, path=path, value=value)
    return shaped(template, slots, value=value)
