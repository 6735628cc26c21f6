"""`Sender.send`: the one function every statement pgstash sends goes through (named queries,
composed statements, caller SQL, COPY, LISTEN, transaction control). It names the statement,
maps driver errors (`classify`, the one place that reads asyncpg's exceptions), logs and times it.

Retry policy: a statement is sent again only when it provably never reached the server: a vector
argument asyncpg failed to encode on a connection opened before `migrate` (no codec yet) is sent
again once `Lifecycle` has set the codecs. (A pooled connection found closed before use is
replaced at acquire, see `lifecycle`.) Anything else raises `DatabaseError`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from time import perf_counter
from typing import Any, Protocol

import asyncpg

from pgstash.connection.driver import DIRECT, call, classify, rows_of
from pgstash.connection.lifecycle import Lifecycle
from pgstash.sql.statements import Statement

__all__ = ["Logs", "Sender"]


class Logs(Protocol):
    """Who is told about each statement sent (the `Postgres` facade: `log` is looked up per
    statement, so that replacing `Postgres.log` takes effect on open pools too)."""

    def log(self, name: str, rows: int, seconds: float) -> None: ...


class Sender:
    """Sends statements on connections; `logs.log(name, rows, seconds)` is told about each one."""

    def __init__(self, lifecycle: Lifecycle, logs: Logs) -> None:
        self.lifecycle = lifecycle
        self.logs = logs

    async def send(
        self,
        connection: asyncpg.Connection,
        statement: Statement,
        *,
        extra: Any = None,
        timeout: float | None = None,
        quiet: bool = False,
    ) -> Any:
        """Sends `statement` on `connection` (`extra`: COPY's source, LISTEN's callback): named in
        errors and in the log, timed."""
        kind = statement.kind
        started = perf_counter()
        encoded_again = False
        while True:
            try:
                method = DIRECT.get(kind)  # the usual kinds without `call`'s frame: see DIRECT
                if method is not None:
                    sql, args = statement.sql, statement.args
                    result = await getattr(connection, method)(sql, *args, timeout=timeout)
                else:
                    result = await call(connection, statement, extra, timeout)
                break
            except Exception as error:
                if not encoded_again and await self.lifecycle.codecs_were_missing(connection, error):
                    encoded_again = True  # the argument failed to encode here: nothing was sent
                    continue
                mapped = classify(statement.name, error)
                if mapped is None:
                    raise
                self.lifecycle.failed(connection, error)
                raise mapped from error
        if not quiet:
            self.logs.log(statement.name, rows_of(kind, result), perf_counter() - started)
        return result

    @staticmethod
    @contextlib.contextmanager
    def errors(name: str) -> Iterator[None]:
        """Translates driver errors raised inside the block (the caller's own driver calls on
        `postgres.connection()`) into pgstash errors naming `name`."""
        try:
            yield
        except Exception as error:
            mapped = classify(name, error)
            if mapped is None:
                raise
            raise mapped from error
