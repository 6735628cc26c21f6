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
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar

import asyncpg

from pgstash.connection.codecs import VECTOR_TYPES, register_jsonb, register_vector_codecs
from pgstash.connection.driver import ConnectTimeout, call, classify, closed_before_use, lost, rows_of
from pgstash.connection.replicas import READS, ReplicaReads, Replicas
from pgstash.connection.scope import CONTROL, Scope, Scopes, release
from pgstash.errors import DatabaseError
from pgstash.sql.catalogue import Query, query
from pgstash.sql.statements import Statement
from pgstash.sql.templates import render

__all__ = ["ConnectTimeout", "Postgres", "classify", "logger"]

logger = logging.getLogger("pgstash")
_T = TypeVar("_T")
_MISSING_RELATION = re.compile(r'relation "(?:[^"]+\.)?([^"]+)" does not exist')
_UNENCODED = re.compile(r"invalid input for query argument .*expected str, got", re.S)
_COMMIT_LSN = query("replica_commit_lsn").bind()
_SHADOWS = query("connection_shadowing_temp_tables").bind()
# A connection that ran the caller's SQL goes back reset in full; its temporary tables too, which
# would otherwise shadow pgstash's tables of the same name for the next user (issue 21 item 6).
_DISCARD_TEMP = "DISCARD TEMP;"

class Postgres(Scopes):
    """A pool of connections with pgstash's codecs, and the calls that run SQL on it."""

    def __init__(
        self,
        *,
        dsn: str,
        slow_query_threshold: float = 1.0,
        acquire_timeout: float | None = 30.0,
        max_size: int = 10,
        connect_options: Mapping[str, Any] | None = None,
        shown: str = "",
        where: str = "",
    ) -> None:
        self._pool: asyncpg.Pool | None = None
        self.dsn = dsn
        self._shown = shown  # the DSN without its password, for messages
        self._where = where  # HOST:PORT
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
        self.replicas: Replicas | None = None  # hot standbys serving reads (see replicas.py)

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

    def replica(self) -> ReplicaReads:
        """The caller's read-only SQL on a replica (`postgres.replica().fetch(...)`), routed as
        the stores' reads are; on the primary when the pool has no replica."""
        return ReplicaReads(self, self._run)

    async def on_replica(self, block: Callable[[Postgres], Awaitable[_T]]) -> _T:
        """Runs `block(self)` with every statement it sends on one replica connection, as one
        read (a block of reads only: a search's rolled-back transaction of scan settings); on the
        primary without replicas, inside a transaction, or when no replica can serve it. When the
        replica fails midway the block runs again on the primary (on a standby it wrote nothing)."""
        if self.replicas is None or self._scope.get() is not None:
            return await block(self)
        return await self.replicas.read_block(self, block)

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
        return rows_of("copy", status)

    async def run_on(
        self,
        connection: asyncpg.Connection,
        statement: Statement,
        *,
        timeout: float | None = None,
        caller: bool = False,
    ) -> Any:
        """Runs `statement` on a connection of the caller's own (the cache listener's, a
        replica's); `caller`: the caller's SQL (the connection is reset in full on release)."""
        if caller:
            self._dirty.add(id(connection))
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

    async def _run(
        self, statement: Statement, *, source: Any = None, caller: bool = False, read: bool = False
    ) -> Any:
        scope = self._scope.get()
        if scope is not None:
            return await self._in_scope(scope, statement, source=source, caller=caller)
        if self.replicas is not None and (read or statement.name in READS):
            return await self.replicas.read(self, statement, caller)
        return await self.on_primary(statement, source=source, caller=caller, write=not read)

    async def on_primary(
        self, statement: Statement, *, source: Any = None, caller: bool = False, write: bool = False
    ) -> Any:
        """Runs `statement` on a pooled connection to the primary, outside any scope; `write`:
        it may have committed a write (with replicas, its WAL position is then read)."""
        connection, proxy = await self._acquire(statement.name)
        try:
            if caller:
                self._dirty.add(id(connection))
            result = await self._send(connection, statement, extra=source)
            if write:
                await self.committed(connection)
            return result
        finally:
            await self._release(proxy, statement.name)

    async def committed(self, connection: asyncpg.Connection) -> None:
        """After a commit on the primary: with replicas, the WAL position reads must reach (one
        round trip, same connection); without, nothing."""
        if self.replicas is not None and not connection.is_closed():
            lsn = await self._send(connection, _COMMIT_LSN, quiet=True)
            self.replicas.wrote(lsn)

    async def _in_scope(
        self, scope: Scope, statement: Statement, *, source: Any = None, caller: bool = False
    ) -> Any:
        running = scope.claim(statement.name)
        try:
            if caller:
                self._dirty.add(id(scope.connection))
                scope.unchecked = True
            elif scope.unchecked and statement.name not in CONTROL:
                await self._refuse_shadows(scope.connection, statement.name)
                scope.unchecked = False
            return await self._send(scope.connection, statement, extra=source)
        finally:
            release(running)

    async def _refuse_shadows(self, connection: asyncpg.Connection, name: str) -> None:
        """`DatabaseError` naming the caller's temporary tables that shadow tables on the search
        path (pgstash's statements would read and write them instead), before pgstash's first
        statement after the caller's SQL in a transaction or session."""
        shadows = await self._send(connection, _SHADOWS, quiet=True)
        if shadows:
            raise DatabaseError(
                name,
                None,
                f"temporary table(s) {', '.join(shadows)} on this connection shadow the table(s) of "
                "the same name on the search path, which pgstash's statements would read and write "
                "instead: drop them (or DISCARD TEMP), or give them other names, before calling "
                "pgstash in this transaction or session",
            )

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
        name, kind = statement.name, statement.kind
        started = time.perf_counter()
        encoded_again = False
        while True:
            try:
                result = await call(connection, statement, extra, timeout)
                break
            except Exception as error:
                if not encoded_again and await self._vector_codecs_were_missing(connection, error):
                    encoded_again = True  # the argument failed to encode here: nothing was sent
                    continue
                mapped = classify(name, error)
                if mapped is None:
                    raise
                if lost(error) and not connection.is_closed():
                    # its protocol state is unknown: never hand it to the next caller
                    connection.terminate()
                raise mapped from error
        if not quiet:
            self.log(name, rows_of(kind, result), time.perf_counter() - started)
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
        reset in full (`RESET ALL`, advisory locks, `CLOSE ALL`, `UNLISTEN *`, `DISCARD TEMP`)."""
        if id(connection) not in self._dirty:
            return
        self._dirty.discard(id(connection))
        reset = connection.get_reset_query() + _DISCARD_TEMP
        await self._send(connection, Statement("reset", "execute", reset, ()), quiet=True)

    # -- connections, transactions, sessions --------------------------------------------------

    async def _acquire(self, name: str) -> tuple[asyncpg.Connection, Any]:
        if self._pool is None:
            raise DatabaseError(name, None, "the pool is closed")
        return await self.acquire_from(self._pool, name)

    async def _release(self, proxy: Any, name: str) -> None:
        assert self._pool is not None
        await self.release_to(self._pool, proxy, name)

    async def acquire_from(self, pool: asyncpg.Pool, name: str) -> tuple[asyncpg.Connection, Any]:
        """A connection from `pool` (the primary's or a replica's) and its pool proxy, to release
        it, found open before anything is sent on it; failing to get one raises `DatabaseError`
        naming `name`."""
        for _ in range(self.max_size + 1):
            try:
                # asyncio.timeout, not acquire(timeout=): on Python 3.11 that is wait_for, a task per call
                async with asyncio.timeout(self.acquire_timeout):
                    proxy = await pool.acquire()
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
                message = f"cannot connect to PostgreSQL at {self._shown}: {error}"
                raise DatabaseError(name, "08001", message) from None
            except Exception as error:
                mapped = classify(name, error)
                if mapped is None:
                    raise
                raise mapped from error
            # The proxy detaches from a connection that dies and then answers every call with an
            # InterfaceError; pgstash talks to the connection itself and releases the proxy.
            connection: asyncpg.Connection = proxy._con  # type: ignore[attr-defined]
            if not await closed_before_use(connection):
                return connection, proxy
            logger.warning("query %s: a pooled connection had closed; nothing was sent, using another", name)
            await self.release_to(pool, proxy, name)
        raise DatabaseError(name, "08006", "every pooled connection was found closed")

    async def release_to(self, pool: asyncpg.Pool, proxy: Any, name: str) -> None:
        try:
            await pool.release(proxy)
        except Exception as error:  # asyncpg terminated it; the statement's outcome stands
            logger.warning("query %s: connection dropped on release (%s)", name, error)

    async def connect(self, **options: Any) -> asyncpg.Connection:
        """A new connection outside the pool (for LISTEN, which must not hold a pooled one)."""
        return await self.connect_to(self.dsn, **options)

    async def connect_to(self, dsn: str, **options: Any) -> asyncpg.Connection:
        """A new connection to `dsn` (the primary's or a replica's) outside any pool."""
        try:
            connection: asyncpg.Connection = await asyncpg.connect(
                dsn, **{**self._connect_options, **options}
            )
        except TimeoutError:
            seconds = options.get("timeout", self._connect_options.get("timeout"))
            where = self._where if dsn == self.dsn else "a replica"
            message = f"timed out after {seconds} s connecting to {where}"
            raise DatabaseError("connect", "08001", message) from None
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
        if self.replicas is not None:
            await self.replicas.close()
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                await closer()
        self._closers.clear()
        self._shared.clear()
        if self._pool is not None:
            await self._pool.close()
