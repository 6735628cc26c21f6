"""float32 HNSW, float16 HNSW and binary quantization with exact re-ranking (issue 26 item 4),
side by side on the same generated data (the bench's Gaussian mixture, `bench.vectors.mixture`).

For each: `index` into a new `index=None` table (COPY), then the index built from the data
(`build_index` for HNSW on the floats; `create_table(..., quantize="binary")` for the HNSW over
`binary_quantize(embedding)::bit(d)`, CONCURRENTLY with the server's maintenance_work_mem), table
and index sizes, build time, and for top-10 searches recall@10 against numpy's exact float32
answer and p50 latency; binary at several `candidates` (the Hamming shortlist re-ranked by cosine).
No raw-asyncpg side: this compares storage choices, not pgstash's overhead.

Run alone: `.venv/bin/python -m bench --only quantize --scale million` (1,000,000 x 384; about
1.5 GiB of vectors in memory, and an hour or more of index builds on 2 cores); `--scale full`
runs it at 200,000 rows.
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

STORE = "quantize"
TABLE = "bench_vectors_quantize"
CANDIDATES = (100, 200, 400, 1_000)
ROWS = {"tiny": 2_000, "full": 200_000, "million": 1_000_000}


@attrs.frozen
class Passage:
    identifier: str
    rank: int


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:,.1f} MiB"


async def _sizes(postgres: Postgres) -> tuple[int, int]:
    row = await postgres.fetch_one(
        "SELECT pg_table_size(c.oid) AS heap, "
        "(SELECT sum(pg_relation_size(i.indexrelid)) FROM pg_index i JOIN pg_class x "
        "ON x.oid = i.indexrelid JOIN pg_am a ON a.oid = x.relam "
        "WHERE i.indrelid = c.oid AND a.amname = 'hnsw') AS hnsw "
        "FROM pg_class c WHERE c.oid = $1::regclass",
        TABLE,
    )
    assert row is not None
    return int(row["heap"]), int(row["hnsw"] or 0)


async def _searches(
    index: PostgresVectorIndex, queries: NDArray[np.float32], truth: NDArray[np.int64], candidates: int | None
) -> tuple[Stats, float]:
    samples: list[float] = []
    hits = 0
    for query, want in zip(queries, truth, strict=True):
        started = time.perf_counter()
        found = await index.search(Passage, query=query, limit=10, table=TABLE, candidates=candidates)
        samples.append(time.perf_counter() - started)
        hits += len({passage.rank for passage in found} & set(want.tolist()))
    return Stats.of(samples), hits / (10 * len(queries))


async def variant(
    postgres: Postgres,
    index: PostgresVectorIndex,
    data: NDArray[np.float32],
    queries: NDArray[np.float32],
    truth: NDArray[np.int64],
    name: str,
) -> list[Result]:
    count, dimension = data.shape
    precision = "float16" if name == "float16" else "float32"
    await postgres.execute(f"DROP TABLE IF EXISTS {TABLE}")
    await index.create_table(Passage, dimension=dimension, index=None, table=TABLE, precision=precision)
    values = [Passage(f"p{i}", i) for i in range(count)]
    for start in range(0, count, 100_000):  # batches: the COPY stream is built a batch at a time
        batch = values[start : start + 100_000]
        await index.index(Passage, values=batch, attribute=lambda value: data[value.rank], table=TABLE)
    started = time.perf_counter()
    if name == "binary":
        await index.create_table(
            Passage, dimension=dimension, table=TABLE, precision=precision, quantize="binary"
        )
    else:
        await index.build_index(Passage, index="hnsw", table=TABLE)
    build = time.perf_counter() - started
    await postgres.execute(f"VACUUM ANALYZE {TABLE}")
    heap, hnsw = await _sizes(postgres)
    sizes = f"table {_mib(heap)}, HNSW index {_mib(hnsw)}, build {build:,.1f} s"
    if name != "binary":
        stats, recall = await _searches(index, queries, truth, None)
        label = f"{name} HNSW top-10 ({count:,} x {dimension})"
        return [Result(STORE, label, None, stats, f"{sizes}; recall@10 {recall:.3f} at ef_search 40")]
    results = []
    for candidates in CANDIDATES:
        stats, recall = await _searches(index, queries, truth, candidates)
        label = f"binary + re-rank top-10, {candidates} candidates ({count:,} x {dimension})"
        results.append(Result(STORE, label, None, stats, f"{sizes}; recall@10 {recall:.3f}"))
    return results


async def run(dsn: str, scale: Scale) -> list[Result]:
    count = ROWS.get(scale.name, 200_000)
    data = mixture(count, scale.dimension, seed=1)
    queries = mixture(20 if scale.name == "tiny" else 100, scale.dimension, seed=3)
    truth = np.argsort(-(queries @ data.T), axis=1)[:, :10]
    results: list[Result] = []
    async with PostgresConnectionPool.of(dsn=dsn, max_size=4) as postgres:
        await pgstash.migrate(postgres)
        index = PostgresVectorIndex(postgres)
        try:
            for name in ("float32", "float16", "binary"):
                results += await variant(postgres, index, data, queries, truth, name)
        finally:
            await postgres.execute(f"DROP TABLE IF EXISTS {TABLE}")
    return results
