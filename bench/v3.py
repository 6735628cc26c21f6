"""Vector index v3 (issue 26): indexed payload fields and documents as chunk sets.

- range filter on an indexed field: HNSW top-10 with `greater("rank", ...)` keeping ~1% and ~0.1%
  of the rows of a table made with `indexed={"rank": int}`, against the exact floor: raw asyncpg
  (its pool, no-op reset) running hand-written SQL on the same indexed column
  (`WHERE field_rank > $2 ORDER BY embedding <=> $1 LIMIT 10`, which the B-tree serves and sorts
  exactly); goal within 1.2x (at 0.1%: or +0.2 ms), recall@10 against that floor 1.00;
- documents: `index(..., document=...)` replacing every document's chunk set (12 chunks a
  document) against `index(..., key=...)` replacing the same rows by key; goal within 1.25x.

Run alone: `.venv/bin/python -m bench --only v3 --scale full` (200,000 x 384).
"""

from __future__ import annotations

import attrs
import numpy as np
from numpy.typing import NDArray

from bench.common import Raw, Result, Scale, alternating, pgstash_and_raw
from bench.vectors import mixture
from pgstash import AttributeRequirement, Postgres, PostgresVectorIndex

STORE = "v3"  # the runner's name in bench/__main__.py
TABLE = "bench_vectors_v3"
POOL_SIZE = 4
CHUNKS_PER_DOCUMENT = 12
GOAL = 1.2


@attrs.frozen
class Chunk:
    identifier: str
    document: str
    rank: int


def chunks(count: int) -> list[Chunk]:
    return [Chunk(f"c{i}", f"d{i // CHUNKS_PER_DOCUMENT}", i) for i in range(count)]


FLOOR = (
    "SELECT payload, 1 - (embedding <=> $1) AS score FROM {table} "
    "WHERE field_rank > $2 ORDER BY embedding <=> $1 LIMIT 10"
)


async def range_filters(postgres: Postgres, raw: Raw, count: int, scale: Scale) -> list[Result]:
    index = PostgresVectorIndex(postgres)
    data = mixture(count, scale.dimension, seed=1)
    queries = mixture(20, scale.dimension, seed=3)
    await postgres.execute(f"DROP TABLE IF EXISTS {TABLE}")
    await index.create_table(Chunk, dimension=scale.dimension, table=TABLE, index=None, indexed={"rank": int})
    await index.index(Chunk, values=chunks(count), attribute=lambda chunk: data[chunk.rank], table=TABLE)
    await index.build_index(Chunk, index="hnsw", table=TABLE)
    await postgres.execute(f"VACUUM ANALYZE {TABLE}")
    results = [
        await range_row(index, raw, queries, share, count, kept, scale.rounds)
        for share, kept in (("1%", max(10, count // 100)), ("0.1%", max(10, count // 1000)))
    ]
    await postgres.execute(f"DROP TABLE IF EXISTS {TABLE}")
    return results


async def range_row(
    index: PostgresVectorIndex,
    raw: Raw,
    queries: NDArray[np.float32],
    share: str,
    count: int,
    kept: int,
    rounds: int,
) -> Result:
    """One range filter keeping `kept` rows: pgstash against the floor, interleaved, and recall."""
    bound = count - kept - 1
    requirement = AttributeRequirement.greater("rank", bound)
    sql = FLOOR.format(table=TABLE)

    async def ours() -> None:
        await index.search(Chunk, query=queries[0], limit=10, requirements=requirement, table=TABLE)

    async def floor() -> None:
        async with raw.pool.acquire() as connection:
            await connection.fetch(sql, queries[0], bound)

    hits = wanted = 0
    for query in queries:
        found = await index.search(Chunk, query=query, limit=10, requirements=requirement, table=TABLE)
        async with raw.pool.acquire() as connection:
            exact = await connection.fetch(sql, query, bound)
        hits += len({chunk.rank for chunk in found} & {row["payload"]["rank"] for row in exact})
        wanted += len(exact)
    recall = hits / max(1, wanted)
    await alternating((floor, ours), 3)
    floor_stats, our_stats = await alternating((floor, ours), rounds)
    ratio = our_stats.p50 / floor_stats.p50
    slack = 0.0002 if share == "0.1%" else 0.0  # issue 26: at 0.1%, within 1.2x or +0.2 ms
    met = ratio <= GOAL or our_stats.p50 - floor_stats.p50 <= slack
    extra = f" or +{slack * 1000:.1f} ms" if slack else ""
    note = (
        f"{ratio:.2f}x the raw SQL on the same indexed column; {'meets' if met else 'misses'} the goal "
        f"<= {GOAL:g}x{extra}; recall@10 {recall:.2f} against it"
    )
    return Result(
        STORE, f"HNSW top-10, range on an indexed field ({share}, {count:,})", floor_stats, our_stats, note
    )


async def documents(postgres: Postgres, count: int, scale: Scale) -> list[Result]:
    index = PostgresVectorIndex(postgres)
    data = mixture(count, scale.dimension, seed=1)
    values = chunks(count)
    await postgres.execute(f"DROP TABLE IF EXISTS {TABLE}")
    await index.create_table(Chunk, dimension=scale.dimension, table=TABLE, index=None, documents=True)

    async def keyed() -> None:
        await index.index(
            Chunk, values=values, attribute=lambda chunk: data[chunk.rank], table=TABLE, key="identifier"
        )

    async def by_document() -> None:
        await index.index(
            Chunk, values=values, attribute=lambda chunk: data[chunk.rank], table=TABLE, document="document"
        )

    async def refill(which: int) -> None:  # each replaces the rows it wrote itself (untimed)
        await postgres.execute(f"TRUNCATE {TABLE}")
        await (keyed if which == 0 else by_document)()

    rounds = max(2, min(5, 200_000 // count))
    keyed_stats, document_stats = await alternating((keyed, by_document), rounds, before=refill)
    ratio = document_stats.p50 / keyed_stats.p50
    note = (
        f"{ratio:.2f}x replacing the same rows by key ({keyed_stats.p50 * 1000:,.0f} ms p50); "
        f"{'meets' if ratio <= 1.25 else 'misses'} the goal <= 1.25x; {CHUNKS_PER_DOCUMENT} chunks a "
        f"document, dimension {scale.dimension}"
    )
    await postgres.execute(f"DROP TABLE IF EXISTS {TABLE}")
    return [Result(STORE, f"ingest by document, replacing all {count:,}", None, document_stats, note)]


async def run(dsn: str, scale: Scale) -> list[Result]:
    count = scale.vectors[-1]
    async with pgstash_and_raw(dsn, pool_size=POOL_SIZE) as (postgres, raw):
        results = await range_filters(postgres, raw, count, scale)
        results += await documents(postgres, count, scale)
    return results
