"""`AttributeRequirement`: filters on a vector table's stored payload, and their SQL.

A requirement compiles to one SQL condition composed from the templates in `queries/filters.sql`,
one per operator. Paths (`TEXT[]`) and values (`JSONB`) are always bound parameters; composing
only renumbers the templates' `$n` placeholders and nests conditions in parentheses.

Semantics (tests/test_vectors_filters.py holds the SQL to a Python evaluation of them):
- a path is a sequence of object keys (`"meta.source"` or an attrs field); it never indexes into
  arrays. A path that does not reach a value is *missing*, and a missing field matches no
  comparison, so `~` of any comparison on it matches;
- values compare as JSON: `3` is not `"3"`, `true` is not `1`, `1` equals `1.0`;
- `greater`/`less` and their `_or_equal` forms compare numbers as numbers and strings as text by
  code point (independent of the database collation); other pairs of types never match;
- `text_match` is a case-insensitive substring test in which `%` and `_` are literal.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import orjson

from pgstash.queries import Query, query

__all__ = ["AttributeRequirement", "Condition", "compose", "condition"]

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
        "exists",
    }
)
_COMBINATIONS = {"and": 2, "or": 2, "not": 1}
_ORDERINGS = frozenset({"greater", "greater_or_equal", "less", "less_or_equal"})


def _operator(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in _LEAVES and value not in _COMBINATIONS:
        raise NotImplementedError(
            f"AttributeRequirement has no operator {value!r}; use one of "
            f"{', '.join(sorted(_LEAVES | _COMBINATIONS.keys()))}"
        )


def path_of(path: object) -> tuple[str, ...]:
    """The key path of a dotted string (`"meta.source"`), an attrs or dataclass field, or a
    sequence of keys."""
    if isinstance(path, str):
        if not path:
            raise ValueError("a requirement's path must not be empty")
        return tuple(path.split("."))
    if isinstance(path, attrs.Attribute | dataclasses.Field):
        return (path.name,)
    if isinstance(path, Sequence) and path and all(isinstance(key, str) for key in path):
        return tuple(path)
    raise TypeError(
        f"a requirement's path is a dotted string, an attrs field or a key sequence, not {path!r}"
    )


def _check_finite(value: object) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value!r} is not a JSON number")
    if isinstance(value, Mapping):
        for item in value.values():
            _check_finite(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_finite(item)


def json_value(value: object) -> Any:
    """`value` as the JSON it is stored as (tuples become lists, enums their values, ...).
    Anything JSON cannot hold raises `ValueError` or `TypeError`."""
    _check_finite(value)
    return orjson.loads(orjson.dumps(value))


def _json_values(values: object) -> list[Any]:
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise TypeError(f"expected a sequence of values, got {values!r}")
    return [json_value(value) for value in values]


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@attrs.frozen(slots=True)
class AttributeRequirement:
    """A requirement on the stored payload; build with the class methods, combine with `&`, `|`
    and `~`. `operator` is the builder's name (or `and`, `or`, `not`)."""

    operator: str = attrs.field(validator=_operator)
    path: tuple[str, ...] = ()
    value: Any = None
    operands: tuple[AttributeRequirement, ...] = ()

    def __attrs_post_init__(self) -> None:
        arity = _COMBINATIONS.get(self.operator)
        if arity is not None:
            if len(self.operands) != arity or not all(
                isinstance(operand, AttributeRequirement) for operand in self.operands
            ):
                raise TypeError(f"{self.operator!r} combines {arity} AttributeRequirement operand(s)")
        elif not self.path or not all(isinstance(key, str) for key in self.path):
            raise ValueError(f"{self.operator!r} needs a non-empty path of string keys")

    # -- builders ------------------------------------------------------------------------------

    @classmethod
    def equal(cls, path: object, value: object) -> AttributeRequirement:
        """The field equals `value` as JSON."""
        return cls("equal", path_of(path), json_value(value))

    @classmethod
    def not_equal(cls, path: object, value: object) -> AttributeRequirement:
        """The field is present and differs from `value` as JSON."""
        return cls("not_equal", path_of(path), json_value(value))

    @classmethod
    def _ordering(cls, operator: str, path: object, value: object) -> AttributeRequirement:
        normal = json_value(value)
        if not (_is_number(normal) or isinstance(normal, str)):
            raise TypeError(f"{operator} compares numbers or strings, not {value!r}")
        return cls(operator, path_of(path), normal)

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
        return cls("contained_in", path_of(path), _json_values(values))

    @classmethod
    def contains(cls, path: object, value: object) -> AttributeRequirement:
        """The field is an array holding `value`."""
        return cls("contains", path_of(path), json_value(value))

    @classmethod
    def contains_any(cls, path: object, values: Iterable[object]) -> AttributeRequirement:
        """The field is an array holding at least one of `values`."""
        return cls("contains_any", path_of(path), _json_values(values))

    @classmethod
    def text_match(cls, path: object, text: str) -> AttributeRequirement:
        """The field is a string containing `text`, ignoring case; `%` and `_` are literal."""
        if not isinstance(text, str):
            raise TypeError(f"text_match takes a string, not {text!r}")
        return cls("text_match", path_of(path), text)

    @classmethod
    def exists(cls, path: object) -> AttributeRequirement:
        """The key is present, even when its value is JSON null."""
        return cls("exists", path_of(path))

    # -- combinations ----------------------------------------------------------------------------

    def __and__(self, other: object) -> AttributeRequirement:
        if not isinstance(other, AttributeRequirement):
            return NotImplemented
        return AttributeRequirement("and", operands=(self, other))

    def __or__(self, other: object) -> AttributeRequirement:
        if not isinstance(other, AttributeRequirement):
            return NotImplemented
        return AttributeRequirement("or", operands=(self, other))

    def __invert__(self) -> AttributeRequirement:
        return AttributeRequirement("not", operands=(self,))


# -- composing SQL ---------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Condition:
    """SQL condition text to put in place of a template's placeholder (already numbered)."""

    sql: str


# JSON null as a parameter: a bare None would bind SQL NULL, which no jsonb comparison matches.
_JSON_NULL = orjson.Fragment(b"null")
_PLACEHOLDER = re.compile(r"\$(\d+)")
_WHERE = re.compile(r"\bWHERE\b(.*);\s*$", re.DOTALL)


def compose(sql: str, parameters: Sequence[str], bindings: Mapping[str, Any], args: list[Any]) -> str:
    """`sql` (a template's statement, `$n` naming `parameters[n-1]`) with each placeholder bound:
    a `Condition` goes in as parenthesised SQL, any other value is appended to `args` (once per
    name) and its placeholder renumbered to its position there."""
    conditions = tuple((name, bound.sql) for name, bound in bindings.items() if isinstance(bound, Condition))
    text, order = _composition(sql, tuple(parameters), conditions, len(args))
    args.extend(bindings[name] for name in order)
    return text


@functools.lru_cache(maxsize=4096)
def _composition(
    sql: str, parameters: tuple[str, ...], conditions: tuple[tuple[str, str], ...], offset: int
) -> tuple[str, tuple[str, ...]]:
    """The composed text, and the names whose values follow the first `offset` arguments, in order
    (the same for every call with the same shape, so it is computed once)."""
    inserted = dict(conditions)
    numbers: dict[str, str] = {}

    def bind(match: re.Match[str]) -> str:
        name = parameters[int(match.group(1)) - 1]
        if name in inserted:
            return f"({inserted[name]})"
        if name not in numbers:
            numbers[name] = f"${offset + len(numbers) + 1}"
        return numbers[name]

    return _PLACEHOLDER.sub(bind, sql), tuple(numbers)


@functools.cache
def _template(operator: str) -> tuple[str, Query]:
    named = query(f"filter_{operator}")
    found = _WHERE.search(named.sql)
    if found is None:
        raise ValueError(f"queries/filters.sql: {named.name} has no WHERE condition")
    return found.group(1).strip(), named


def _nested(path: Sequence[str], leaf: Any) -> Any:
    for key in reversed(path):
        leaf = {key: leaf}
    return leaf


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def condition(requirement: object, args: list[Any]) -> str:
    """The SQL condition of `requirement` (None: every row), its values appended to `args`."""
    if requirement is None:
        sql, named = _template("everything")
        return compose(sql, named.parameters, {}, args)
    if not isinstance(requirement, AttributeRequirement):
        raise NotImplementedError(
            f"requirements must be a pgstash AttributeRequirement, not {type(requirement).__name__}"
        )
    operator = requirement.operator
    sql, named = _template(operator)
    bindings: dict[str, Any]
    if operator in ("and", "or"):
        lhs = Condition(condition(requirement.operands[0], args))
        rhs = Condition(condition(requirement.operands[1], args))
        bindings = {"lhs": lhs, "rhs": rhs}
    elif operator == "not":
        bindings = {"operand": Condition(condition(requirement.operands[0], args))}
    else:
        path = list(requirement.path)
        bindings = {"path": path, "parents": _nested(path[:-1], {})}
        if operator == "equal":
            bindings["document"] = _nested(path, requirement.value)
            bindings["value"] = requirement.value
        elif operator == "contains":
            bindings["document"] = _nested(path, [requirement.value])
            bindings["value"] = requirement.value
        elif operator in ("contained_in", "contains_any"):
            bindings["candidates"] = requirement.value
        elif operator == "text_match":
            bindings["pattern"] = _like_pattern(requirement.value)
        elif operator != "exists":
            bindings["value"] = requirement.value
        if "value" in bindings and bindings["value"] is None:
            bindings["value"] = _JSON_NULL
    return compose(sql, named.parameters, bindings, args)
