"""Selective filters (issue 17, item 7): a filtered HNSW search visits a bounded number of tuples
(`hnsw.max_scan_tuples`), so a filter matching few rows comes back short and runs exactly, where
the GIN index on payload finds the rows and a top-N sort orders them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pgstash import AttributeRequirement, Postgres, PostgresVectorIndex
from pgstash.sql.catalogue import query
from pgstash.vectors.filter_fragments import requirement_fragment
from pgstash.vectors.search import planning
from tests.support.statements import logged
from tests.support.vectors import Chunk, load, unit_rows

RARE = AttributeRequirement.equal("topic", "rare")  # 1 row in 200: 0.5%
COMMON = AttributeRequirement.equal("topic", "common")


@pytest.fixture
async def table(postgres: Postgres) -> tuple[PostgresVectorIndex, np.ndarray]:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=8, index=None)
    vectors = unit_rows(4_000, 8)
    await load(index, vectors, ("rare", *["common"] * 199))
    await index.create_table(Chunk, dimension=8)  # HNSW from the rows
    await postgres.execute("ANALYZE chunk")
    return index, vectors


async def searches_run(postgres: Postgres, monkeypatch: pytest.MonkeyPatch, call: object) -> list[str]:
    with monkeypatch.context() as patch:
        ran = logged(patch)
        await call  # type: ignore[misc]
    return [name for name in ran if name.startswith("vectors_s")]


async def test_a_selective_equality_filter_returns_limit_rows_through_the_gin_index(
    postgres: Postgres, table: tuple[PostgresVectorIndex, np.ndarray]
) -> None:
    index, vectors = table
    query_vector = unit_rows(1, 8, seed=5)[0]
    rare = [i for i in range(len(vectors)) if i % 200 == 0]
    expected = sorted(rare, key=lambda i: -float(vectors[i] @ query_vector))[:10]
    found = await index.search(Chunk, query=query_vector, limit=10, requirements=RARE)
    assert [chunk.rank for chunk in found] == expected  # limit rows, the exact top 10
    # with custom plans (the first five of a prepared statement, or EXPLAIN with values) the
    # planner reads the filter's selectivity and picks the GIN bitmap on payload and a top-N sort
    assert "Bitmap Index Scan on chunk_payload_idx" in await plan(postgres, RARE, query_vector)
    assert "Index Scan using chunk_embedding_idx" in await plan(postgres, COMMON, query_vector)


async def test_a_selective_filter_no_index_serves_stops_the_hnsw_walk_and_runs_exactly(
    postgres: Postgres, table: tuple[PostgresVectorIndex, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    index, vectors = table
    query_vector = unit_rows(1, 8, seed=5)[0]
    late = AttributeRequirement.greater("rank", 3_979)  # 20 rows of 4,000: no index serves it
    expected = sorted(range(3_980, 4_000), key=lambda i: -float(vectors[i] @ query_vector))[:10]
    ran = await searches_run(
        postgres, monkeypatch, index.search(Chunk, query=query_vector, limit=10, requirements=late)
    )
    # the HNSW scan stopped after its bound (10 candidates x 50 tuples) short of 10 rows, and the
    # search ran again exactly instead of walking the graph further
    assert ran == ["vectors_search", "vectors_search_exact"]  # the bound took effect in the statement
    found = await index.search(Chunk, query=query_vector, limit=10, requirements=late)
    assert [chunk.rank for chunk in found] == expected
    common = await searches_run(
        postgres, monkeypatch, index.search(Chunk, query=query_vector, limit=10, requirements=COMMON)
    )
    assert common == ["vectors_search"]  # HNSW found them: no re-run


async def plan(postgres: Postgres, requirement: AttributeRequirement, query_vector: np.ndarray) -> str:
    """EXPLAIN of the search statement as a filtered search sends it (its settings inside it)."""
    search = planning.Search(
        query("vectors_search"),
        query("vectors_search_exact"),
        slots={"table": "chunk"},
        requirements=requirement_fragment(requirement),
        values={
            "query_vector": query_vector,
            "candidates": 10,
            "max_distance": math.inf,
            "with_embeddings": False,
        },
    )
    settings = {"ef_search": None, "probes": None, "max_scan_tuples": 10 * planning.SCAN_TUPLES_PER_CANDIDATE}
    statement = search.statement(settings=settings)
    return "\n".join(row[0] for row in await postgres.fetch("EXPLAIN " + statement.sql, *statement.args))
