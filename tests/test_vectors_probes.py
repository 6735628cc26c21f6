"""A search's `probes=` applies to the IVFFlat index the table has, even when the pool's
remembered facts (`pgstash.vectors.facts`) were read before that index existed: right after the
load that built the waiting IVFFlat index, and after an index built by the caller's own SQL. And
the search after that load knows the index: one that came back short runs again exactly.

The rows: 5 tight clusters (one per list of an index with lists=5) and a query equally near all
of them, whose 10 nearest rows lie in several clusters, so a scan of one list (pgvector's default
ivfflat.probes = 1) cannot return them, whichever way k-means drew the lists."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from pgstash import AttributeRequirement, Postgres, PostgresConnectionPool, PostgresVectorIndex
from tests.support.bulk import Chunk, chunks

CENTRES = np.eye(8, dtype=np.float32)[:5]
QUERY = CENTRES.sum(axis=0) / np.sqrt(5.0)


def clusters() -> NDArray[np.float32]:
    noise = np.random.default_rng(7).normal(0.0, 0.01, (5000, 8)).astype(np.float32)
    vectors = np.repeat(CENTRES, 1000, axis=0) + noise
    normed: NDArray[np.float32] = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    return normed


def nearest(vectors: NDArray[np.float32], limit: int) -> list[str]:
    rows = np.argsort(-(vectors.astype(np.float64) @ QUERY.astype(np.float64)), kind="stable")[:limit]
    assert len({int(row) // 1000 for row in rows}) > 1  # one list cannot hold them all
    return [f"c{int(row)}" for row in rows]


async def lists(postgres: Postgres) -> list[str] | None:
    options: list[str] | None = await postgres.fetch_value(
        "SELECT ic.reloptions FROM pg_index AS i JOIN pg_class AS ic ON ic.oid = i.indexrelid "
        "JOIN pg_am AS am ON am.oid = ic.relam WHERE i.indrelid = 'chunk'::regclass AND am.amname = 'ivfflat'"
    )
    return options


async def test_probes_apply_to_the_ivfflat_index_the_load_just_built(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=8, index="ivfflat")  # waits for rows
    vectors = clusters()
    await index.index(Chunk, values=chunks(5000), attribute=lambda c: vectors[c.rank])  # builds it
    assert await lists(postgres) == ["lists=5"]
    found = await index.search(Chunk, query=QUERY, limit=10, probes=5)
    assert [chunk.identifier for chunk in found] == nearest(vectors, 10)


async def test_probes_apply_to_an_ivfflat_index_built_by_the_callers_own_sql(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=8, index=None)
    vectors = clusters()
    await index.index(Chunk, values=chunks(5000), attribute=lambda c: vectors[c.rank])
    assert len(await index.search(Chunk, query=QUERY, limit=10)) == 10  # exact; facts remembered
    await postgres.execute(
        "CREATE INDEX chunk_embedding_idx ON chunk "
        "USING ivfflat (embedding vector_cosine_ops) WITH (lists = 5)"
    )
    found = await index.search(Chunk, query=QUERY, limit=10, probes=5)
    assert [chunk.identifier for chunk in found] == nearest(vectors, 10)


async def test_a_short_ivfflat_scan_after_the_load_that_built_it_runs_exactly(database_dsn: str) -> None:
    """Iterative scans off by the caller's server_settings: the first search after the load
    probes one list of 1,000 rows for 1,500 candidates and, knowing the index, runs exactly."""
    off = {"ivfflat.iterative_scan": "off"}
    async with PostgresConnectionPool.of(dsn=database_dsn, server_settings=off) as postgres:
        index = PostgresVectorIndex(postgres)
        await index.create_table(Chunk, dimension=8, index="ivfflat")
        vectors = clusters()
        await index.index(Chunk, values=chunks(5000), attribute=lambda c: vectors[c.rank])
        assert await lists(postgres) == ["lists=5"]
        found = await index.search(Chunk, query=QUERY, limit=1500)
        assert len(found) == 1500  # one list holds 1,000 (deeper down, float32 near-ties reorder)
        assert [chunk.identifier for chunk in found][:10] == nearest(vectors, 10)


async def test_a_filtered_ivfflat_search_returns_its_rows_nearest_first(postgres: Postgres) -> None:
    """IVFFlat's iterative scans (relaxed_order, on for every connection) return the rows of each
    further list after those found before, not in distance order. Three rows of each cluster
    match, so ten of them take four lists at probes=1: the search sorts them again
    (`vectors_search_relaxed`), nearest first, as a brute force over the matching rows does."""
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=8, index="ivfflat")
    vectors = clusters()
    await index.index(Chunk, values=chunks(5000), attribute=lambda c: vectors[c.rank])
    assert await lists(postgres) == ["lists=5"]
    matching = [cluster * 1000 + offset for cluster in range(5) for offset in range(3)]
    requirement = AttributeRequirement.contained_in("rank", matching)
    found = await index.search_scored(Chunk, query=QUERY, limit=10, requirements=requirement, probes=1)
    scores = [score for _, score in found]
    assert len(found) == 10 and scores == sorted(scores, reverse=True)
    similarity = vectors[matching].astype(np.float64) @ QUERY.astype(np.float64)
    assert {chunk.rank for chunk, _ in found} <= set(matching)
    assert scores[0] == pytest.approx(float(similarity.max()), abs=1e-6)
