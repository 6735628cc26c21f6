"""Through PgBouncer (transaction mode, issue 24) against direct: what the pooler costs a call.

    .venv/bin/python -m bench --only pooler [--scale full|tiny]

Debian's PgBouncer (`apt-get install -y pgbouncer`) is started in front of the bench server
(`tests/support/pooler.py`). Each row times, interleaved, the same pgstash call three ways: through
PgBouncer with `pooler="pgbouncer-transaction"` (statement cache off: PgBouncer 1.18 keeps no
prepared statement across transactions), directly with the statement cache off, and directly
with it on (the default). Columns: "raw" is direct with the cache on, "pinned" direct with it
off, "pgstash" through PgBouncer; the ratios are therefore the pooler's cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

import attrs
import numpy as np

import pgstash
from bench.common import Call, Result, Scale, Stats, alternating
from pgstash import (
    AttributeRequirement,
    Postgres,
    PostgresConfigurationRepository,
    PostgresConnectionPool,
    PostgresVectorIndex,
)

STORE = "pooler"
POOL_SIZE = 10
CONCURRENT = 50  # loads at once: more than the pool's connections, as the probe
ROWS = {"tiny": 2_000, "full": 20_000}


@attrs.frozen
class BenchChunk:
    """A vector table's row: a key and a filterable topic."""

    key: str
    topic: str


@contextlib.asynccontextmanager
async def three_pools(dsn: str, bouncer_dsn: str) -> AsyncIterator[tuple[Postgres, Postgres, Postgres]]:
    """Direct with the statement cache on, direct with it off, through PgBouncer."""
    async with (
        PostgresConnectionPool.of(dsn=dsn, max_size=POOL_SIZE) as cached,
        PostgresConnectionPool.of(dsn=dsn, max_size=POOL_SIZE, statement_cache_size=0) as uncached,
        PostgresConnectionPool.of(
            dsn=bouncer_dsn, max_size=POOL_SIZE, pooler="pgbouncer-transaction", listen_dsn=dsn
        ) as pooled,
    ):
        yield cached, uncached, pooled


def _row(workload: str, stats: list[Stats], note: str) -> Result:
    cached, uncached, pooled = stats
    return Result(STORE, workload, cached, pooled, note, uncached)


async def run(dsn: str, scale: Scale) -> list[Result]:
    from tests.support.pooler import PgBouncer, Unavailable, database_of

    try:
        bouncer = PgBouncer.start(dsn, "transaction", pool_size=POOL_SIZE)
    except Unavailable as error:
        print(f"pooler rows skipped: {error}", file=sys.stderr)
        return []
    try:
        bouncer_dsn = bouncer.dsn(database_of(dsn))
        async with three_pools(dsn, bouncer_dsn) as pools:
            await pgstash.migrate(pools[0])
            setup = PostgresConfigurationRepository(pools[0], cache_limit=0)
            await setup.define({"model": "small", "temperature": 0.2}, "bench-pooler")
            loads = [_load(pool) for pool in pools]
            results = [
                _row(
                    "uncached load: through PgBouncer vs direct",
                    await _timed(loads, scale.rounds),
                    "raw column: direct, statement cache on; pinned column: direct, cache off",
                )
            ]

            def batch(load: Call) -> Call:
                async def concurrently() -> None:
                    await asyncio.gather(*(load() for _ in range(CONCURRENT)))

                return concurrently

            batches = await _timed([batch(load) for load in loads], max(3, scale.rounds // 10))
            names = ("direct, cache on", "direct, cache off", "PgBouncer")
            rates = ", ".join(
                f"{name} {CONCURRENT / stats.p50:,.0f} calls/s"
                for name, stats in zip(names, batches, strict=True)
            )
            results.append(_row(f"{CONCURRENT} concurrent uncached loads (one batch)", batches, rates))
            index = PostgresVectorIndex(pools[0])
            await index.create_table(BenchChunk, dimension=scale.dimension, index=None)
            count = ROWS[scale.name]
            rows = np.random.default_rng(0).standard_normal((count, scale.dimension)).astype(np.float32)
            chunks = [BenchChunk(f"c{i}", "a" if i % 10 == 0 else "b") for i in range(count)]
            vectors = dict(zip((chunk.key for chunk in chunks), rows, strict=True))
            await index.index(BenchChunk, values=chunks, attribute=lambda chunk: vectors[chunk.key])
            await index.create_table(BenchChunk, dimension=scale.dimension)  # HNSW from the rows
            rare = AttributeRequirement.equal("topic", "a")
            searches = [_search(pool, rows[1], rare) for pool in pools]
            results.append(
                _row(
                    f"filtered HNSW search, 10 of {count:,} (1 row in 10 matches)",
                    await _timed(searches, scale.rounds),
                    "through PgBouncer the iterative scan is set inside the statement",
                )
            )
            return results
    finally:
        bouncer.stop()


def _load(postgres: Postgres) -> Call:
    repository = PostgresConfigurationRepository(postgres, cache_limit=0)
    return lambda: repository.load_raw("bench-pooler")


def _search(postgres: Postgres, query: np.ndarray, requirements: AttributeRequirement) -> Call:
    index = PostgresVectorIndex(postgres)
    return lambda: index.search(BenchChunk, query=query, limit=10, requirements=requirements)


async def _timed(calls: list[Call], rounds: int) -> list[Stats]:
    await alternating(calls, 3)
    return list(await alternating(calls, rounds))
