"""The current pool (`resolve`), and one transaction or session scope: the connection every call
inside it runs on, whether the scope has ended, and the statement running on it (a scope's
connection serves one task at a time)."""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import asyncpg
import attrs

from pgstash.errors import ConfigurationError, DatabaseError

if TYPE_CHECKING:
    from pgstash.connection.executor import Postgres

__all__ = ["Scope", "current_postgres", "resolve"]

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
