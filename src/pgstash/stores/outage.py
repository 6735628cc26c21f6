"""Serving instructions through a database outage (`stale_ok=`, `fallback=`).

A read that finds the database unreachable (a connection that cannot be made or was lost:
SQLSTATE class 08, or the server shutting down: 57P01-57P03) serves, when the call allows it,
the last value this repository read for the same name and selector, flagged `.stale`, and logs a
WARNING; with nothing read before, the call's `fallback`. Any other error is raised as ever.

After a failure the repository does not wait on the database again for `retry_interval` seconds
(stale calls are answered at once); the first call after that tries the database, so fresh
values return within `retry_interval` plus one connection attempt of the server coming back.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from pgstash.connection import logger
from pgstash.errors import DatabaseError

__all__ = ["NOTHING", "Nothing", "Outage", "ResolvedText", "unreachable"]

_SHUTTING_DOWN = frozenset({"57P01", "57P02", "57P03"})


class Nothing(enum.Enum):
    NOTHING = enum.auto()


NOTHING = Nothing.NOTHING  # no fallback given


def unreachable(error: BaseException) -> bool:
    """Whether `error` says the database could not be reached (rather than refused the call)."""
    state = getattr(error, "sqlstate", None) if isinstance(error, DatabaseError) else None
    return state is not None and (state.startswith("08") or state in _SHUTTING_DOWN)


class ResolvedText(str):
    """What `resolve`/`load` return when serving through outages is on: the text, plus `.stale`
    (True: served from memory while the database was unreachable) and `.revision`."""

    stale: bool
    revision: int | None

    def __new__(cls, text: str, *, stale: bool, revision: int | None) -> ResolvedText:
        made = super().__new__(cls, text)
        made.stale = stale
        made.revision = revision
        return made


class Outage:
    """One repository's memory of the last value read per (name, selector), and whether the
    database was found unreachable within the last `retry_interval` seconds."""

    __slots__ = ("down_until", "limit", "values")

    retry_interval = 0.25

    def __init__(self, limit: int = 1024) -> None:
        self.limit = limit
        self.values: OrderedDict[Hashable, Any] = OrderedDict()
        self.down_until = 0.0

    def remember(self, key: Hashable, value: Any) -> None:
        self.values[key] = value
        self.values.move_to_end(key)
        while len(self.values) > self.limit:
            self.values.popitem(last=False)

    async def read(
        self, key: tuple[str, Hashable], read: Callable[[], Awaitable[Any]], *, stale_ok: bool, fallback: bool
    ) -> tuple[Any, bool]:
        """`(value, stale)`: `read()`'s value (remembered when `stale_ok`), or on an unreachable
        database the remembered one (stale_ok) or `NOTHING` (the caller's fallback); with
        neither, the error."""
        if not stale_ok and not fallback:
            return await read(), False
        if self.down_until and time.monotonic() < self.down_until:
            if stale_ok and key in self.values:
                return self.values[key], True
            if fallback:
                return NOTHING, True
        try:
            value = await read()
        except DatabaseError as error:
            if not unreachable(error):
                raise
            self.down_until = time.monotonic() + self.retry_interval
            if stale_ok and key in self.values:
                logger.warning(
                    "instructions %r: the database is unreachable (%s); serving the last value read",
                    key[0],
                    error,
                )
                return self.values[key], True
            if not fallback:
                raise
            logger.warning(
                "instructions %r: the database is unreachable (%s); serving the fallback", key[0], error
            )
            return NOTHING, True
        self.down_until = 0.0
        if stale_ok:
            self.remember(key, value)
        return value, False
