"""Bulk deletes on an HNSW table (issue 17, item 3): a delete removing a large share of the rows
rebuilds the nearest-neighbour index and vacuums the table, so a plain index scan (no iterative
scan, no exact fallback) still finds `limit` rows."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from pgstash import AttributeRequirement, Postgres, PostgresVectorIndex
from tests.support.vectors import Chunk, load, unit_rows

TOPICS = tuple(f"t{i}" for i in range(10))


async def index_file(postgres: Postgres) -> int:
    node: int = await postgres.fetch_value(
        "SELECT relfilenode FROM pg_class WHERE oid = 'chunk_embedding_idx'::regclass"
    )
    return node


async def plain_top10(postgres: Postgres, queries: np.ndarray) -> list[int]:
    """How many rows a plain HNSW scan returns for each query: the index path alone."""
    counts = []
    async with postgres.transaction(rollback=True):
        await postgres.execute("SET LOCAL enable_seqscan = off")
        for query in queries:
            rows = await postgres.fetch("SELECT id FROM chunk ORDER BY embedding <=> $1 LIMIT 10", query)
            counts.append(len(rows))
    return counts


@pytest.fixture
async def table(postgres: Postgres) -> PostgresVectorIndex:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=8, index=None)
    await load(index, unit_rows(2_000, 8), TOPICS)
    await index.create_table(Chunk, dimension=8)  # HNSW built from the rows, as the README advises
    return index


async def test_a_bulk_delete_rebuilds_the_index_so_plain_scans_find_limit_rows(
    postgres: Postgres, table: PostgresVectorIndex
) -> None:
    before = await index_file(postgres)
    queries = unit_rows(20, 8, seed=3)
    deleted = await table.delete(Chunk, requirements=AttributeRequirement.not_equal("topic", "t0"))
    assert deleted == 1_800
    assert await index_file(postgres) != before  # rebuilt (REINDEX CONCURRENTLY: a new file)
    assert await postgres.fetch_value(
        "SELECT bool_and(indisvalid) AND count(*) = 4 FROM pg_index WHERE indrelid = 'chunk'::regclass"
    )  # the key, embedding, payload and created indexes, none left invalid
    assert await postgres.fetch_value("SELECT reltuples FROM pg_class WHERE relname = 'chunk'") == 200
    assert await plain_top10(postgres, queries) == [10] * len(queries)
    found = await table.search(Chunk, query=queries[0], limit=10)
    assert len(found) == 10 and {chunk.topic for chunk in found} == {"t0"}


async def test_a_small_delete_leaves_the_index_alone(postgres: Postgres, table: PostgresVectorIndex) -> None:
    before = await index_file(postgres)
    assert await table.delete(Chunk, requirements=AttributeRequirement.equal("topic", "t1")) == 200
    assert await index_file(postgres) == before


async def test_inside_a_transaction_a_bulk_delete_only_recommends_the_rebuild(
    postgres: Postgres, table: PostgresVectorIndex, caplog: pytest.LogCaptureFixture
) -> None:
    before = await index_file(postgres)
    with caplog.at_level(logging.WARNING, logger="pgstash"):
        async with postgres.transaction():
            assert await table.delete(Chunk, everything=True) == 2_000
    assert await index_file(postgres) == before
    assert "REINDEX INDEX CONCURRENTLY chunk_embedding_idx" in caplog.text
