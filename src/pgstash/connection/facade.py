"""`Postgres`, the facade every store calls: the contract's plain SQL calls, pgstash's own
statements by name, `transaction()` and `session()`, and the routing of each statement: to the
scope in force (`scope`), a replica (`replicas`), else a pooled connection to the primary. What
happens to a connection is `lifecycle`'s; sending a statement is `sender`'s; this module only
composes them. Also the current pool (`resolve`)."""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar

import asyncpg

from pgstash.connection.driver import rows_of
from pgstash.connection.lifecycle import Lifecycle
from pgstash.connection.replicas import ReplicaReads, Replicas
from pgstash.connection.scope import Scopes, Session, Transaction
from pgstash.connection.sender import Logs, Sender
from pgstash.errors import ConfigurationError, DatabaseError
from pgstash.sql import names
from pgstash.sql.catalogue import Query, query
from pgstash.sql.statements import Statement

__all__ = ["CURRENT", "Postgres", "current_postgres", "logger", "resolve"]

logger = logging.getLogger("pgstash")
_T = TypeVar("_T")
_COMMIT_LSN = names.replica_commit_lsn.bind()


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
        shown: str = "",
        where: str = "",
    ) -> None:
        self._pool: asyncpg.Pool | None = None
        self.dsn = dsn
        self.slow_query_threshold = slow_query_threshold
        self.lifecycle = Lifecycle(
            dsn=dsn,
            max_size=max_size,
            acquire_timeout=acquire_timeout,
            connect_options=connect_options,
            shown=shown,
            where=where,
        )
        # the sender looks `self.log` up per statement: a test may replace `Postgres.log`
        self.sender = _sender(self.lifecycle, self)
        self.scopes = Scopes(self.sender)
        self._shared: dict[str, Any] = {}
        self._closers: list[Callable[[], Awaitable[None]]] = []
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
        return ReplicaReads(self._run)

    async def on_replica(self, block: Callable[[Postgres], Awaitable[_T]]) -> _T:
        """Runs `block(self)` with every statement it sends on one replica connection, as one
        read (a block of reads only: a search's rolled-back transaction of scan settings); on the
        primary without replicas, inside a transaction, or when no replica can serve it. When the
        replica fails midway the block runs again on the primary (on a standby it wrote nothing)."""
        if self.replicas is None or self.scopes.current.get() is not None:
            return await block(self)
        return await self.replicas.read_block(lambda: block(self))

    # -- pgstash's own statements --------------------------------------------------------------

    async def run(self, name: str | Query, /, **values: Any) -> Any:
        """Runs the named query from `queries/` with its parameters given by name."""
        named = query(name) if isinstance(name, str) else name
        return await self._run(named.bind(**values))

    async def run_statement(self, statement: Statement) -> Any:
        """Runs a ready statement (a named query bound, or one composed from templates)."""
        return await self._run(statement)

    async def copy(self, statement: Statement, source: AsyncIterable[bytes]) -> int:
        """Runs `COPY ... FROM STDIN` (`statement`, kind "copy") fed by `source`; the rows copied.
        A backend that dies mid-COPY ends it with `DatabaseError` (asyncpg alone would wait)."""
        status: str = await self._run(statement, source=source)
        return rows_of("copy", status)

    async def run_on(
        self, connection: asyncpg.Connection, statement: Statement, *, timeout: float | None = None
    ) -> Any:
        """Runs `statement` on a connection of the caller's own (the cache listener's)."""
        return await self.sender.send(connection, statement, timeout=timeout)

    async def listen(
        self, connection: asyncpg.Connection, channel: str, callback: Callable[..., Any]
    ) -> None:
        """`LISTEN channel` on a connection of the caller's own (asyncpg writes the statement)."""
        await self.sender.send(
            connection, Statement(f"listen {channel}", "listen", "", (channel,)), extra=callback
        )

    def log(self, name: str, rows: int, seconds: float) -> None:
        """One line per statement: DEBUG always, WARNING above `slow_query_threshold`."""
        if seconds >= self.slow_query_threshold:
            logger.warning("slow query %s: %d rows in %.1f ms", name, rows, seconds * 1000)
        elif logger.isEnabledFor(logging.DEBUG):
            logger.debug("query %s: %d rows in %.2f ms", name, rows, seconds * 1000)

    def errors(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Driver errors raised in the block (calls on `connection()`) as pgstash errors naming `name`."""
        return self.sender.errors(name)

    # -- where a statement runs ----------------------------------------------------------------

    def _run(
        self, statement: Statement, *, source: Any = None, caller: bool = False, read: bool = False
    ) -> Awaitable[Any]:
        """Where `statement` runs: the scope in force, a replica, else a pooled connection to the
        primary. Returns that path's awaitable (a dispatch, not a coroutine of its own: every
        frame in the chain is entered again each time the call resumes)."""
        scope = self.scopes.current.get()
        if scope is not None:
            return self.scopes.run(scope, statement, extra=source, caller=caller)
        if self.replicas is not None and (read or statement.read):
            return self.replicas.read(statement, caller, lambda: self.on_primary(statement, caller=caller))
        return self.on_primary(statement, source=source, caller=caller, write=not read)

    async def on_primary(
        self, statement: Statement, *, source: Any = None, caller: bool = False, write: bool = False
    ) -> Any:
        """Runs `statement` on a pooled connection to the primary, outside any scope; `write`:
        it may have committed a write (with replicas, its WAL position is then read)."""
        pool, lifecycle = self._pool, self.lifecycle  # acquire and release inline: the hot path
        if pool is None:
            raise DatabaseError(statement.name, None, "the pool is closed")
        connection, proxy = await lifecycle.acquire(pool, statement.name)
        try:
            if caller:
                lifecycle.ran_callers_sql(connection)
            result = await self.sender.send(connection, statement, extra=source)
            if write and self.replicas is not None:
                await self.committed(connection)
            return result
        finally:
            try:  # Lifecycle.release, inline
                await pool.release(proxy)
            except Exception as error:  # asyncpg terminated it; the statement's outcome stands
                lifecycle.dropped(statement.name, error)

    async def committed(self, connection: asyncpg.Connection) -> None:
        """After a commit on the primary: with replicas, the WAL position reads must reach (one
        round trip, same connection); without, nothing."""
        if self.replicas is not None and not connection.is_closed():
            lsn = await self.sender.send(connection, _COMMIT_LSN, quiet=True)
            self.replicas.wrote(lsn)

    async def acquire(self, name: str) -> tuple[asyncpg.Connection, Any]:
        """A pooled connection to the primary and its proxy (to `release`)."""
        if self._pool is None:
            raise DatabaseError(name, None, "the pool is closed")
        return await self.lifecycle.acquire(self._pool, name)

    async def release(self, proxy: Any, name: str) -> None:
        assert self._pool is not None
        await self.lifecycle.release(self._pool, proxy, name)

    async def connect(self, **options: Any) -> asyncpg.Connection:
        return await self.lifecycle.connect(None, **options)  # for LISTEN: never a pooled one

    # -- blocks that pin a connection ------------------------------------------------------------

    def transaction(self, *, rollback: bool = False) -> Transaction[Postgres]:
        """Every pgstash call inside the block, on any adapter of this pool, runs on one
        connection and commits or rolls back with it; `rollback=True` always rolls back (settings
        that must not outlive the block). A nested block is a savepoint."""
        return Transaction(self, self, rollback=rollback)

    def session(self) -> Session[Postgres]:
        """Pins one pooled connection (behind a transaction pooler, `listen_dsn`'s) to every call
        inside the block, without a transaction (session state: reset in full on release)."""
        return Session(self.lifecycle.sessions.primary(self), self)

    @contextlib.asynccontextmanager
    async def connection(self, purpose: str = "acquire") -> AsyncIterator[asyncpg.Connection]:
        """The driver connection of the scope in force, else a pooled one, for the caller's own
        driver calls (reset in full on release); pgstash's statements never use this."""
        scope = self.scopes.current.get()
        if scope is not None:
            self.lifecycle.ran_callers_sql(scope.connection)
            scope.unchecked = True  # pgstash's next statement in the block checks for temp tables
            yield scope.connection
            return
        connection, proxy = await self.acquire(purpose)
        self.lifecycle.ran_callers_sql(connection)
        try:
            yield connection
            if not connection.is_in_transaction():
                await self.committed(connection)  # the caller's calls may have written
        finally:
            await self.release(proxy, purpose)

    def scope_connection(self) -> asyncpg.Connection | None:
        """The connection of the block in force (None outside one), for pgstash's bookkeeping:
        unlike `connection()` it marks nothing for a reset or a temporary-table check."""
        scope = self.scopes.current.get()
        return None if scope is None else scope.connection

    @property
    def in_transaction(self) -> bool:
        """Whether a `transaction()` (or `session()`) block of this pool is in force here."""
        return self.scopes.current.get() is not None

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


def _sender(lifecycle: Lifecycle, logs: Logs) -> Sender:
    """The plain `Sender`, or `tracing`'s when the application configured OpenTelemetry."""
    if importlib.util.find_spec("opentelemetry") is not None:
        from pgstash.connection.tracing import traced

        sender = traced(lifecycle, logs)
        if sender is not None:
            return sender
    return Sender(lifecycle, logs)


CURRENT: ContextVar[Postgres | None] = ContextVar("pgstash_current_pool", default=None)


def resolve(postgres: Postgres | None = None) -> Postgres:
    """`postgres` when given, else the pool of the innermost active
    `async with PostgresConnectionPool.of(...)` block (`ConfigurationError` outside one)."""
    if postgres is not None:
        return postgres
    current = CURRENT.get()
    if current is None:
        raise ConfigurationError(
            "no PostgreSQL pool is active: call this inside "
            "`async with PostgresConnectionPool.of(dsn=...)`, or pass postgres= explicitly"
        )
    return current


def current_postgres() -> Postgres:
    """The current pool (see `resolve`)."""
    return resolve(None)
