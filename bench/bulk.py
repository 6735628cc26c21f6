"""Bulk ingest into indexed tables (issue 13): `index` into a new `index="hnsw"` table (rows in and
index ready) against raw asyncpg doing COPY then CREATE INDEX with the same build settings, in
alternating rounds; the per-row graph insert rate of the old flow; recall@10 of the index built.

Run alone: `.venv/bin/python -m bench --only bulk --scale full` (20,000 and 200,000 x 384).
"""

from __future__ import annotations

import time

import asyncpg
import attrs
import numpy as np
from numpy.typing import NDArray

import pgstash
from bench.common import Result, Scale, Stats
from bench.vectors import mixture
from pgstash import Postgres, PostgresConnectionPool, PostgresVectorIndex
from pgstash.connection.codecs import register_codecs
from pgstash.vectors.write import builds

STORE = "bulk"  # the runner's name in bench/__main__.py
TABLE = "bench_vectors_bulk"
PER_ROW_BATCH = 1_000  # rows inserted into the built index to measure the old per-row flow


@attrs.frozen
class Passage:
    identifier: str
    topic: str
    rank: int


def passages(count: int, first: int = 0) -> list[Passage]:
    return [Passage(f"p{i}", f"topic-{i % 100}", i) for i in range(first, first + count)]


async def _recall(
    index: PostgresVectorIndex, data: NDArray[np.float32], queries: NDArray[np.float32]
) -> float:
    truth = np.argsort(-(queries @ data.T), axis=1)[:, :10]
    hits = 0
    for query, want in zip(queries, truth, strict=True):
        found = await index.search(Passage, query=query, limit=10, table=TABLE)
        hits += len({passage.rank for passage in found} & set(want.tolist()))
    return hits / (10 * len(queries))


async def indexed_ingest(
    postgres: Postgres,
    raw: asyncpg.Connection,
    index: PostgresVectorIndex,
    data: NDArray[np.float32],
    queries: NDArray[np.float32],
    rounds: int,
) -> Result:
    count, dimension = data.shape
    values = passages(count)
    records = [(vector, attrs.asdict(value), {}) for value, vector in zip(values, data, strict=True)]
    settings = await builds.build_settings(postgres, count, dimension)
    ours: list[float] = []
    floor: list[float] = []
    recalls: list[float] = []

    async def fresh(hnsw: bool) -> None:
        await postgres.execute(f"DROP TABLE IF EXISTS {TABLE}")
        await index.create_table(Passage, dimension=dimension, index="hnsw", table=TABLE)
        if not hnsw:  # the same table (key, GIN, B-tree), its HNSW index made after the COPY
            await postgres.execute(f"DROP INDEX {TABLE}_embedding_idx")

    async def pgstash_side() -> None:
        await fresh(True)
        started = time.perf_counter()
        await index.index(Passage, values=values, attribute=lambda value: data[value.rank], table=TABLE)
        ours.append(time.perf_counter() - started)
        if not recalls:  # untimed: the index pgstash built, on held-out queries
            recalls.append(await _recall(index, data, queries))

    async def raw_side() -> None:
        await fresh(False)
        started = time.perf_counter()
        async with raw.transaction():
            await raw.copy_records_to_table(TABLE, records=records, columns=["embedding", "payload", "meta"])
            await raw.execute(f"SET LOCAL maintenance_work_mem = '{settings.memory_kb}kB'")
            await raw.execute(f"SET LOCAL max_parallel_maintenance_workers = {settings.workers}")
            await raw.execute(
                f"CREATE INDEX {TABLE}_embedding_idx ON {TABLE} USING hnsw (embedding vector_cosine_ops)"
            )
        floor.append(time.perf_counter() - started)

    for round_ in range(rounds):
        for side in (pgstash_side, raw_side) if round_ % 2 else (raw_side, pgstash_side):
            await side()
    batch = min(PER_ROW_BATCH, max(1, count // 20))  # small next to the table: row by row
    extra = mixture(batch, dimension, seed=4)
    started = time.perf_counter()
    await index.index(
        Passage, values=passages(batch, count), attribute=lambda value: extra[value.rank - count], table=TABLE
    )
    per_row = batch / (time.perf_counter() - started)
    raw_stats, our_stats = Stats.of(floor), Stats.of(ours)
    rate = count / our_stats.p50
    ratio = our_stats.p50 / raw_stats.p50
    note = (
        f"{rate:,.0f} rows/s with the HNSW build ({settings.workers} workers, maintenance_work_mem "
        f"{settings.memory_kb // 1024} MB) vs the old per-row graph insert {per_row:,.0f} rows/s = "
        f"{rate / per_row:.1f}x (goal >= 10x); {ratio:.2f}x raw COPY + CREATE INDEX (goal <= 1.25x); "
        f"recall@10 {recalls[0]:.3f} at ef_search 40 (goal >= 0.95)"
    )
    return Result(
        STORE, f"index into a new HNSW table, ingest + index ready ({count:,})", raw_stats, our_stats, note
    )


async def run(dsn: str, scale: Scale) -> list[Result]:
    results: list[Result] = []
    sizes = (500,) if scale.name == "tiny" else (20_000, 200_000)
    async with PostgresConnectionPool.of(dsn=dsn, max_size=4) as postgres:
        await pgstash.migrate(postgres)
        index = PostgresVectorIndex(postgres)
        raw = await asyncpg.connect(dsn)
        await register_codecs(raw)
        try:
            for count in sizes:
                data = mixture(count, scale.dimension, seed=1)
                queries = mixture(20 if scale.name == "tiny" else 100, scale.dimension, seed=3)
                rounds = 2 if count > 50_000 else 3
                results.append(await indexed_ingest(postgres, raw, index, data, queries, rounds))
        finally:
            await raw.close()
            await postgres.execute(f"DROP TABLE IF EXISTS {TABLE}")
    return results
