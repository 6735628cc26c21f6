"""`Statement`: one SQL statement ready to send, with its name and its bound values."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

__all__ = ["KINDS", "Statement"]

# How the sender runs a statement: fetch (rows), fetch_one (a row or None), fetch_value (the
# first column of the first row), execute (a status), execute_many (args is a sequence of
# argument tuples), copy (COPY ... FROM STDIN), listen (the sender's LISTEN, args the channel).
KINDS = frozenset({"fetch", "fetch_one", "fetch_value", "execute", "execute_many", "copy", "listen"})


def _as_tuple(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(values)


@attrs.frozen(slots=True)
class Statement:
    """`sql` uses asyncpg's `$n` parameters, `args[n-1]` binding `$n`; `name` is the query in
    `queries/` it was made from (errors and logs name it)."""

    name: str
    kind: str = attrs.field(validator=attrs.validators.in_(KINDS))
    sql: str
    args: tuple[Any, ...] = attrs.field(default=(), converter=_as_tuple)
