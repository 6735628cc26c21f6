"""The pool as a haiway disposable: `PostgresConnectionPool.of(dsn=None, **options)` opens a
pgstash pool when haiway enters it (in a task of its own: nothing here lives in a ContextVar) and
puts `PostgresState` into the scope; every adapter finds the pool there at call time."""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Any, Self

from haiway import State, ctx

from pgstash.connection import Postgres
from pgstash.connection import PostgresConnectionPool as _Pool
from pgstash.errors import ConfigurationError

__all__ = ["PostgresConnectionPool", "PostgresState", "current_postgres", "repository_on_scope"]


class PostgresState(State):
    """The scope's pgstash pool: `ctx.state(PostgresState).postgres` is a `pgstash.Postgres`, so
    `async with ctx.state(PostgresState).postgres.transaction():` spans draive calls."""

    postgres: Any


class PostgresConnectionPool:
    """A haiway disposable: `disposables=(PostgresConnectionPool.of(dsn=...),)`. `dsn=None` reads
    `PGSTASH_DSN`; `options` are `pgstash.PostgresConnectionPool.of`'s (sizes, timeouts,
    replicas)."""

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool

    @classmethod
    def of(cls, dsn: str | None = None, **options: Any) -> Self:
        return cls(_Pool.of(dsn, **options))

    async def __aenter__(self) -> PostgresState:
        return PostgresState(postgres=await self._pool.open())

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._pool.close()


def current_postgres() -> Postgres:
    """The pool of the scope (`ConfigurationError` naming the fix outside one)."""
    state = ctx.state(PostgresState, default=PostgresState(postgres=None))
    postgres = state.postgres
    if not isinstance(postgres, Postgres):
        raise ConfigurationError(
            "no pgstash pool in this haiway scope: enter it with "
            "ctx.scope(..., disposables=(pgstash.draive.PostgresConnectionPool.of(dsn=...),))"
        )
    return postgres


def repository_on_scope(factory: Any) -> Any:
    """The store `factory(postgres)` makes, one per pool of the scope (its cache lives there)."""
    key = f"pgstash.draive/{uuid.uuid4()}"
    return lambda: current_postgres().shared(key, factory)
