"""Blocks that pin one connection: `Transaction` and `Session` (the objects `postgres.transaction()`
and `postgres.session()` return), the `Scope` in force (the connection every call inside a block
runs on, whether the block has ended, the statement running on it: one task at a time)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

import asyncpg
import attrs

from pgstash.connection.sender import Sender
from pgstash.errors import DatabaseError, PgstashError
from pgstash.sql.catalogue import query
from pgstash.sql.statements import Statement
from pgstash.sql.templates import named

__all__ = ["CONTROL", "Primary", "Scope", "Scopes", "Session", "Transaction"]

_T = TypeVar("_T")


# Transaction control is protocol, not a query of queries/: one fixed savepoint name serves every
# nesting depth (PostgreSQL resolves ROLLBACK TO / RELEASE to the most recent savepoint of a name).
# Each names itself in a comment as the queries do (`BEGIN /* pgstash:begin */`).
def _control(name: str, sql: str) -> Statement:
    return Statement(name, "execute", named(sql, name), ())


_BEGIN = _control("begin", "BEGIN")
_COMMIT = _control("commit", "COMMIT")
_ROLLBACK = _control("rollback", "ROLLBACK")
_SAVEPOINT = _control("savepoint", "SAVEPOINT pgstash_savepoint")
_RELEASE = _control("release savepoint", "RELEASE SAVEPOINT pgstash_savepoint")
_UNDO = _control(
    "rollback to savepoint", "ROLLBACK TO SAVEPOINT pgstash_savepoint; RELEASE SAVEPOINT pgstash_savepoint"
)

CONTROL = frozenset(statement.name for statement in (_BEGIN, _COMMIT, _ROLLBACK, _SAVEPOINT, _RELEASE, _UNDO))
_SHADOWS = query("connection_shadowing_temp_tables").bind()


@attrs.define(eq=False)
class Scope:
    """A connection pinned to a `transaction()` or `session()` block (and the tasks it starts)."""

    connection: asyncpg.Connection
    kind: str  # "transaction" or "session"
    ended: bool = False
    running: asyncio.Future[None] | None = None
    unchecked: bool = False  # the caller's SQL ran since temporary tables were last checked

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


class Scopes:
    """The scope in force for one pool, in a context variable (so every call inside a block, on
    any adapter of the pool, in any task the block starts, runs on its connection), and running a
    statement on a scope's connection."""

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self.current: ContextVar[Scope | None] = ContextVar(f"pgstash_scope_{id(self)}", default=None)

    async def run(
        self, scope: Scope, statement: Statement, *, extra: Any = None, caller: bool = False
    ) -> Any:
        running = scope.claim(statement.name)
        try:
            if caller:
                self.sender.lifecycle.ran_callers_sql(scope.connection)
                scope.unchecked = True
            elif scope.unchecked and statement.name not in CONTROL:
                await self._refuse_shadows(scope.connection, statement.name)
                scope.unchecked = False
            return await self.sender.send(scope.connection, statement, extra=extra)
        finally:
            if not running.done():
                running.set_result(None)

    async def _refuse_shadows(self, connection: asyncpg.Connection, name: str) -> None:
        """`DatabaseError` naming the caller's temporary tables that shadow tables on the search
        path (pgstash's unqualified statements would read and write them instead), checked before
        pgstash's first statement after the caller's SQL in a block (issue 21 item 6)."""
        shadows = await self.sender.send(connection, _SHADOWS, quiet=True)
        if shadows:
            raise DatabaseError(
                name,
                None,
                f"temporary table(s) {', '.join(shadows)} on this connection shadow the table(s) of "
                "the same name on the search path, which pgstash's statements would read and write "
                "instead: drop them (or DISCARD TEMP), or give them other names, before calling "
                "pgstash in this transaction or session",
            )

    @contextlib.contextmanager
    def pinned(self, connection: asyncpg.Connection, kind: str = "session") -> Iterator[Scope]:
        """Every call inside the block runs on `connection`; whoever acquired it releases it."""
        scope = Scope(connection, kind)
        token = self.current.set(scope)
        try:
            yield scope
        finally:
            scope.ended = True
            self.current.reset(token)


class Primary(Protocol):
    """What a block needs of its pool (the `Postgres` facade)."""

    scopes: Scopes

    async def acquire(self, name: str) -> tuple[asyncpg.Connection, Any]: ...

    async def release(self, proxy: Any, name: str) -> None: ...

    async def committed(self, connection: asyncpg.Connection) -> None: ...


class _Block(Generic[_T]):
    """A block that pins a pooled connection unless one is pinned already (then it joins it)."""

    kind = "session"
    _name = "session"  # names the acquire in errors and in the log

    def __init__(self, primary: Primary, returns: _T) -> None:
        self._primary = primary
        self._returns = returns  # what `async with ... as x` gives: the pool's facade
        self._proxy: Any = None
        self._token: Token[Scope | None] | None = None
        self.scope: Scope | None = None

    async def _pin(self) -> Scope:
        """The scope in force, else a new one on a pooled connection (released by `_unpin`)."""
        scope = self._primary.scopes.current.get()
        if scope is not None:
            return scope
        connection, self._proxy = await self._primary.acquire(self._name)
        scope = Scope(connection, self.kind)
        self._token = self._primary.scopes.current.set(scope)
        return scope

    async def _unpin(self, scope: Scope) -> None:
        if self._token is None:
            return
        scope.ended = True
        self._primary.scopes.current.reset(self._token)
        self._token = None
        try:
            if self.kind == "session":  # it may have committed writes: read-your-writes on replicas
                with contextlib.suppress(PgstashError):
                    await self._primary.committed(scope.connection)
        finally:
            await self._primary.release(self._proxy, self._name)


class Transaction(_Block[_T]):
    """`async with postgres.transaction():` every pgstash call inside the block, on any adapter of
    the pool, runs on one connection and commits or rolls back with it; `rollback=True` always
    rolls back (settings that must not outlive the block). A nested block is a savepoint. When
    the block fails it is rolled back if the connection still lives; either way the block's own
    error is raised."""

    kind = "transaction"
    _name = "begin"

    def __init__(self, primary: Primary, returns: _T, *, rollback: bool = False) -> None:
        super().__init__(primary, returns)
        self._rollback = rollback
        self._nested = False

    async def __aenter__(self) -> _T:
        scope = self.scope = await self._pin()
        self._nested = self._token is None and scope.connection.is_in_transaction()
        try:
            await self._primary.scopes.run(scope, _SAVEPOINT if self._nested else _BEGIN)
        except BaseException:
            await self._unpin(scope)
            raise
        return self._returns

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        scope, nested, scopes = self.scope, self._nested, self._primary.scopes
        assert scope is not None
        try:
            if error is not None:
                await scope.quiet()  # another task's statement (misuse) ends first: never terminate
                if not scope.connection.is_closed():
                    with contextlib.suppress(PgstashError):
                        await scopes.run(scope, _UNDO if nested else _ROLLBACK)
            elif self._rollback:
                await scopes.run(scope, _UNDO if nested else _ROLLBACK)
            elif nested:
                await scopes.run(scope, _RELEASE)
            else:
                await scopes.run(scope, _COMMIT)
                await self._primary.committed(scope.connection)
        finally:
            await self._unpin(scope)


class Session(_Block[_T]):
    """`async with postgres.session():` pins one pooled connection to every call inside the
    block, without opening a transaction (for session state such as an advisory lock: the
    connection is reset in full on release). Inside a transaction or session it joins it."""

    async def __aenter__(self) -> _T:
        scope = self.scope = await self._pin()
        if self._token is not None:
            self._primary.scopes.sender.lifecycle.ran_callers_sql(scope.connection)
        return self._returns

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        assert self.scope is not None
        await self._unpin(self.scope)
