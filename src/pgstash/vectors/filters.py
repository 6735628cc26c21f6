"""`AttributeRequirement`: filters on a vector table's stored payload.

A requirement compiles to one `Fragment` (`filter_fragments.requirement_fragment`) built from the
fragments in `queries/filters.sql`, one per operator, nested through the and/or/not fragments' splice points.
Paths (`TEXT[]`) and values (`JSONB`) are always bound parameters.

Semantics (tests/test_vectors_filters.py holds the SQL to a Python evaluation of them):
- a path is a sequence of object keys (`"meta.source"`, an attrs field, or a sequence of keys and
  attrs fields); it never indexes into arrays. An attrs field stands for the key the index's
  converter writes for it (its alias under `use_alias`, a `rename` override: `payload_keys`).
  A path that does not reach a value is *missing*, and a missing field matches no comparison, so
  `~` of any comparison on it matches;
- values compare as JSON: `3` is not `"3"`, `true` is not `1`, `1` equals `1.0`;
- `greater`/`less` and their `_or_equal` forms compare numbers as numbers and strings as text by
  code point (independent of the database collation); other pairs of types never match;
- `text_match` is a case-insensitive substring test in which `%` and `_` are literal;
  `text_match(..., words=True)` (operator `text_words`) is haiway's word-token match: each word
  of the text (NFC, case-folded `\\w+` runs) is a whole word of the field, ignoring case;
- invalid input (an unknown operator, a path or value that is not JSON, something that is not an
  `AttributeRequirement`) raises `TypeError` or `ValueError` when built or compiled.

Size: `&` and `|` flatten as they combine (`a | b | c` is one "or" of three operands, however it
is bracketed), so a chain of any length is one level deep; its SQL joins the operands in a balanced
tree. A requirement holds at most `MAX_REQUIREMENTS` (1,000) conditions and nests at most
`MAX_NESTING` (32) and/or/not levels after flattening; beyond either, `ValueError` naming the limit
when it is built or compiled (for many values of one field, `contained_in` is one condition).
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
import orjson

from pgstash.jsonvalue import dumps_json
from pgstash.validators import no_nul

_WORD = re.compile(r"\b\w+\b", re.UNICODE)


def word_tokens(text: str) -> list[str]:
    """The words of `text` as haiway's `text_match` tokenises it: NFC, case-folded, `\\w+` runs."""
    return _WORD.findall(unicodedata.normalize("NFC", text).casefold())


__all__ = [
    "MAX_NESTING", "MAX_REQUIREMENTS", "AttributeRequirement", "KeyOf", "check_size", "path_of",
]  # fmt: skip

# Maps an attrs field in a path to the payload key the converter writes (payload_keys.payload_key_of).
KeyOf = Callable[["attrs.Attribute[Any]"], str]
_LEAVES = frozenset(
    {
        "equal",
        "not_equal",
        "greater",
        "greater_or_equal",
        "less",
        "less_or_equal",
        "contained_in",
        "contains",
        "contains_any",
        "text_match",
        "text_words",
        "exists",
    }
)
_COMBINATIONS = {"and": 2, "or": 2, "not": 1}  # the fewest operands
MAX_REQUIREMENTS = 1_000  # conditions (leaves) in one requirement
MAX_NESTING = 32  # and/or/not levels in one requirement, and/or chains flattened


class UnsupportedOperatorError(NotImplementedError, ValueError):
    """An operator pgstash has no template for: a `NotImplementedError`, as the contract (and the
    seed) say, and a `ValueError`, as every other invalid filter input is."""


def _operator(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in _LEAVES and value not in _COMBINATIONS:
        raise UnsupportedOperatorError(
            f"AttributeRequirement has no operator {value!r}; use one of "
            f"{', '.join(sorted(_LEAVES | _COMBINATIONS.keys()))}"
        )


Field = attrs.Attribute  # an attrs field in a path: stands for the key the converter writes


def _parts(path: object) -> tuple[tuple[str, ...], tuple[Field[Any] | None, ...]]:
    """The keys of a path as written (an attrs field by its name) and, per key, the attrs field
    it came from (None for a string key)."""
    if isinstance(path, str):
        if not path:
            raise ValueError("a requirement's path must not be empty")
        keys = tuple(path.split("."))
        return keys, (None,) * len(keys)
    if isinstance(path, Field):
        return (path.name,), (path,)
    if isinstance(path, dataclasses.Field):
        return (path.name,), (None,)
    if isinstance(path, Sequence) and path and all(isinstance(key, str | Field) for key in path):
        return (
            tuple(key.name if isinstance(key, Field) else key for key in path),
            tuple(key if isinstance(key, Field) else None for key in path),
        )
    raise TypeError(
        "a requirement's path is a dotted string, an attrs field or a sequence of keys and attrs "
        f"fields, not {path!r}"
    )


def path_of(path: object, key_of: KeyOf | None = None) -> tuple[str, ...]:
    """The payload keys of a path: a dotted string (`"meta.source"`), an attrs or dataclass field,
    or a sequence of keys and attrs fields. `key_of` maps an attrs field to the key the converter
    writes for it (`payload_key_of`); without it a field stands for its name."""
    keys, fields = _parts(path)
    return _keys(keys, fields, key_of)


def _keys(
    keys: tuple[str, ...], fields: tuple[Field[Any] | None, ...], key_of: KeyOf | None
) -> tuple[str, ...]:
    if key_of is None or not any(fields):
        return keys
    return tuple(key if field is None else key_of(field) for key, field in zip(keys, fields, strict=True))


def json_value(value: object) -> Any:
    """`value` as the JSON it is stored as (tuples become lists, enums their values, ...).
    Anything jsonb cannot hold raises `ValueError` or `TypeError` (`pgstash.jsonvalue`'s policy)."""
    return orjson.loads(dumps_json(value))


def _json_values(values: object) -> list[Any]:
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise TypeError(f"expected a sequence of values, got {values!r}")
    return [json_value(value) for value in values]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@attrs.frozen(slots=True)
class AttributeRequirement:
    """A requirement on the stored payload; build with the class methods, combine with `&`, `|`
    and `~`. `operator` is the builder's name (or `and`, `or`, `not`); `path` the payload keys as
    written (an attrs field by its name) and `fields` the attrs field each key came from, if any."""

    operator: str = attrs.field(validator=_operator)
    path: tuple[str, ...] = ()
    value: Any = None
    operands: tuple[AttributeRequirement, ...] = ()
    fields: tuple[Field[Any] | None, ...] = ()

    def __attrs_post_init__(self) -> None:
        arity = _COMBINATIONS.get(self.operator)
        if arity is not None:
            fits = len(self.operands) == arity or (self.operator != "not" and len(self.operands) > arity)
            if not fits or not all(isinstance(operand, AttributeRequirement) for operand in self.operands):
                most = "" if self.operator == "not" else " or more"
                raise TypeError(f"{self.operator!r} combines {arity}{most} AttributeRequirement operand(s)")
        elif not self.path or not all(isinstance(key, str) for key in self.path):
            raise ValueError(f"{self.operator!r} needs a non-empty path of string keys")
        if self.fields and len(self.fields) != len(self.path):
            raise ValueError("fields, when given, names the attrs field (or None) of each path key")

    def keys(self, key_of: KeyOf | None = None) -> tuple[str, ...]:
        """The payload keys this requirement's path reaches, attrs fields mapped by `key_of`."""
        return _keys(self.path, self.fields or (None,) * len(self.path), key_of)

    # -- builders ------------------------------------------------------------------------------

    @classmethod
    def _leaf(cls, operator: str, path: object, value: Any = None) -> AttributeRequirement:
        keys, fields = _parts(path)
        return cls(operator, keys, value, fields=fields if any(fields) else ())

    @classmethod
    def equal(cls, path: object, value: object) -> AttributeRequirement:
        """The field equals `value` as JSON."""
        return cls._leaf("equal", path, json_value(value))

    @classmethod
    def not_equal(cls, path: object, value: object) -> AttributeRequirement:
        """The field is present and differs from `value` as JSON."""
        return cls._leaf("not_equal", path, json_value(value))

    @classmethod
    def _ordering(cls, operator: str, path: object, value: object) -> AttributeRequirement:
        normal = json_value(value)
        if not (_is_number(normal) or isinstance(normal, str)):
            raise TypeError(f"{operator} compares numbers or strings, not {value!r}")
        return cls._leaf(operator, path, normal)

    @classmethod
    def greater(cls, path: object, value: object) -> AttributeRequirement:
        """The field is a number above `value`, or a string after it (by code point)."""
        return cls._ordering("greater", path, value)

    @classmethod
    def greater_or_equal(cls, path: object, value: object) -> AttributeRequirement:
        return cls._ordering("greater_or_equal", path, value)

    @classmethod
    def less(cls, path: object, value: object) -> AttributeRequirement:
        return cls._ordering("less", path, value)

    @classmethod
    def less_or_equal(cls, path: object, value: object) -> AttributeRequirement:
        return cls._ordering("less_or_equal", path, value)

    @classmethod
    def contained_in(cls, path: object, values: Iterable[object]) -> AttributeRequirement:
        """The field's value is one of `values`."""
        return cls._leaf("contained_in", path, _json_values(values))

    @classmethod
    def contains(cls, path: object, value: object) -> AttributeRequirement:
        """The field is an array holding `value`."""
        return cls._leaf("contains", path, json_value(value))

    @classmethod
    def contains_any(cls, path: object, values: Iterable[object]) -> AttributeRequirement:
        """The field is an array holding at least one of `values`."""
        return cls._leaf("contains_any", path, _json_values(values))

    @classmethod
    def text_match(cls, path: object, text: str, words: bool = False) -> AttributeRequirement:
        """The field is a string containing `text`, ignoring case; `%` and `_` are literal."""
        if not isinstance(text, str):
            raise TypeError(f"text_match takes a string, not {text!r}")
        no_nul(text, "text_match's text")
        if words:  # haiway's word-token match: every word of `text` is a whole word of the field
            return cls._leaf("text_words", path, tuple(word_tokens(text)))
        return cls._leaf("text_match", path, text)

    @classmethod
    def exists(cls, path: object) -> AttributeRequirement:
        """The key is present, even when its value is JSON null."""
        return cls._leaf("exists", path)

    # -- combinations ----------------------------------------------------------------------------

    def __and__(self, other: object) -> AttributeRequirement:
        if not isinstance(other, AttributeRequirement):
            return NotImplemented
        return _combined("and", self, other)

    def __or__(self, other: object) -> AttributeRequirement:
        if not isinstance(other, AttributeRequirement):
            return NotImplemented
        return _combined("or", self, other)

    def __invert__(self) -> AttributeRequirement:
        return AttributeRequirement("not", operands=(self,))


def _combined(operator: str, left: AttributeRequirement, right: AttributeRequirement) -> AttributeRequirement:
    """`left` and `right` under one `operator` node, either side's own operands taken in when it
    is the same operator (a chain stays one level deep, so nothing recurses over its length)."""
    operands = tuple(
        part for side in (left, right) for part in (side.operands if side.operator == operator else (side,))
    )
    if len(operands) > MAX_REQUIREMENTS:
        raise ValueError(
            f"a requirement holds at most {MAX_REQUIREMENTS:,} conditions (MAX_REQUIREMENTS); this "
            f"'{operator}' chain has {len(operands):,}: for many values of one field use contained_in"
        )
    return AttributeRequirement(operator, operands=operands)


def check_size(requirement: AttributeRequirement) -> None:
    """`ValueError` when `requirement` holds more than `MAX_REQUIREMENTS` conditions or nests
    deeper than `MAX_NESTING` levels (walked without recursion)."""
    conditions = 0
    pending = [(requirement, 0)]
    while pending:
        node, depth = pending.pop()
        if node.operator not in _COMBINATIONS:
            conditions += 1
            continue
        if depth >= MAX_NESTING:
            raise ValueError(
                f"a requirement nests at most {MAX_NESTING} and/or/not levels (MAX_NESTING), after "
                "flattening chains of one operator; this one nests deeper"
            )
        pending.extend((operand, depth + 1) for operand in node.operands)
    if conditions > MAX_REQUIREMENTS:
        raise ValueError(
            f"a requirement holds at most {MAX_REQUIREMENTS:,} conditions (MAX_REQUIREMENTS); this "
            f"one holds {conditions:,}: for many values of one field use contained_in"
        )
