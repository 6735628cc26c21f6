"""The default flow's search, planned once (`pgstash.vectors.search.vector.Ready`): a repeated
`search(model, query=vector, limit=k)` binds its query into a statement planned for the table's
state, and must do everything the general path does: the same rows, a new plan when the table
changes (an index built), the same errors, the current pool, and the general path for any other
call."""

from __future__ import annotations

import numpy as np
import pytest

from pgstash import (
    DimensionMismatchError,
    HashingEmbedding,
    Postgres,
    PostgresConnectionPool,
    PostgresVectorIndex,
    SchemaMissingError,
)
from tests.support.statements import sent
from tests.support.vectors import Chunk, brute_force, load, unit_rows


async def _names(postgres: Postgres, index: PostgresVectorIndex, query: np.ndarray) -> list[str]:
    with sent(postgres) as statements:
        await index.search(Chunk, query=query, limit=10)
    return [statement.name for statement in statements]


async def test_a_repeated_search_returns_the_general_paths_rows(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=16)
    vectors = unit_rows(500, 16)
    await load(index, vectors)
    for seed in range(3):
        query = unit_rows(1, 16, seed=50 + seed)[0]
        general = await index.search_scored(Chunk, query=query, limit=10, ef_search=40)  # the gate: general
        for _ in range(3):  # the first call plans, the others bind
            assert await index.search(Chunk, query=query, limit=10) == [chunk for chunk, _ in general]
            scored = await index.search_scored(Chunk, query=query, limit=10)
            assert [chunk for chunk, _ in scored] == [chunk for chunk, _ in general]
            np.testing.assert_allclose([s for _, s in scored], [s for _, s in general], atol=1e-6)
        # the nearest rows: HNSW finds the exact top 10 on 500 well-spread rows
        assert [c.identifier for c, _ in general] == [i for i, _ in brute_force(vectors, query, 10)]
    # a float64 query, a list and a tuple read as the same vector
    query = unit_rows(1, 16, seed=7)[0]
    expected = await index.search(Chunk, query=query, limit=5)
    for same in (query.astype(np.float64), list(query), tuple(query)):
        assert await index.search(Chunk, query=same, limit=5) == expected


async def test_a_new_index_gets_a_new_plan(postgres: Postgres) -> None:
    """Planned on a table without an ANN index (exact), the search follows the table once its
    facts are read again: an IVFFlat index built by `build_index` (which forgets them) is
    searched by the statement that sorts its relaxed-order candidates."""
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=8, index=None)
    vectors = unit_rows(2_000, 8)
    await load(index, vectors)
    query = unit_rows(1, 8, seed=3)[0]
    expected = [i for i, _ in brute_force(vectors, query, 10)]
    for _ in range(2):
        assert await _names(postgres, index, query) == ["vectors_search"]
        assert [c.identifier for c in await index.search(Chunk, query=query, limit=10)] == expected
    await index.build_index(Chunk, index="ivfflat")
    assert await _names(postgres, index, query) == ["vectors_table_facts", "vectors_search_relaxed"]
    assert await _names(postgres, index, query) == ["vectors_search_relaxed"]  # planned again, once
    scores = [score for _, score in await index.search_scored(Chunk, query=query, limit=10)]
    assert len(scores) == 10 and scores == sorted(scores, reverse=True)  # approximate, in score order


async def test_errors_are_the_general_paths(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres, embedding=HashingEmbedding(8))
    await index.create_table(Chunk, dimension=8)
    await load(index, unit_rows(50, 8))
    query = unit_rows(1, 8, seed=1)[0]
    assert len(await index.search(Chunk, query=query, limit=3)) == 3  # planned
    with pytest.raises(DimensionMismatchError):
        await index.search(Chunk, query=unit_rows(1, 9)[0], limit=3)
    with pytest.raises(ValueError, match="NaN or infinite"):
        await index.search(Chunk, query=np.full(8, np.nan, dtype=np.float32), limit=3)
    with pytest.raises(ValueError, match="zero"):
        await index.search(Chunk, query=np.zeros(8, dtype=np.float32), limit=3)
    with pytest.raises(ValueError, match="limit"):
        await index.search(Chunk, query=query, limit=0)
    assert len(await index.search(Chunk, query="a text, embedded", limit=3)) == 3  # the general path
    await postgres.execute("DROP TABLE chunk")
    with pytest.raises(SchemaMissingError, match="create_table"):
        await index.search(Chunk, query=query, limit=3)


async def test_an_index_without_a_pool_searches_the_current_one(
    postgres: Postgres, database_dsn: str
) -> None:
    """A `PostgresVectorIndex()` remembers no pool: each call runs on the pool current where it
    runs, and a plan made on one pool's table serves another's only through that pool's facts."""
    setup = PostgresVectorIndex(postgres)
    await setup.create_table(Chunk, dimension=8, index=None)
    await setup.create_table(Chunk, dimension=8, index=None, table="other_chunk")
    vectors = unit_rows(40, 8)
    await load(setup, vectors)
    query = unit_rows(1, 8, seed=4)[0]
    index = PostgresVectorIndex()
    async with PostgresConnectionPool.of(dsn=database_dsn, max_size=2):
        for _ in range(2):
            assert len(await index.search(Chunk, query=query, limit=5)) == 5
    async with PostgresConnectionPool.of(dsn=database_dsn, max_size=2):
        assert await index.search(Chunk, query=query, limit=5, table="other_chunk") == []
        assert [c.identifier for c in await index.search(Chunk, query=query, limit=5)] == [
            i for i, _ in brute_force(vectors, query, 5)
        ]
