"""Composes statements from the templates in `queries/`: the one place SQL text is put together.

A template is a named query or fragment as aiosql loaded it: `sql` with `$n` bind parameters
(`parameters[n-1]` names `$n`) and `{name}` splice points. `compose` fills each splice point
either with an identifier from `slots` (validated and double-quoted by `templates.slot_text`;
a non-negative int as digits) or with a `Fragment` from `fragments` (its SQL in parentheses),
then numbers every bind parameter of the result `$1..$n` and collects the values in that order.
Parameters keep their names: a name used twice in one template binds one `$n`. Only `$n` and
`{name}` outside string literals, quoted identifiers and comments are touched (`templates.pieces`).

The composed text depends only on the shape (the template, the slot values and the fragments'
SQL), never on the values, so it is computed once per shape and the same shape sends the same
SQL: asyncpg's prepared-statement cache hits.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from pgstash.sql.catalogue import Query, query
from pgstash.sql.statements import Statement
from pgstash.sql.templates import Parameter, Slot, SlotValue, pieces, slot_text

__all__ = ["Fragment", "compose", "fragment"]


def _as_tuple(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(values)


@attrs.frozen(slots=True)
class Fragment:
    """SQL text to put at a `{name}` splice point, with its bound values: `$1..$n` in `sql`
    bind `args` (renumbered when spliced). Made by `fragment`; fragments nest."""

    sql: str
    args: tuple[Any, ...] = attrs.field(default=(), converter=_as_tuple)


_NO_SLOTS: Mapping[str, SlotValue] = {}
_NO_FRAGMENTS: Mapping[str, Fragment] = {}


def compose(
    query: Query,
    *,
    slots: Mapping[str, SlotValue] = _NO_SLOTS,
    fragments: Mapping[str, Fragment] = _NO_FRAGMENTS,
    **values: Any,
) -> Statement:
    """The named statement with its splice points filled and its parameters bound, ready to run.
    Every splice point needs a slot value or a fragment, every parameter a value: anything missing
    or unexpected raises `TypeError`; an invalid identifier raises `ValueError`."""
    if query.kind == "fragment":
        raise TypeError(f"{query.name} is a fragment: splice it into a statement with fragment()")
    sql, args = _composed(query, slots, fragments, values)
    return Statement(query.name, query.kind, sql, args, query.read)


def fragment(
    template: Query | str,
    *,
    slots: Mapping[str, SlotValue] = _NO_SLOTS,
    fragments: Mapping[str, Fragment] = _NO_FRAGMENTS,
    **values: Any,
) -> Fragment:
    """The named fragment (a `-- fragment:` block in `queries/`) with its splice points filled
    and its parameters bound, to splice into a statement or another fragment."""
    if isinstance(template, str):
        template = query(template)
    if template.kind != "fragment":
        raise TypeError(f"{template.name} is a statement, not a fragment: compose() it")
    sql, args = _composed(template, slots, fragments, values)
    return Fragment(sql, args)


def _composed(
    template: Query,
    slots: Mapping[str, SlotValue],
    fragments: Mapping[str, Fragment],
    values: Mapping[str, Any],
) -> tuple[str, tuple[Any, ...]]:
    for name, spliced in fragments.items():
        if not isinstance(spliced, Fragment):
            raise TypeError(f"{template.name}: fragment {{{name}}} must be a Fragment, not {spliced!r}")
    parameters = template.parameters
    if len(values) != len(parameters) or not all(name in values for name in parameters):
        template.arguments(values)  # a missing or unexpected name raises TypeError
    sql, order = _shape(
        template.name,
        template.sql,
        parameters,
        tuple(sorted(slots.items())),
        tuple(sorted((name, spliced.sql, len(spliced.args)) for name, spliced in fragments.items())),
    )
    args: list[Any] = []
    for kind, name in order:
        if kind == "value":
            args.append(values[name])
        else:
            args.extend(fragments[name].args)
    return sql, tuple(args)


@functools.lru_cache(maxsize=4096)
def _shape(
    name: str,
    sql: str,
    parameters: tuple[str, ...],
    slots: tuple[tuple[str, SlotValue], ...],
    spliced: tuple[tuple[str, str, int], ...],
) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The composed text of one shape, and where its arguments come from in `$n` order: each
    entry ("value", parameter) or ("fragment", splice point) (a fragment's whole args)."""
    identifiers = dict(slots)
    inserted = {point: (text, count) for point, text, count in spliced}
    both = identifiers.keys() & inserted.keys()
    if both:
        raise TypeError(f"{name}: {sorted(both)} given both as a slot and as a fragment")
    used: set[str] = set()
    numbers: dict[str, int] = {}  # parameter name -> its $n; "{point}" -> the $n before its first
    order: list[tuple[str, str]] = []
    bound = 0
    out: list[str] = []
    for piece in pieces(sql):
        if isinstance(piece, str):
            out.append(piece)
        elif isinstance(piece, Parameter):
            if not 1 <= piece.number <= len(parameters):
                raise ValueError(f"{name}: ${piece.number} names no parameter")
            parameter = parameters[piece.number - 1]
            if parameter not in numbers:
                bound += 1
                numbers[parameter] = bound
                order.append(("value", parameter))
            out.append(f"${numbers[parameter]}")
        elif piece.name in identifiers:
            used.add(piece.name)
            out.append(slot_text(piece.name, identifiers[piece.name]))
        elif piece.name in inserted:
            used.add(piece.name)
            text, count = inserted[piece.name]
            key = "{" + piece.name + "}"
            if key not in numbers:
                numbers[key] = bound
                bound += count
                order.append(("fragment", piece.name))
            out.append(f"({_renumbered(name, piece.name, text, count, numbers[key])})")
        else:
            raise TypeError(f"{name}: splice point {{{piece.name}}} has no slot value or fragment")
    unused = (identifiers.keys() | inserted.keys()) - used
    if unused:
        raise TypeError(f"{name} has no splice point {', '.join(sorted(unused))}")
    return "".join(out), tuple(order)


def _renumbered(name: str, point: str, text: str, count: int, offset: int) -> str:
    out: list[str] = []
    for piece in pieces(text):
        if isinstance(piece, str):
            out.append(piece)
        elif isinstance(piece, Slot):
            raise ValueError(f"{name}: fragment {{{point}}} still has a splice point {{{piece.name}}}")
        elif not 1 <= piece.number <= count:
            raise ValueError(f"{name}: fragment {{{point}}} uses ${piece.number} but binds {count} values")
        else:
            out.append(f"${offset + piece.number}")
    return "".join(out)
