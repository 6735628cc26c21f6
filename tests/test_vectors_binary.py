"""`create_table(..., quantize="binary")`: HNSW over the embeddings' signs shortlists `candidates`
rows by Hamming distance, re-ranked exactly by cosine in the same statement; recall against exact
search on a fixed set, filters, thresholds and MMR as on any table, bad input refused before SQL."""

from __future__ import annotations

import attrs
import numpy as np
import pytest

from pgstash import AttributeRequirement, Postgres, PostgresVectorIndex
from pgstash.vectors.quantize import check_quantize
from tests.support.vectors import plan_of

R = AttributeRequirement


@attrs.frozen
class Bit:
    key: str
    group: int


def clustered(count: int, dimension: int, seed: int = 0) -> np.ndarray:
    """A fixed set with structure (64 centres, noise around them), normalised."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((64, dimension))
    rows = centres[rng.integers(0, 64, count)] + 1.0 * rng.standard_normal((count, dimension))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


async def filled(
    postgres: Postgres, count: int, dimension: int
) -> tuple[PostgresVectorIndex, np.ndarray, np.ndarray]:
    """The table of `count` rows, their vectors and 20 queries from the same distribution."""
    store = PostgresVectorIndex(postgres)
    await store.create_table(Bit, dimension=dimension, index=None)  # load first, then build
    every = clustered(count + 20, dimension)
    vectors, queries = every[:count], every[count:]
    values = [Bit(f"b{i}", i % 4) for i in range(count)]
    await store.index(Bit, values=values, attribute=lambda value: vectors[int(value.key[1:])])
    await store.create_table(Bit, dimension=dimension, quantize="binary")
    await postgres.execute("ANALYZE bit")
    return store, vectors, queries


def exact(vectors: np.ndarray, query: np.ndarray, limit: int, keep: object = None) -> list[str]:
    order = np.argsort(-(vectors @ query), kind="stable")
    if keep is not None:
        order = np.array([i for i in order if i % 4 == keep])
    return [f"b{int(i)}" for i in order[:limit]]


async def test_binary_search_recall_against_exact_on_a_fixed_set(postgres: Postgres) -> None:
    store, vectors, queries = await filled(postgres, 3_000, 128)
    indexes = await postgres.fetch_value(
        "SELECT array_agg(indexname::text ORDER BY indexname) FROM pg_indexes WHERE tablename = 'bit'"
    )
    assert "bit_binary_idx" in indexes and "bit_embedding_idx" not in indexes
    hits = 0
    for query in queries:
        found = await store.search_scored(Bit, query=query, limit=10, candidates=200)
        hits += len({bit.key for bit, _ in found} & set(exact(vectors, query, 10)))
        scores = [score for _, score in found]
        assert scores == sorted(scores, reverse=True)  # re-ranked by cosine
        best = found[0][0].key
        assert scores[0] == pytest.approx(float(vectors[int(best[1:])] @ query), abs=1e-5)
    assert hits / (10 * len(queries)) >= 0.95  # exact Hamming top-200 then cosine: 1.00 on this set

    async def search() -> None:
        await store.search(Bit, query=queries[0], limit=10)

    plan = await plan_of(postgres, search)
    assert "bit_binary_idx" in plan and "Seq Scan" not in plan


async def test_binary_tables_keep_filters_thresholds_and_mmr(postgres: Postgres) -> None:
    store, vectors, queries = await filled(postgres, 2_000, 64)
    query = queries[0]
    found = await store.search(Bit, query=query, limit=10, requirements=R.equal("group", 2), candidates=400)
    assert len(found) == 10 and all(bit.group == 2 for bit in found)
    assert len({bit.key for bit in found} & set(exact(vectors, query, 10, keep=2))) >= 8
    scored = await store.search_scored(Bit, query=query, limit=50, score_threshold=0.5)
    assert scored and all(score >= 0.5 for _, score in scored)
    diverse = await store.search(Bit, query=query, limit=5, rerank=True)
    assert len(diverse) == 5
    # a filter matching 1 row in 400 comes back short from the shortlist and runs exactly
    rare = await store.search(Bit, query=query, limit=3, requirements=R.equal("key", "b17"))
    assert [bit.key for bit in rare] == ["b17"]


async def test_bad_quantize_input_is_refused_before_any_sql(postgres: Postgres) -> None:
    store = PostgresVectorIndex(postgres)
    with pytest.raises(ValueError, match='quantize is None or "binary"'):
        await store.create_table(Bit, dimension=8, quantize="int8")
    with pytest.raises(ValueError, match='index="hnsw"'):
        await store.create_table(Bit, dimension=8, quantize="binary", index="ivfflat")
    with pytest.raises(ValueError, match="16,000"):  # the column's type bounds it first
        await store.create_table(Bit, dimension=70_000, quantize="binary")
    with pytest.raises(ValueError, match="on bit takes at most 64,000"):
        check_quantize("binary", 70_000, "hnsw")
    assert await postgres.fetch_value("SELECT to_regclass('bit')") is None
    # beyond float32 HNSW's 2,000 dimensions, the bit index takes it
    await store.create_table(Bit, dimension=3_000, quantize="binary")
    with pytest.raises(ValueError, match="candidates"):
        await store.search(Bit, query=np.ones(3_000, dtype=np.float32), limit=10, candidates=5)
