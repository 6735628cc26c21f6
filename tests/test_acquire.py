"""Acquiring a pooled connection: the timer of `acquire_timeout` is set only when the acquire has
to wait (Lifecycle.acquire); a waiting acquire still gets the connection released to it, and
one that waits too long still says the pool is exhausted, leaving the pool usable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from pgstash import DatabaseError, Postgres, PostgresConnectionPool
from pgstash.sql import names


@asynccontextmanager
async def holding_the_only_connection(postgres: Postgres) -> AsyncIterator[None]:
    """The pool's one connection held in a transaction for the block; released (and the
    transaction ended) when the block ends."""
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with postgres.transaction():
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await holding.wait()
    try:
        yield
    finally:
        release.set()
        await holder


async def test_a_waiting_acquire_gets_the_connection_released_to_it(database_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=database_dsn, max_size=1, acquire_timeout=30) as postgres:
        async with holding_the_only_connection(postgres):
            waiting = asyncio.create_task(postgres.run(names.migrations_tracking_exists))
            await asyncio.sleep(0)
            assert not waiting.done()  # the only connection is held: this acquire waits
        assert await waiting is True


async def test_an_acquire_that_waits_too_long_is_refused_and_the_pool_still_serves(database_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=database_dsn, max_size=1, acquire_timeout=0.2) as postgres:
        async with holding_the_only_connection(postgres):
            with pytest.raises(DatabaseError, match="pool is exhausted"):
                await postgres.run(names.migrations_tracking_exists)
        assert await postgres.run(names.migrations_tracking_exists) is True


async def test_a_cancelled_waiting_acquire_leaves_the_pool_usable(database_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=database_dsn, max_size=1, acquire_timeout=30) as postgres:
        async with holding_the_only_connection(postgres):
            waiting = asyncio.create_task(postgres.run(names.migrations_tracking_exists))
            await asyncio.sleep(0)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        assert await postgres.run(names.migrations_tracking_exists) is True
