"""`Statement`: SQL ready to send, with its name (for errors and logs) and its bound values."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["KINDS", "Statement"]

KINDS = frozenset({"fetch", "fetch_one", "fetch_value", "execute", "execute_many", "copy"})


@attrs.frozen
class Statement:
    """`sql` uses asyncpg's `$n`; `args` are the values in that order (for `execute_many`, one
    tuple per execution; for `copy`, none: the rows come from the source)."""

    name: str
    kind: str
    sql: str
    args: tuple[Any, ...]
