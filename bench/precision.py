"""float32 against float16 vector tables (issue 13), side by side on the same clustered data.

For each precision: `index` into a new `index=None` table (the COPY path, rows/s), then
`build_index` (HNSW, built from the data, concurrently), table and index sizes, and the rate and
recall@10 of HNSW top-10 searches at the default `ef_search` against numpy's exact float32 answer.
No raw-asyncpg side: this compares two storage choices, not pgstash's overhead.

Run alone: `.venv/bin/python -m bench --only precision --scale full` (200,000 x 384).
"""

from __future__ import annotations

import time

import attrs
import numpy as np
from numpy.typing import NDArray

import pgstash
from bench.common import Result, Scale, Stats
from bench.vectors import mixture
from pgstash import Postgres, PostgresConnectionPool, PostgresVectorIndex

STORE = "precision"  # the runner's name in bench/__main__.py
TABLE = "bench_vectors_precision"


@attrs.frozen
class Passage:
    identifier: str
    rank: int


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:,.1f} MiB"


async def compare(
    postgres: Postgres,
    index: PostgresVectorIndex,
    data: NDArray[np.float32],
    queries: NDArray[np.float32],
    precision: str,
) -> Result:
    count, dimension = data.shape
    values = [Passage(f"p{i}", i) for i in range(count)]
    await postgres.execute(f"DROP TABLE IF EXISTS {TABLE}")
    await index.create_table(Passage, dimension=dimension, index=None, table=TABLE, precision=precision)
    started = time.perf_counter()
    await index.index(Passage, values=values, attribute=lambda value: data[value.rank], table=TABLE)
    ingest = time.perf_counter() - started
    build = await index.build_index(Passage, index="hnsw", table=TABLE)
    await postgres.execute(f"VACUUM ANALYZE {TABLE}")
    sizes = await postgres.fetch_one(
        "SELECT pg_table_size(c.oid) AS heap, "
        "(SELECT sum(pg_relation_size(i.indexrelid)) FROM pg_index i JOIN pg_class x "
        "ON x.oid = i.indexrelid JOIN pg_am a ON a.oid = x.relam "
        "WHERE i.indrelid = c.oid AND a.amname = 'hnsw') AS hnsw "
        "FROM pg_class c WHERE c.oid = $1::regclass",
        TABLE,
    )
    truth = np.argsort(-(queries @ data.T), axis=1)[:, :10]
    samples: list[float] = []
    hits = 0
    for query, want in zip(queries, truth, strict=True):
        started = time.perf_counter()
        found = await index.search(Passage, query=query, limit=10, table=TABLE)
        samples.append(time.perf_counter() - started)
        hits += len({passage.rank for passage in found} & set(want.tolist()))
    recall = hits / (10 * len(queries))
    note = (
        f"table {_mib(sizes['heap'])}, HNSW index {_mib(int(sizes['hnsw'] or 0))}, ingest "
        f"{count / ingest:,.0f} rows/s, HNSW build {build:.1f} s, {len(queries) / sum(samples):,.1f} "
        f"queries/s, recall@10 {recall:.3f} at ef_search 40"
    )
    kind = "halfvec" if precision == "float16" else "vector"
    return Result(STORE, f"{precision} ({kind}) HNSW top-10 ({count:,})", None, Stats.of(samples), note)


async def run(dsn: str, scale: Scale) -> list[Result]:
    results: list[Result] = []
    count = 500 if scale.name == "tiny" else 200_000
    data = mixture(count, scale.dimension, seed=1)
    queries = mixture(20 if scale.name == "tiny" else 100, scale.dimension, seed=3)
    async with PostgresConnectionPool.of(dsn=dsn, max_size=4) as postgres:
        await pgstash.migrate(postgres)
        index = PostgresVectorIndex(postgres)
        try:
            for precision in ("float32", "float16"):
                results.append(await compare(postgres, index, data, queries, precision))
        finally:
            await postgres.execute(f"DROP TABLE IF EXISTS {TABLE}")
    return results
