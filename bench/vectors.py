"""Vector index benchmark: pgstash against raw asyncpg doing the same work, interleaved.

- ingest: `PostgresVectorIndex.index` of models (unstructure, validation, one binary COPY) against
  raw `copy_records_to_table` of the already-built rows, at every size of `scale.vectors` and
  `scale.scaling`, into a table without an ANN index (the COPY path itself, not HNSW inserts);
- search p50/p95: pgstash's search against raw asyncpg running the very statements pgstash sends
  (recorded, then replayed through asyncpg's pool with a no-op reset and on one pinned
  connection: `bench.common.versus_raw`): exact top-10, HNSW top-10 (goal within 1.1x), HNSW
  top-10 with an equality filter keeping 1% (goal within 1.1x) and 0.1% of the rows and with a
  range filter (`greater`) keeping about 1% and 0.1% (issue 17 item 7: selective filters), and
  MMR re-ranking (raw fetches the same candidates without re-ranking, so the ratio is MMR's cost);
- HNSW recall@10 and queries per second against exact search, on clustered data (a Gaussian
  mixture with a fixed seed), for a few `ef_search` values.

Run alone: `.venv/bin/python -m bench.vectors --scale full` (embedded server in ./.pgstash unless
`--dsn` is given); `python -m bench` runs every store.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import attrs
import numpy as np
from numpy.typing import NDArray

from bench.common import (
    Raw,
    Result,
    Scale,
    Stats,
    alternating,
    main,
    milliseconds,
    pgstash_and_raw,
    versus_raw,
)
from pgstash import AttributeRequirement, Postgres, PostgresVectorIndex
from pgstash.sql.statements import Statement

STORE = "vectors"
TOPICS = 100  # an equality filter on one topic keeps 1% of the rows
SHELVES = 1_000  # an equality filter on one shelf keeps 0.1%
POOL_SIZE = 4
GOAL = 1.1  # issue 13: HNSW top-10, plain and filtered, within 1.1x of raw asyncpg's pool
CLUSTERS = 100
EXACT = "bench_vectors_exact"
HNSW = "bench_vectors_hnsw"
EF_SEARCH = (40, 100, 200, 400)
SELECT_1 = Statement("bench_select_1", "fetch_value", "SELECT 1")


@attrs.frozen
class Chunk:
    identifier: str
    text: str
    topic: str
    rank: int
    shelf: str = ""


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
    return [
        Chunk(f"c{i}", f"chunk number {i}", f"topic-{i % TOPICS}", i, f"shelf-{i % SHELVES}")
        for i in range(count)
    ]


async def reset(postgres: Postgres, table: str) -> None:
    await postgres.execute(f"TRUNCATE {table}")


async def ingest(
    postgres: Postgres, raw: Raw, index: PostgresVectorIndex, count: int, dimension: int
) -> Result:
    """pgstash `index` against raw COPY of the same rows, alternating, on an emptied table."""
    vectors = mixture(count, dimension, seed=1)
    chunks = chunks_of(count)
    rows = {chunk.identifier: vector for chunk, vector in zip(chunks, vectors, strict=True)}
    records: list[tuple[object, ...]] = [
        (vector, attrs.asdict(chunk), {}) for chunk, vector in zip(chunks, vectors, strict=True)
    ]

    async def ours() -> None:
        await index.index(Chunk, values=chunks, attribute=lambda chunk: rows[chunk.identifier], table=EXACT)

    async def plain() -> None:
        await raw.pinned.copy_records_to_table(
            EXACT, records=records, columns=["embedding", "payload", "meta"]
        )

    rounds = max(2, min(5, 1_000_000 // count))
    raw_stats, our_stats = await alternating((plain, ours), rounds, before=lambda _: reset(postgres, EXACT))
    our_rate, plain_rate = count / our_stats.p50, count / raw_stats.p50
    note = f"{our_rate:,.0f} rows/s vs raw {plain_rate:,.0f} rows/s, dimension {dimension}"
    return Result(STORE, f"ingest {count:,} rows", raw_stats, our_stats, note)


def selective(count: int) -> list[tuple[str, AttributeRequirement, int]]:
    """(label, filter, how many rows it keeps) for the selective-filter rows (issue 17 item 7):
    equality on a topic (1%) and on a shelf (0.1%), `greater` on the rank keeping ~1% and ~0.1%."""
    found = []
    for share, fraction in (("1%", 0.01), ("0.1%", 0.001)):
        kept = max(1, round(count * fraction))
        found.append(
            (f"range filter greater ({share})", AttributeRequirement.greater("rank", count - kept - 1), kept)
        )
    return [
        (
            "equality filter (1%)",
            AttributeRequirement.equal("topic", "topic-7"),
            len(range(7, count, TOPICS)),
        ),
        (
            "equality filter (0.1%)",
            AttributeRequirement.equal("shelf", "shelf-7"),
            len(range(7, count, SHELVES)),
        ),
        *found,
    ]


async def searches(
    postgres: Postgres, raw: Raw, index: PostgresVectorIndex, count: int, scale: Scale
) -> list[Result]:
    query = mixture(1, scale.dimension, seed=2)[0]
    exact_rounds = max(5, scale.rounds // 10)
    size = f"({count:,})"

    def hnsw(
        requirements: AttributeRequirement | None = None, rerank: bool = False
    ) -> Callable[[], Awaitable[list[Chunk]]]:
        return lambda: index.search(
            Chunk, query=query, limit=10, requirements=requirements, rerank=rerank, table=HNSW
        )

    results = [
        await versus_raw(
            postgres,
            raw,
            STORE,
            f"search exact top-10 {size}",
            lambda: index.search(Chunk, query=query, limit=10, table=EXACT),
            exact_rounds,
        ),
        await versus_raw(
            postgres, raw, STORE, f"search HNSW top-10 {size}", hnsw(), scale.call_rounds, goal=GOAL
        ),
    ]
    for label, requirement, kept in selective(count):

        def exact(requirement: AttributeRequirement = requirement) -> Awaitable[list[Chunk]]:
            return index.search(Chunk, query=query, limit=10, requirements=requirement, table=EXACT)

        found = {chunk.identifier for chunk in await hnsw(requirement)()}
        truth = {chunk.identifier for chunk in await exact()}
        (exact_stats,) = await alternating((exact,), exact_rounds)
        seen = f"{len(found & truth) / max(1, len(truth)):.2f}"
        results.append(
            await versus_raw(
                postgres,
                raw,
                STORE,
                f"search HNSW top-10, {label} {size}",
                hnsw(requirement),
                scale.rounds,
                f"{kept:,} of {count:,} rows match, {len(found)} returned, recall@10 {seen} of exact; "
                f"the exact path (same filter, no ANN index) {milliseconds(exact_stats.p50)} ms p50",
                goal=GOAL if label == "equality filter (1%)" else None,
            )
        )
    results.append(
        await versus_raw(
            postgres,
            raw,
            STORE,
            f"search HNSW top-10, MMR over 80 {size}",
            hnsw(rerank=True),
            scale.rounds,
            "raw fetches the same 80 candidates without re-ranking",
        )
    )
    return results


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
    async with pgstash_and_raw(dsn, pool_size=POOL_SIZE) as (postgres, raw):
        index = PostgresVectorIndex(postgres)
        try:
            results.append(
                await versus_raw(
                    postgres,
                    raw,
                    STORE,
                    "statement round trip: SELECT 1",
                    lambda: postgres.run_statement(SELECT_1),
                    scale.rounds,
                    "pgstash's statement path alone (Postgres.run_statement), no store",
                )
            )
            await postgres.execute(f"DROP TABLE IF EXISTS {EXACT}")
            await index.create_table(Chunk, dimension=scale.dimension, index=None, table=EXACT)
            for count in sorted(set(scale.vectors) | set(scale.scaling)):
                results.append(await ingest(postgres, raw, index, count, scale.dimension))
            for count in scale.vectors:
                seconds = await build(postgres, index, count, scale)
                found = await searches(postgres, raw, index, count, scale)
                found[1] = attrs.evolve(found[1], note=f"{found[1].note}; HNSW build {seconds:.1f} s")
                results += found
                results += await recall(index, count, scale)
        finally:
            await postgres.execute(f"DROP TABLE IF EXISTS {EXACT}, {HNSW}")
    return results


if __name__ == "__main__":
    main({"vectors": run})
