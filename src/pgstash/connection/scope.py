"""The current pool (`resolve`), and one transaction or session scope: the connection every call
inside it runs on, whether the scope has ended, and the statement running on it (a scope's
connection serves one task at a time)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Self

import asyncpg
import attrs

from pgstash.errors import ConfigurationError, DatabaseError, PgstashError
from pgstash.sql.statements import Statement

if TYPE_CHECKING:
    from pgstash.connection.executor import Postgres

__all__ = ["CONTROL", "Scope", "Scopes", "current_postgres", "resolve"]

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
CONTROL = frozenset(statement.name for statement in (_BEGIN, _COMMIT, _ROLLBACK, _SAVEPOINT, _RELEASE, _UNDO))

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


@attrs.define(eq=False)
class Scope:
    """A connection pinned to a `transaction()` or `session()` block (and the tasks it starts)."""

    connection: asyncpg.Connection
    kind: str  # "transaction" or "session"
    ended: bool = False
    running: asyncio.Future[None] | None = None
    unchecked: bool = False  # the caller's SQL ran since temp relations were last checked

    def claim(self, name: str) -> asyncio.Future[None]:
        """Marks a statement as running on the scope's connection; a second one at the same time,
        or one after the block ended, is the caller's misuse: `DatabaseError` saying which (nothing
        is sent, and the connection stays as it was)."""
        if self.ended:
            raise DatabaseError(
                name,
                None,
                f"used after the {self.kind} ended: a task started inside "
                f"`async with postgres.{self.kind}()` ran this call after the block had exited",
            )
        if self.running is not None and not self.running.done():
            raise DatabaseError(
                name,
                None,
                f"one {self.kind}'s connection was used by two tasks at once (for example "
                f"asyncio.gather of calls inside `async with postgres.{self.kind}()`): await "
                "them one after another",
            )
        running: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.running = running
        return running

    async def quiet(self) -> None:
        """Waits for the statement still running on the connection (another task's) to end."""
        running = self.running
        if running is not None and not running.done():
            await asyncio.wait({running})


def release(running: asyncio.Future[Any]) -> None:
    if not running.done():
        running.set_result(None)


class Scopes:
    """`transaction()`, `session()` and `connection()` of `Postgres`: a connection pinned to a
    block, in a context variable, so that every call inside it (on any adapter of the pool, in
    any task it starts) runs on that connection."""

    _scope: ContextVar[Scope | None]
    _dirty: set[int]

    async def _acquire(self, name: str) -> tuple[asyncpg.Connection, Any]:
        raise NotImplementedError

    async def _release(self, proxy: Any, name: str) -> None:
        raise NotImplementedError

    async def _in_scope(self, scope: Scope, statement: Statement) -> Any:
        raise NotImplementedError

    async def committed(self, connection: asyncpg.Connection) -> None:
        raise NotImplementedError

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
            try:
                if kind == "session":  # it may have committed writes: read-your-writes on replicas
                    with contextlib.suppress(PgstashError):
                        await self.committed(connection)
            finally:
                await self._release(proxy, name)

    @contextlib.contextmanager
    def pinned(self, connection: asyncpg.Connection) -> Iterator[None]:
        """Every call inside the block runs on `connection` (a replica's, for a block of reads);
        the caller acquired it and releases it."""
        scope = Scope(connection, "session")
        token = self._scope.set(scope)
        try:
            yield
        finally:
            scope.ended = True
            self._scope.reset(token)

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
        elif nested:
            await self._in_scope(scope, _RELEASE)
        else:
            await self._in_scope(scope, _COMMIT)
            await self.committed(scope.connection)

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
            scope.unchecked = True
            yield scope.connection
            return
        connection, proxy = await self._acquire(purpose)
        self._dirty.add(id(connection))
        try:
            yield connection
            if not connection.is_in_transaction():
                await self.committed(connection)  # the caller's calls may have written
        finally:
            await self._release(proxy, purpose)

    def scope_connection(self) -> asyncpg.Connection | None:
        """The driver connection of the transaction or session in force (None outside one), for
        pgstash's own bookkeeping: nothing of the caller's runs on it through this, so unlike
        `connection()` it marks nothing for a reset or a temporary-table check."""
        scope = self._scope.get()
        return None if scope is None else scope.connection

    @property
    def in_transaction(self) -> bool:
        """Whether a `transaction()` (or `session()`) block of this pool is in force here."""
        return self._scope.get() is not None
