"""What pgstash needs from asyncpg beyond its public calls: running a statement by its kind
(COPY with pgstash's own statement), classifying the driver's errors (the one place that reads
them), and guarding COPY against a dead backend."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from typing import Any, TypeVar

import asyncpg

from pgstash.connection.pooler import explain
from pgstash.errors import DatabaseError, PgstashError, SchemaMissingError
from pgstash.sql.statements import Statement

__all__ = ["DIRECT", "ConnectTimeout", "call", "classify", "lost", "rows_of"]

_T = TypeVar("_T")
_MISSING_RELATION = re.compile(r'relation "(?:[^"]+\.)?([^"]+)" does not exist')


# The kinds that are one public method of the connection (by name), called as `method(sql,
# *args, timeout=...)` by `Sender.send` itself: one coroutine frame fewer per statement (each
# frame of the chain is entered again whenever the call resumes). `call` runs the same for them.
DIRECT = {"fetch": "fetch", "fetch_one": "fetchrow", "fetch_value": "fetchval", "execute": "execute"}


async def call(
    connection: asyncpg.Connection, statement: Statement, extra: Any, timeout: float | None
) -> Any:
    """Runs `statement` on `connection` by its kind; `extra` is COPY's source or LISTEN's callback."""
    kind, sql, args = statement.kind, statement.sql, statement.args
    if kind == "fetch":
        return await connection.fetch(sql, *args, timeout=timeout)
    if kind == "fetch_one":
        return await connection.fetchrow(sql, *args, timeout=timeout)
    if kind == "fetch_value":
        return await connection.fetchval(sql, *args, timeout=timeout)
    if kind == "execute":
        return await connection.execute(sql, *args, timeout=timeout)
    if kind == "execute_many":
        await connection.executemany(sql, args, timeout=timeout)
        return f"EXECUTE MANY {len(args)}"
    if kind == "copy":
        # asyncpg's public copy_to_table writes its own COPY statement; _copy_in sends this one
        copy_in = connection._copy_in(sql, extra, timeout)  # type: ignore[attr-defined]
        return await _until_connection_lost(connection, copy_in)
    if kind == "listen":
        await connection.add_listener(args[0], extra)
        return "LISTEN"
    raise ValueError(f"unknown statement kind {kind!r}")


def lost(error: BaseException) -> bool:
    """Whether `error` leaves the connection in an unknown protocol state (to be terminated)."""
    return isinstance(error, asyncpg.InternalClientError | OSError) and not isinstance(error, TimeoutError)


class ConnectTimeout(OSError):
    """Opening a connection took longer than `connect_timeout` (no statement ran)."""


def classify(name: str, error: BaseException) -> PgstashError | None:
    """The pgstash error for a driver error raised by statement `name` (None: not the driver's).
    asyncpg's `InterfaceError` is the caller's misuse (what was misused is said), or a
    connection already closed; never "connection lost" for a healthy connection."""
    if isinstance(error, asyncpg.UndefinedTableError):
        missing = _MISSING_RELATION.search(str(error))
        table = missing.group(1) if missing else "?"
        return SchemaMissingError(table, "`pgstash migrate` (or `await pgstash.migrate(postgres)`)")
    if isinstance(error, asyncpg.PostgresError):
        return DatabaseError(name, error.sqlstate, explain(str(error)) or str(error))
    if isinstance(error, ConnectTimeout):
        return DatabaseError(name, "08001", str(error))
    if isinstance(error, TimeoutError):
        return DatabaseError(name, "57014", "timed out (command_timeout) and was cancelled")
    if isinstance(error, asyncpg.InterfaceError):
        text = str(error)
        if "another operation is in progress" in text:
            return DatabaseError(
                name,
                None,
                "one transaction's connection was used by two tasks at once: await "
                "the calls inside a transaction one after another",
            )
        if "released back to the pool" in text:
            return DatabaseError(name, None, "used after the transaction ended (its connection was released)")
        if "connection is closed" in text:
            return DatabaseError(name, "08003", "the connection was already closed; nothing was sent")
        return DatabaseError(name, None, f"misuse of the connection: {text}")
    if isinstance(error, asyncpg.InternalClientError | OSError):
        return DatabaseError(name, "08006", f"connection lost: {error}")
    return None


def rows_of(kind: str, result: Any) -> int:
    if kind == "fetch":
        return len(result)
    if kind in ("fetch_one", "fetch_value"):
        return 0 if result is None else 1
    if isinstance(result, str):
        tail = result.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0
    return 0


async def _until_connection_lost(connection: asyncpg.Connection, operation: Awaitable[_T]) -> _T:
    """Awaits `operation` on `connection`, but ends it when the connection closes: asyncpg's COPY
    otherwise waits forever for the socket to drain when its backend is terminated mid-copy."""
    lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def closed(_: object) -> None:
        if not lost.done():
            lost.set_result(None)

    connection.add_termination_listener(closed)
    task = asyncio.ensure_future(operation)
    try:
        await asyncio.wait((task, lost), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        raise
    finally:
        connection.remove_termination_listener(closed)
        lost.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.wait({task}, timeout=5.0)
    if task.done() and not task.cancelled():
        task.exception()  # retrieved: the copy failed because the connection went away
    connection.terminate()  # also ends the cancel request asyncpg now sends to the gone backend
    raise asyncpg.ConnectionDoesNotExistError("the connection closed during COPY; nothing was written")
