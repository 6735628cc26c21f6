"""The connection pool, the `Postgres` facade every store calls, and the current pool.

Every statement pgstash runs goes through `Postgres.run` (a named query) or `Postgres.run_sql`
(a statement composed from templates): one place that picks the connection (the transaction in
scope, else one from the pool), logs the call, and wraps driver errors with the query's name and
SQLSTATE.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Self, TypeVar

import asyncpg

from pgstash.codecs import register_codecs
from pgstash.errors import ConfigurationError, DatabaseError, SchemaMissingError
from pgstash.queries import Query, query
from pgstash.templates import render

__all__ = ["Postgres", "PostgresConnectionPool", "connection_lost", "current_postgres", "redact", "resolve"]

logger = logging.getLogger("pgstash")

DSN_VARIABLE = "PGSTASH_DSN"
_current: ContextVar[Postgres | None] = ContextVar("pgstash_current_pool", default=None)
_T = TypeVar("_T")

# Errors that mean the connection is gone, not that the statement was wrong.
_CONNECTION_LOST: tuple[type[BaseException], ...] = (
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.AdminShutdownError,
    asyncpg.CannotConnectNowError,
    ConnectionError,
    OSError,
)
_RETRYABLE_KINDS = frozenset({"fetch", "fetch_one", "fetch_value"})
_MISSING_RELATION = re.compile(r'relation "(?:[^"]+\.)?([^"]+)" does not exist')


def connection_lost(error: BaseException | None) -> bool:
    """Whether `error` (a driver error, or a `DatabaseError` wrapping one) means the connection
    is gone. A timeout is not: the server is there, the statement was too slow (and retrying it
    would double the load that made it slow)."""
    if isinstance(error, DatabaseError):
        error = error.__cause__
    return isinstance(error, _CONNECTION_LOST) and not isinstance(error, TimeoutError)


def _usable(connection: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy) -> bool:
    """Whether the connection is open. One that died was detached from its pool proxy, whose
    every method then raises `InterfaceError` (which must not replace the error that killed it)."""
    try:
        return not connection.is_closed()
    except asyncpg.InterfaceError:
        return False


def redact(dsn: str) -> str:
    """The DSN without its password, for messages."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", dsn)


def current_postgres() -> Postgres:
    """The pool of the innermost active `async with PostgresConnectionPool.of(...)` block."""
    postgres = _current.get()
    if postgres is None:
        raise ConfigurationError(
            "no PostgreSQL pool is active: call this inside "
            "`async with PostgresConnectionPool.of(dsn=...)`, or pass postgres= explicitly"
        )
    return postgres


def resolve(postgres: Postgres | None) -> Postgres:
    """The given pool, else the current one (`ConfigurationError` outside any block)."""
    return current_postgres() if postgres is None else postgres


def _rows_of(kind: str, result: Any) -> int:
    if kind == "fetch":
        return len(result)
    if kind in ("fetch_one", "fetch_value"):
        return 0 if result is None else 1
    if isinstance(result, str):
        tail = result.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0
    return 0


class Postgres:
    """A pool of connections with pgstash's codecs, and the calls that run SQL on it."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        dsn: str,
        slow_query_threshold: float = 1.0,
        connect_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._pool = pool
        self.dsn = dsn
        self.slow_query_threshold = slow_query_threshold
        self._connect_options = dict(connect_options or {})
        self._connection: ContextVar[asyncpg.Connection | None] = ContextVar(
            f"pgstash_transaction_{id(self)}", default=None
        )
        self._shared: dict[str, Any] = {}
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._rendered: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}

    # -- the contract's plain SQL calls -----------------------------------------------------

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        result: list[asyncpg.Record] = await self.run_sql("sql", "fetch", sql, args)
        return result

    async def fetch_one(self, sql: str, *args: Any) -> asyncpg.Record | None:
        result: asyncpg.Record | None = await self.run_sql("sql", "fetch_one", sql, args)
        return result

    async def fetch_value(self, sql: str, *args: Any) -> Any:
        return await self.run_sql("sql", "fetch_value", sql, args)

    async def execute(self, sql: str, *args: Any) -> str:
        result: str = await self.run_sql("sql", "execute", sql, args)
        return result

    # -- named queries -----------------------------------------------------------------------

    async def run(
        self, name: str | Query, /, *, slots: Mapping[str, str] | None = None, **values: Any
    ) -> Any:
        """Runs the named query from `queries/` with its parameters given by name. A template
        query has its `{slot}` identifiers filled from `slots` (validated and quoted)."""
        named = query(name) if isinstance(name, str) else name
        sql = self.render(named, slots) if slots else named.sql
        return await self.run_sql(named.name, named.kind, sql, named.arguments(values))

    def render(self, named: Query, slots: Mapping[str, str]) -> str:
        """The template query's SQL with its slots filled; cached per slot values."""
        key = (named.name, tuple(sorted(slots.items())))
        sql = self._rendered.get(key)
        if sql is None:
            sql = self._rendered[key] = render(named.sql, **slots)
        return sql

    async def run_sql(self, name: str, kind: str, sql: str, args: Sequence[Any]) -> Any:
        """Runs `sql` (`kind`: fetch, fetch_one, fetch_value, execute, execute_many) on the
        connection in scope. Reads outside a transaction retry once on a lost connection."""
        retry = kind in _RETRYABLE_KINDS and self._connection.get() is None
        while True:
            try:
                async with self.connection(name) as connection:
                    return await self._timed(name, kind, connection, sql, args)
            except DatabaseError as error:
                if not (retry and connection_lost(error)):
                    raise
                retry = False
                logger.warning("query %s: connection lost, retrying once", name)

    async def _timed(
        self, name: str, kind: str, connection: asyncpg.Connection, sql: str, args: Sequence[Any]
    ) -> Any:
        started = time.perf_counter()
        with self.errors(name):
            if kind == "fetch":
                result: Any = await connection.fetch(sql, *args)
            elif kind == "fetch_one":
                result = await connection.fetchrow(sql, *args)
            elif kind == "fetch_value":
                result = await connection.fetchval(sql, *args)
            elif kind == "execute":
                result = await connection.execute(sql, *args)
            elif kind == "execute_many":
                await connection.executemany(sql, args)
                result = f"EXECUTE MANY {len(args)}"
            else:
                raise ValueError(f"unknown query kind {kind!r}")
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
        """Translates driver errors raised inside the block into pgstash errors naming `name`."""
        try:
            yield
        except asyncpg.UndefinedTableError as error:
            missing = _MISSING_RELATION.search(str(error))
            table = missing.group(1) if missing else "?"
            raise SchemaMissingError(
                table, "`pgstash migrate` (or `await pgstash.migrate(postgres)`)"
            ) from error
        except asyncpg.PostgresError as error:
            raise DatabaseError(name, error.sqlstate, str(error)) from error
        except TimeoutError as error:
            raise DatabaseError(name, "57014", "timed out (command_timeout) and was cancelled") from error
        except _CONNECTION_LOST as error:
            raise DatabaseError(name, "08006", f"connection lost: {error}") from error

    # -- connections and transactions --------------------------------------------------------

    @contextlib.asynccontextmanager
    async def connection(self, purpose: str = "acquire") -> AsyncIterator[Any]:
        """The transaction's connection when one is in scope, else one from the pool; failing to
        get one raises `DatabaseError` naming `purpose` (the query it was for)."""
        current = self._connection.get()
        if current is not None:
            yield current
            return
        try:
            with self.errors(purpose):
                acquired = await self._pool.acquire()
        except DatabaseError as error:
            cause = error.__cause__
            if isinstance(cause, OSError) and not isinstance(cause, TimeoutError):
                raise DatabaseError(
                    purpose, "08001", f"cannot connect to PostgreSQL at {redact(self.dsn)}: {cause}"
                ) from cause
            raise
        try:
            yield acquired
        except DatabaseError as error:
            if connection_lost(error) and _usable(acquired):
                # its protocol state is unknown (asyncpg may raise InternalClientError on its
                # next use): never hand it to the next caller
                acquired.terminate()
            raise
        finally:
            try:
                await self._pool.release(acquired)
            except Exception as error:  # asyncpg terminated it; the statement's outcome stands
                logger.warning("query %s: connection dropped on release (%s)", purpose, error)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Self]:
        """Every pgstash call inside the block, on any adapter of this pool, runs on one
        connection and commits or rolls back with it. A nested block is a savepoint."""
        current = self._connection.get()
        if current is not None:
            async with self._block(current, "savepoint"):
                yield self
            return
        async with self.connection("begin") as connection:
            token = self._connection.set(connection)
            try:
                async with self._block(connection, "begin"):
                    yield self
            finally:
                self._connection.reset(token)

    @contextlib.asynccontextmanager
    async def _block(self, connection: asyncpg.Connection, name: str) -> AsyncIterator[None]:
        """A transaction (or savepoint) on `connection`. When the block fails it is rolled back
        if the connection still lives; either way the block's own error is the one raised."""
        transaction = connection.transaction()
        with self.errors(name):
            await transaction.start()
        try:
            yield
        except BaseException:
            if _usable(connection):
                with contextlib.suppress(Exception):
                    await transaction.rollback()
            raise
        with self.errors("commit" if name == "begin" else "release savepoint"):
            await transaction.commit()

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[Self]:
        """Pins one pooled connection to every call inside the block, without opening a
        transaction (for session state such as an advisory lock)."""
        if self._connection.get() is not None:
            yield self
            return
        async with self.connection() as connection:
            token = self._connection.set(connection)
            try:
                yield self
            finally:
                self._connection.reset(token)

    @property
    def in_transaction(self) -> bool:
        return self._connection.get() is not None

    async def connect(self, **options: Any) -> asyncpg.Connection:
        """A new connection outside the pool (for LISTEN, which must not hold a pooled one)."""
        with self.errors("connect"):
            return await asyncpg.connect(self.dsn, **{**self._connect_options, **options})

    async def reset_codecs(self) -> None:
        """Replaces every pooled connection, so that new ones register the codecs of types
        created since (after `CREATE EXTENSION vector`)."""
        await self._pool.expire_connections()

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
        await self._pool.close()


class PostgresConnectionPool:
    """`async with PostgresConnectionPool.of(dsn=...) as postgres:` opens a pool with pgstash's
    codecs and makes it the current one for adapters built without `postgres=`."""

    def __init__(self, dsn: str | None, **options: Any) -> None:
        self._dsn = dsn
        self._options = options
        self._postgres: Postgres | None = None
        self._token: Any = None

    @classmethod
    def of(
        cls,
        dsn: str | None = None,
        *,
        min_size: int = 1,
        max_size: int = 10,
        statement_cache_size: int = 100,
        command_timeout: float | None = None,
        slow_query_threshold: float = 1.0,
        **connect_options: Any,
    ) -> PostgresConnectionPool:
        return cls(
            dsn,
            min_size=min_size,
            max_size=max_size,
            statement_cache_size=statement_cache_size,
            command_timeout=command_timeout,
            slow_query_threshold=slow_query_threshold,
            connect_options=connect_options,
        )

    async def open(self) -> Postgres:
        """Opens the pool (outside `async with`; close it with `close()`)."""
        dsn = self._dsn or os.environ.get(DSN_VARIABLE)
        if not dsn:
            raise ConfigurationError(
                f"no PostgreSQL DSN: pass dsn= to PostgresConnectionPool.of() or set {DSN_VARIABLE} "
                "(for example postgresql://user:password@localhost:5432/db)"
            )
        options = dict(self._options)
        connect_options: dict[str, Any] = options.pop("connect_options")
        slow: float = options.pop("slow_query_threshold")
        per_connection = {
            "statement_cache_size": options.pop("statement_cache_size"),
            "command_timeout": options.pop("command_timeout"),
            **connect_options,
        }
        pool = await open_pool(dsn, init=register_codecs, **options, **per_connection)
        self._postgres = Postgres(pool, dsn=dsn, slow_query_threshold=slow, connect_options=per_connection)
        return self._postgres

    async def close(self) -> None:
        if self._postgres is not None:
            await self._postgres.close()
            self._postgres = None

    async def __aenter__(self) -> Postgres:
        postgres = await self.open()
        self._token = _current.set(postgres)
        return postgres

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            await self.close()
        finally:
            if self._token is not None:
                _current.reset(self._token)
                self._token = None


async def open_pool(dsn: str, **options: Any) -> asyncpg.Pool:
    """An asyncpg pool, with connection failures turned into errors that say what to check."""
    try:
        pool: asyncpg.Pool = await asyncpg.create_pool(dsn, **options)
    except (TimeoutError, OSError) as error:
        raise ConfigurationError(
            f"cannot reach PostgreSQL at {redact(dsn)}: {error}. Check the host and port in the "
            f"DSN, that the server is running, or leave {DSN_VARIABLE} unset to use the embedded server"
        ) from error
    except asyncpg.InvalidAuthorizationSpecificationError as error:
        raise ConfigurationError(f"PostgreSQL at {redact(dsn)} refused the login: {error}") from error
    except asyncpg.InvalidCatalogNameError as error:
        raise ConfigurationError(
            f"PostgreSQL at {redact(dsn)}: {error}; create the database first (createdb)"
        ) from error
    except asyncpg.PostgresError as error:
        raise ConfigurationError(f"PostgreSQL at {redact(dsn)}: {error}") from error
    return pool
