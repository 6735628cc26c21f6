"""Vector index benchmark: pgstash against raw asyncpg doing the same work, interleaved.

- ingest: `PostgresVectorIndex.index` of models (unstructure, validation, one binary COPY) against
  raw `copy_records_to_table` of the already-built rows, at every size of `scale.vectors` and
  `scale.scaling`, into a table without an ANN index (the COPY path itself, not HNSW inserts);
- search p50/p95: pgstash's search against raw asyncpg running the very statements pgstash sends
  (recorded, then replayed on a plain connection with the same codecs): exact top-10, HNSW top-10,
  HNSW top-10 with a GIN-served equality filter, and MMR re-ranking (raw fetches the same
  candidates without re-ranking, so the ratio is MMR's cost);
- HNSW recall@10 and queries per second against exact search, on clustered data (a Gaussian
  mixture with a fixed seed), for a few `ef_search` values.

Run alone: `.venv/bin/python -m bench.vectors --scale full` (embedded server in ./.pgstash unless
`--dsn` is given); `python -m bench` runs every store.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import attrs
import numpy as np
from numpy.typing import NDArray

import pgstash
from bench.common import Result, Scale, Stats, interleaved, main
from pgstash import AttributeRequirement, Postgres, PostgresConnectionPool, PostgresVectorIndex
from pgstash.connection.codecs import register_codecs
from pgstash.statements import Statement

STORE = "vectors"
TOPICS = 100  # an equality filter on one topic keeps 1% of the rows
CLUSTERS = 100
EXACT = "bench_vectors_exact"
HNSW = "bench_vectors_hnsw"
EF_SEARCH = (40, 100, 200, 400)


@attrs.frozen
class Chunk:
    identifier: str
    text: str
    topic: str
    rank: int


def mixture(count: int, dimension: int, seed: int) -> NDArray[np.float32]:
    """Unit vectors from a Gaussian mixture: CLUSTERS fixed centres (seed 0), each point its
    centre plus noise (cosine within a cluster about 0.8, across clusters about 0)."""
    centres = np.random.default_rng(0).standard_normal((CLUSTERS, dimension)).astype(np.float32)
    rng = np.random.default_rng(seed)
    points = centres[rng.integers(0, CLUSTERS, count)]
    points += 0.5 * rng.standard_normal((count, dimension), dtype=np.float32)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points


def chunks_of(count: int) -> list[Chunk]:
    return [Chunk(f"c{i}", f"chunk number {i}", f"topic-{i % TOPICS}", i) for i in range(count)]


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


async def reset(postgres: Postgres, table: str) -> None:
    await postgres.execute(f"TRUNCATE {table}")


async def ingest(
    postgres: Postgres, raw: asyncpg.Connection, index: PostgresVectorIndex, count: int, dimension: int
) -> Result:
    """pgstash `index` against raw COPY of the same rows, alternating, on an emptied table."""
    vectors = mixture(count, dimension, seed=1)
    chunks = chunks_of(count)
    rows = {chunk.identifier: vector for chunk, vector in zip(chunks, vectors, strict=True)}
    records = [(vector, attrs.asdict(chunk), {}) for chunk, vector in zip(chunks, vectors, strict=True)]

    async def ours() -> None:
        await index.index(Chunk, values=chunks, attribute=lambda chunk: rows[chunk.identifier], table=EXACT)

    async def plain() -> None:
        await raw.copy_records_to_table(EXACT, records=records, columns=["embedding", "payload", "meta"])

    rounds = max(2, min(5, 1_000_000 // count))
    raw_samples: list[float] = []
    our_samples: list[float] = []
    for round_ in range(rounds):
        pair = ((plain, raw_samples), (ours, our_samples))
        for call, samples in pair if round_ % 2 == 0 else reversed(pair):
            await reset(postgres, EXACT)
            samples.append(await timed(call))
    raw_stats, our_stats = Stats.of(raw_samples), Stats.of(our_samples)
    ours, plain_rate = count / our_stats.p50, count / raw_stats.p50
    note = f"{ours:,.0f} rows/s vs raw {plain_rate:,.0f} rows/s, dimension {dimension}"
    return Result(STORE, f"ingest {count:,} rows", raw_stats, our_stats, note)


@attrs.frozen
class Recorded:
    """The statements one pgstash call sent, replayable on a raw connection."""

    statements: list[tuple[str, list[Any]]]

    async def replay(self, raw: asyncpg.Connection) -> None:
        if len(self.statements) == 1:
            sql, args = self.statements[0]
            await raw.fetch(sql, *args)
            return
        transaction = raw.transaction()
        await transaction.start()
        try:
            for sql, args in self.statements:
                await raw.fetch(sql, *args)
        finally:
            await transaction.rollback()


async def record(postgres: Postgres, call: Callable[[], Awaitable[object]]) -> Recorded:
    seen: list[tuple[str, list[Any]]] = []
    run_statement = postgres.run_statement

    async def recording(statement: Statement) -> Any:
        if statement.name != "vectors_table_facts":  # cached between searches
            seen.append((statement.sql, list(statement.args)))
        return await run_statement(statement)

    postgres.run_statement = recording  # type: ignore[method-assign]
    try:
        await call()
    finally:
        del postgres.run_statement
    return Recorded(seen)


async def versus_raw(
    postgres: Postgres,
    raw: asyncpg.Connection,
    workload: str,
    call: Callable[[], Awaitable[object]],
    rounds: int,
    note: str = "",
) -> Result:
    recorded = await record(postgres, call)
    trips = len(recorded.statements) + (2 if len(recorded.statements) > 1 else 0)
    raw_stats, our_stats = await interleaved(lambda: recorded.replay(raw), call, rounds)
    return Result(STORE, workload, raw_stats, our_stats, f"{trips} round trip(s) each side. {note}".strip())


async def searches(
    postgres: Postgres, raw: asyncpg.Connection, index: PostgresVectorIndex, count: int, scale: Scale
) -> list[Result]:
    query = mixture(1, scale.dimension, seed=2)[0]
    exact_rounds = max(5, scale.rounds // 10)
    topic = AttributeRequirement.equal("topic", "topic-7")
    size = f"({count:,})"
    async with postgres.session():  # one pinned connection: no pool acquire and reset per call
        pinned = await versus_raw(
            postgres,
            raw,
            f"search HNSW top-10, pinned connection {size}",
            lambda: index.search(Chunk, query=query, limit=10, table=HNSW),
            scale.rounds,
            "pgstash inside postgres.session(), as raw uses one connection",
        )
    return [
        await versus_raw(
            postgres,
            raw,
            f"search exact top-10 {size}",
            lambda: index.search(Chunk, query=query, limit=10, table=EXACT),
            exact_rounds,
        ),
        await versus_raw(
            postgres,
            raw,
            f"search HNSW top-10 {size}",
            lambda: index.search(Chunk, query=query, limit=10, table=HNSW),
            scale.rounds,
        ),
        await versus_raw(
            postgres,
            raw,
            f"search HNSW top-10, GIN equality filter (1%) {size}",
            lambda: index.search(Chunk, query=query, limit=10, requirements=topic, table=HNSW),
            scale.rounds,
            "iterative scan settings in a rolled-back transaction",
        ),
        await versus_raw(
            postgres,
            raw,
            f"search HNSW top-10, MMR over 80 {size}",
            lambda: index.search(Chunk, query=query, limit=10, rerank=True, table=HNSW),
            scale.rounds,
            "raw fetches the same 80 candidates without re-ranking",
        ),
        pinned,
    ]


async def recall(index: PostgresVectorIndex, count: int, scale: Scale) -> list[Result]:
    """recall@10 of HNSW search against exact search, and both query rates, on held-out queries."""
    queries = mixture(20 if scale.name == "tiny" else 100, scale.dimension, seed=3)

    async def run_all(table: str, ef_search: int | None) -> tuple[list[set[str]], list[float]]:
        found: list[set[str]] = []
        samples: list[float] = []
        for query in queries:
            started = time.perf_counter()
            chunks = await index.search(Chunk, query=query, limit=10, table=table, ef_search=ef_search)
            samples.append(time.perf_counter() - started)
            found.append({chunk.identifier for chunk in chunks})
        return found, samples

    truth, exact_samples = await run_all(EXACT, None)
    exact_qps = len(queries) / sum(exact_samples)
    results = [
        Result(
            STORE,
            f"exact top-10 ({count:,})",
            None,
            Stats.of(exact_samples),
            f"{exact_qps:,.1f} queries/s, sequential",
        )
    ]
    for ef_search in EF_SEARCH:
        found, samples = await run_all(HNSW, ef_search)
        overlap = np.mean([len(got & want) / len(want) for got, want in zip(found, truth, strict=True)])
        qps = len(queries) / sum(samples)
        goal = "meets" if overlap >= 0.95 and qps >= 5 * exact_qps else "misses"
        results.append(
            Result(
                STORE,
                f"HNSW recall@10, ef_search={ef_search} ({count:,})",
                None,
                Stats.of(samples),
                f"recall@10 {overlap:.3f}, {qps:,.1f} queries/s = {qps / exact_qps:.1f}x exact "
                f"({goal} the goal recall >= 0.95 at >= 5x)",
            )
        )
    return results


async def build(postgres: Postgres, index: PostgresVectorIndex, count: int, scale: Scale) -> float:
    """Loads `count` clustered rows into the exact table and a copy with HNSW; returns build seconds."""
    await reset(postgres, EXACT)
    vectors = mixture(count, scale.dimension, seed=1)
    await index.index(
        Chunk, values=chunks_of(count), attribute=lambda chunk: vectors[chunk.rank], table=EXACT
    )
    await postgres.execute(f"DROP TABLE IF EXISTS {HNSW}")
    await index.create_table(Chunk, dimension=scale.dimension, index=None, table=HNSW)
    await postgres.execute(f"INSERT INTO {HNSW} SELECT * FROM {EXACT}")
    started = time.perf_counter()
    async with postgres.transaction():
        await postgres.execute("SET LOCAL maintenance_work_mem = '4GB'")
        await postgres.execute("SET LOCAL max_parallel_maintenance_workers = 1")
        await index.create_table(Chunk, dimension=scale.dimension, table=HNSW)
    seconds = time.perf_counter() - started
    await postgres.execute(f"VACUUM ANALYZE {EXACT}")
    await postgres.execute(f"VACUUM ANALYZE {HNSW}")
    return seconds


async def run(dsn: str, scale: Scale) -> list[Result]:
    results: list[Result] = []
    async with PostgresConnectionPool.of(dsn=dsn, max_size=4) as postgres:
        await pgstash.migrate(postgres)
        index = PostgresVectorIndex(postgres)
        raw = await asyncpg.connect(dsn)
        await register_codecs(raw)
        try:
            raw_trip, pooled_trip = await interleaved(
                lambda: raw.fetchval("SELECT 1"), lambda: postgres.fetch_value("SELECT 1"), scale.rounds
            )
            results.append(
                Result(
                    STORE,
                    "pool round trip: SELECT 1",
                    raw_trip,
                    pooled_trip,
                    "every pooled call also pays asyncpg's reset query when the connection goes back",
                )
            )
            await postgres.execute(f"DROP TABLE IF EXISTS {EXACT}")
            await index.create_table(Chunk, dimension=scale.dimension, index=None, table=EXACT)
            for count in sorted(set(scale.vectors) | set(scale.scaling)):
                results.append(await ingest(postgres, raw, index, count, scale.dimension))
            for count in scale.vectors:
                seconds = await build(postgres, index, count, scale)
                found = await searches(postgres, raw, index, count, scale)
                found[1] = attrs.evolve(found[1], note=f"{found[1].note} HNSW build {seconds:.1f} s.")
                results += found
                results += await recall(index, count, scale)
        finally:
            await raw.close()
            await postgres.execute(f"DROP TABLE IF EXISTS {EXACT}, {HNSW}")
    return results


if __name__ == "__main__":
    main({"vectors": run})
