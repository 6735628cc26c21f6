"""`Postgres`, the facade every store calls, and `_send`: the one function that runs every
statement pgstash sends (named queries, composed statements, caller SQL, COPY, LISTEN, codec
setup, transaction control, the pool's reset). It names the statement, maps driver errors
(`classify`, the one place that reads asyncpg's exceptions), logs and times it.

Retry policy: a statement is sent again only when it provably never reached the server: a
pooled connection found closed before anything was sent on it is replaced (`_acquire`), and a
vector argument that failed to encode on the client (no codec yet: the pool was opened before
`migrate`) is sent again once the codecs are set. Anything else raises `DatabaseError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import select
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any, Self, TypeVar

import asyncpg

from pgstash.connection.codecs import VECTOR_TYPES, register_jsonb, register_vector_codecs
from pgstash.connection.scope import Scope, release
from pgstash.errors import DatabaseError, PgstashError, SchemaMissingError
from pgstash.queries import Query, query
from pgstash.statements import Statement
from pgstash.templates import render

__all__ = ["ConnectTimeout", "Postgres", "classify", "logger"]

logger = logging.getLogger("pgstash")
_T = TypeVar("_T")
_MISSING_RELATION = re.compile(r'relation "(?:[^"]+\.)?([^"]+)" does not exist')
_UNENCODED = re.compile(r"invalid input for query argument .*expected str, got", re.S)

# Transaction control is protocol, not a query of queries/: one fixed savepoint name serves every
# nesting depth (PostgreSQL resolves ROLLBACK TO / RELEASE to the most recent savepoint of a name).
_BEGIN = Statement("begin", "execute", "BEGIN", ())
_COMMIT = Statement("commit", "execute", "COMMIT", ())
_ROLLBACK = Statement("rollback", "execute", "ROLLBACK", ())
_SAVEPOINT = Statement("savepoint", "execute", "SAVEPOINT pgstash_savepoint", ())
_RELEASE = Statement("release savepoint", "execute", "RELEASE SAVEPOINT pgstash_savepoint", ())
_UNDO = Statement(
    "rollback to savepoint",
    "execute",
    "ROLLBACK TO SAVEPOINT pgstash_savepoint; RELEASE SAVEPOINT pgstash_savepoint",
    (),
)


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
        return DatabaseError(name, error.sqlstate, str(error))
    if isinstance(error, ConnectTimeout):
        return DatabaseError(name, "08001", str(error))
    if isinstance(error, TimeoutError):
        return DatabaseError(name, "57014", "timed out (command_timeout) and was cancelled")
    if isinstance(error, asyncpg.InterfaceError):
        text = str(error)
        if "another operation is in progress" in text:
            return DatabaseError(
                name, None, "one transaction's connection was used by two tasks at once: await "
                "the calls inside a transaction one after another"
            )
        if "released back to the pool" in text:
            return DatabaseError(name, None, "used after the transaction ended (its connection was released)")
        if "connection is closed" in text:
            return DatabaseError(name, "08003", "the connection was already closed; nothing was sent")
        return DatabaseError(name, None, f"misuse of the connection: {text}")
    if isinstance(error, asyncpg.InternalClientError | OSError):
        return DatabaseError(name, "08006", f"connection lost: {error}")
    return None


def _rows_of(kind: str, result: Any) -> int:
    if kind == "fetch":
        return len(result)
    if kind in ("fetch_one", "fetch_value"):
        return 0 if result is None else 1
    if isinstance(result, str):
        tail = result.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0
    return 0


async def _closed_before_use(connection: asyncpg.Connection) -> bool:
    """Whether an idle pooled connection is closed, checked before anything is sent on it: a
    backend that ended while the connection sat in the pool left its goodbye (or EOF) on the
    socket, unread. One poll(0) per acquire; only a readable idle socket yields to the loop so
    that asyncpg reads it."""
    if connection.is_closed():
        return True
    transport = connection._transport  # type: ignore[attr-defined]
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return False
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    if not poller.poll(0):
        return False
    for _ in range(4):
        await asyncio.sleep(0)
        if connection.is_closed():
            return True
    return False


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


class Postgres:
    """A pool of connections with pgstash's codecs, and the calls that run SQL on it."""

    def __init__(
        self,
        *,
        dsn: str,
        slow_query_threshold: float = 1.0,
        acquire_timeout: float | None = 30.0,
        max_size: int = 10,
        connect_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._pool: asyncpg.Pool | None = None
        self.dsn = dsn
        self.slow_query_threshold = slow_query_threshold
        self.acquire_timeout = acquire_timeout
        self.max_size = max_size
        self._connect_options = dict(connect_options or {})
        self._scope: ContextVar[Scope | None] = ContextVar(f"pgstash_scope_{id(self)}", default=None)
        self._dirty: set[int] = set()  # ids of connections that ran caller SQL: reset on release
        self._vectors: set[int] = set()  # ids of connections with the vector codecs set
        self._shared: dict[str, Any] = {}
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._rendered: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}

    def attach(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # -- the contract's plain SQL calls (the caller's SQL: its connection is fully reset) ----

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        result: list[asyncpg.Record] = await self._run(Statement("sql", "fetch", sql, args), caller=True)
        return result

    async def fetch_one(self, sql: str, *args: Any) -> asyncpg.Record | None:
        result: asyncpg.Record | None = await self._run(Statement("sql", "fetch_one", sql, args), caller=True)
        return result

    async def fetch_value(self, sql: str, *args: Any) -> Any:
        return await self._run(Statement("sql", "fetch_value", sql, args), caller=True)

    async def execute(self, sql: str, *args: Any) -> str:
        result: str = await self._run(Statement("sql", "execute", sql, args), caller=True)
        return result

    # -- pgstash's own statements --------------------------------------------------------------

    async def run(self, name: str | Query, /, **values: Any) -> Any:
        """Runs the named query from `queries/` with its parameters given by name."""
        named = query(name) if isinstance(name, str) else name
        return await self.run_statement(named.bind(**values))

    async def run_statement(self, statement: Statement) -> Any:
        """Runs a ready statement (a named query bound, or one composed from templates)."""
        return await self._run(statement)

    async def copy(self, statement: Statement, source: AsyncIterable[bytes]) -> int:
        """Runs `COPY ... FROM STDIN` (`statement`, kind "copy") fed by `source`; the rows copied.
        A backend that dies mid-COPY ends it with `DatabaseError` (asyncpg alone would wait)."""
        status: str = await self._run(statement, source=source)
        return _rows_of("copy", status)

    async def run_on(
        self, connection: asyncpg.Connection, statement: Statement, *, timeout: float | None = None
    ) -> Any:
        """Runs `statement` on a connection of the caller's own (the cache listener's)."""
        return await self._send(connection, statement, timeout=timeout)

    async def listen(
        self, connection: asyncpg.Connection, channel: str, callback: Callable[..., Any]
    ) -> None:
        """`LISTEN channel` on a connection of the caller's own (the driver writes the statement
        and keeps the callback)."""
        await self._send(connection, Statement(f"listen {channel}", "listen", "", (channel,)), extra=callback)

    def render(self, named: Query, slots: Mapping[str, str]) -> str:
        """The template query's SQL with its slots filled; cached per slot values."""
        key = (named.name, tuple(sorted(slots.items())))
        sql = self._rendered.get(key)
        if sql is None:
            sql = self._rendered[key] = render(named.sql, **slots)
        return sql

    # -- the one path of every statement -------------------------------------------------------

    async def _run(self, statement: Statement, *, source: Any = None, caller: bool = False) -> Any:
        scope = self._scope.get()
        if scope is not None:
            return await self._in_scope(scope, statement, source=source, caller=caller)
        connection, proxy = await self._acquire(statement.name)
        try:
            if caller:
                self._dirty.add(id(connection))
            return await self._send(connection, statement, extra=source)
        finally:
            await self._release(proxy, statement.name)

    async def _in_scope(
        self, scope: Scope, statement: Statement, *, source: Any = None, caller: bool = False
    ) -> Any:
        running = scope.claim(statement.name)
        try:
            if caller:
                self._dirty.add(id(scope.connection))
            return await self._send(scope.connection, statement, extra=source)
        finally:
            release(running)

    async def _send(
        self,
        connection: asyncpg.Connection,
        statement: Statement,
        *,
        extra: Any = None,
        timeout: float | None = None,
        quiet: bool = False,
    ) -> Any:
        """Sends `statement` on `connection`: named in errors and in the log, timed."""
        name, kind, sql, args = statement.name, statement.kind, statement.sql, statement.args
        started = time.perf_counter()
        encoded_again = False
        while True:
            try:
                if kind == "fetch":
                    result: Any = await connection.fetch(sql, *args, timeout=timeout)
                elif kind == "fetch_one":
                    result = await connection.fetchrow(sql, *args, timeout=timeout)
                elif kind == "fetch_value":
                    result = await connection.fetchval(sql, *args, timeout=timeout)
                elif kind == "execute":
                    result = await connection.execute(sql, *args, timeout=timeout)
                elif kind == "execute_many":
                    await connection.executemany(sql, args, timeout=timeout)
                    result = f"EXECUTE MANY {len(args)}"
                elif kind == "copy":
                    # asyncpg's public copy_to_table writes its own COPY statement; _copy_in sends ours
                    copy_in = connection._copy_in(sql, extra, timeout)  # type: ignore[attr-defined]
                    result = await _until_connection_lost(connection, copy_in)
                elif kind == "listen":
                    await connection.add_listener(args[0], extra)
                    result = "LISTEN"
                else:
                    raise ValueError(f"unknown statement kind {kind!r}")
                break
            except Exception as error:
                if not encoded_again and await self._vector_codecs_were_missing(connection, error):
                    encoded_again = True  # the argument failed to encode here: nothing was sent
                    continue
                mapped = classify(name, error)
                if mapped is None:
                    raise
                lost = isinstance(error, asyncpg.InternalClientError | OSError) and not isinstance(
                    error, TimeoutError
                )
                if lost and not connection.is_closed():
                    # its protocol state is unknown: never hand it to the next caller
                    connection.terminate()
                raise mapped from error
        if not quiet:
            self.log(name, _rows_of(kind, result), time.perf_counter() - started)
        return result

    def log(self, name: str, rows: int, seconds: float) -> None:
        """One line per statement: DEBUG always, WARNING above `slow_query_threshold`."""
        if seconds >= self.slow_query_threshold:
            logger.warning("slow query %s: %d rows in %.1f ms", name, rows, seconds * 1000)
        elif logger.isEnabledFor(logging.DEBUG):
            logger.debug("query %s: %d rows in %.2f ms", name, rows, seconds * 1000)

    @contextlib.contextmanager
    def errors(self, name: str) -> Any:
        """Translates driver errors raised inside the block (the caller's own driver calls on
        `connection()`) into pgstash errors naming `name`."""
        try:
            yield
        except Exception as error:
            mapped = classify(name, error)
            if mapped is None:
                raise
            raise mapped from error

    # -- codecs and the pool's hooks -----------------------------------------------------------

    async def setup_connection(self, connection: asyncpg.Connection) -> None:
        """Pool `init`: jsonb always; the pgvector types once the database has them."""
        await register_jsonb(connection)
        await self._set_vector_codecs(connection)

    async def _set_vector_codecs(self, connection: asyncpg.Connection) -> bool:
        statement = query("vector_types").bind(names=list(VECTOR_TYPES))
        with self.errors(statement.name):
            found = await register_vector_codecs(
                connection, lambda: self._send(connection, statement, quiet=True)
            )
        if found:
            self._vectors.add(id(connection))
        return found

    async def _vector_codecs_were_missing(self, connection: asyncpg.Connection, error: Exception) -> bool:
        """Whether `error` is a vector argument the connection could not encode because it was
        opened before `CREATE EXTENSION vector`, and the codecs are set now (off the hot path:
        only such a failure gets here)."""
        if not isinstance(error, asyncpg.DataError) or id(connection) in self._vectors:
            return False
        if _UNENCODED.search(str(error)) is None:
            return False
        return await self._set_vector_codecs(connection)

    async def reset_connection(self, connection: asyncpg.Connection) -> None:
        """Pool `reset` (asyncpg has already rolled back and dropped listeners): a connection that
        ran only pgstash's own statements holds no session state (they use transaction-scoped
        settings and locks) and goes back as it is; one that ran the caller's SQL or a session is
        reset in full (`RESET ALL`, advisory locks, `CLOSE ALL`, `UNLISTEN *`)."""
        if id(connection) not in self._dirty:
            return
        self._dirty.discard(id(connection))
        reset = connection.get_reset_query()
        if reset:
            await self._send(connection, Statement("reset", "execute", reset, ()), quiet=True)

    # -- connections, transactions, sessions --------------------------------------------------

    async def _acquire(self, name: str) -> tuple[asyncpg.Connection, Any]:
        """A connection from the pool (and its pool proxy, to release it), found open before
        anything is sent on it; failing to get one raises `DatabaseError` naming `name`."""
        if self._pool is None:
            raise DatabaseError(name, None, "the pool is closed")
        for _ in range(self.max_size + 1):
            try:
                proxy = await self._pool.acquire(timeout=self.acquire_timeout)
            except ConnectTimeout as error:
                raise DatabaseError(name, "08001", str(error)) from None
            except TimeoutError:
                raise DatabaseError(
                    name,
                    None,
                    f"the pool is exhausted: all {self.max_size} connections (max_size) stayed in "
                    f"use for {self.acquire_timeout:g} s (acquire_timeout)",
                ) from None
            except OSError as error:
                from pgstash.connection.pool import redact

                raise DatabaseError(
                    name, "08001", f"cannot connect to PostgreSQL at {redact(self.dsn)}: {error}"
                ) from None
            except Exception as error:
                mapped = classify(name, error)
                if mapped is None:
                    raise
                raise mapped from error
            # The proxy detaches from a connection that dies and then answers every call with an
            # InterfaceError; pgstash talks to the connection itself and releases the proxy.
            connection: asyncpg.Connection = proxy._con  # type: ignore[attr-defined]
            if not await _closed_before_use(connection):
                return connection, proxy
            logger.warning("query %s: a pooled connection had closed; nothing was sent, using another", name)
            await self._release(proxy, name)
        raise DatabaseError(name, "08006", "every pooled connection was found closed")

    async def _release(self, proxy: Any, name: str) -> None:
        assert self._pool is not None
        try:
            await self._pool.release(proxy)
        except Exception as error:  # asyncpg terminated it; the statement's outcome stands
            logger.warning("query %s: connection dropped on release (%s)", name, error)

    @contextlib.asynccontextmanager
    async def _pinned(self, kind: str, name: str) -> AsyncIterator[Scope]:
        connection, proxy = await self._acquire(name)
        scope = Scope(connection, kind)
        token = self._scope.set(scope)
        try:
            yield scope
        finally:
            scope.ended = True
            self._scope.reset(token)
            await self._release(proxy, name)

    @contextlib.asynccontextmanager
    async def transaction(self, *, rollback: bool = False) -> AsyncIterator[Self]:
        """Every pgstash call inside the block, on any adapter of this pool, runs on one
        connection and commits or rolls back with it; `rollback=True` always rolls back (settings
        that must not outlive the block). A nested block is a savepoint."""
        scope = self._scope.get()
        if scope is not None:
            async with self._block(scope, scope.connection.is_in_transaction(), rollback):
                yield self
            return
        async with self._pinned("transaction", "begin") as scope, self._block(scope, False, rollback):
            yield self

    @contextlib.asynccontextmanager
    async def _block(self, scope: Scope, nested: bool, rollback: bool) -> AsyncIterator[None]:
        """A transaction (or savepoint) on the scope's connection. When the block fails it is
        rolled back if the connection still lives; either way the block's own error is raised."""
        await self._in_scope(scope, _SAVEPOINT if nested else _BEGIN)
        try:
            yield
        except BaseException:
            await scope.quiet()  # another task's statement (misuse) ends first: never terminate
            if not scope.connection.is_closed():
                with contextlib.suppress(PgstashError):
                    await self._in_scope(scope, _UNDO if nested else _ROLLBACK)
            raise
        if rollback:
            await self._in_scope(scope, _UNDO if nested else _ROLLBACK)
        else:
            await self._in_scope(scope, _RELEASE if nested else _COMMIT)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Self]:
        """Pins one pooled connection to every call inside the block, without opening a
        transaction (for session state such as an advisory lock: reset in full on release)."""
        if self._scope.get() is not None:
            yield self
            return
        async with self._pinned("session", "session") as scope:
            self._dirty.add(id(scope.connection))
            yield self

    @contextlib.asynccontextmanager
    async def connection(self, purpose: str = "acquire") -> AsyncIterator[asyncpg.Connection]:
        """The driver connection of the scope in force, else a pooled one, for the caller's own
        driver calls (reset in full on release); pgstash's statements never use this."""
        scope = self._scope.get()
        if scope is not None:
            self._dirty.add(id(scope.connection))
            yield scope.connection
            return
        connection, proxy = await self._acquire(purpose)
        self._dirty.add(id(connection))
        try:
            yield connection
        finally:
            await self._release(proxy, purpose)

    @property
    def in_transaction(self) -> bool:
        """Whether a `transaction()` (or `session()`) block of this pool is in force here."""
        return self._scope.get() is not None

    async def connect(self, **options: Any) -> asyncpg.Connection:
        """A new connection outside the pool (for LISTEN, which must not hold a pooled one)."""
        try:
            connection: asyncpg.Connection = await asyncpg.connect(
                self.dsn, **{**self._connect_options, **options}
            )
        except TimeoutError:
            from pgstash.connection.pool import address

            raise DatabaseError(
                "connect", "08001",
                f"timed out after {options.get('timeout', self._connect_options.get('timeout'))} s "
                f"connecting to {address(self.dsn, self._connect_options)}",
            ) from None
        except Exception as error:
            mapped = classify("connect", error)
            if mapped is None:
                raise
            raise mapped from None
        return connection

    # -- per-pool singletons ------------------------------------------------------------------

    def shared(self, key: str, factory: Callable[[Postgres], _T]) -> _T:
        """One object per pool and `key`, made on first use; an `aclose()` it has is awaited
        when the pool closes (the cache-invalidation listener lives here)."""
        if key not in self._shared:
            created = self._shared[key] = factory(self)
            closer = getattr(created, "aclose", None)
            if closer is not None:
                self._closers.append(closer)
        result: _T = self._shared[key]
        return result

    async def close(self) -> None:
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                await closer()
        self._closers.clear()
        self._shared.clear()
        if self._pool is not None:
            await self._pool.close()
