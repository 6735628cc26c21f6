"""`Statement`: one SQL statement ready to send, with its name and its bound values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

__all__ = ["KINDS", "Statement", "checked"]

# How the sender runs a statement: fetch (rows), fetch_one (a row or None), fetch_value (the
# first column of the first row), execute (a status), execute_many (args is a sequence of
# argument tuples), copy (COPY ... FROM STDIN), listen (the sender's LISTEN, args the channel).
KINDS = frozenset({"fetch", "fetch_one", "fetch_value", "execute", "execute_many", "copy", "listen"})


def _as_tuple(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(values)


@attrs.frozen(slots=True)
class Statement:
    """`sql` uses asyncpg's `$n` parameters, `args[n-1]` binding `$n`; `name` is the query in
    `queries/` it was made from (errors and logs name it); `read`: a replica may serve it (its
    query's `-- route: read`)."""

    name: str
    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    sql: str
    args: tuple[Any, ...] = attrs.field(default=(), converter=_as_tuple)
    read: bool = False


_new = object.__new__
_set_name, _set_kind, _set_sql, _set_args, _set_read = (
    Statement.__dict__[field].__set__ for field in ("name", "kind", "sql", "args", "read")
)


def checked(name: str, kind: str, sql: str, args: tuple[Any, ...], read: bool) -> Statement:
    """A `Statement` of values already checked (a `Query`'s kind, `args` a tuple), made without
    its validator and converter and through its slots directly: a named call makes one per call,
    and the frozen class's `__init__` costs about twice as much (issue 22 item 7)."""
    statement: Statement = _new(Statement)
    _set_name(statement, name)
    _set_kind(statement, kind)
    _set_sql(statement, sql)
    _set_args(statement, args)
    _set_read(statement, read)
    return statement
