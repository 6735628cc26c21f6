"""`create_table(..., precision="float16")`: a `halfvec` table works as a `vector` one does
(ingest by binary COPY, search, filters, MMR, keyed upserts, text and hybrid search, deletes and
their maintenance, IVFFlat), its limits are checked before anything is sent, and `status` and the
CLI show and take the precision."""

from __future__ import annotations

import asyncio
import json

import attrs
import numpy as np
import pytest
from numpy.typing import NDArray

from pgstash import (
    AttributeRequirement,
    ConfigurationError,
    Postgres,
    PostgresConnectionPool,
    PostgresVectorIndex,
)
from pgstash.sql.catalogue import query as named_query
from pgstash.sql.composer import compose, fragment
from tests.support.cli import pgstash
from tests.support.vectors import unit_rows

R = AttributeRequirement


@attrs.frozen
class Half:
    key: str
    body: str
    topic: str = "general"
    rank: int = 0


def halves(count: int, version: int = 1) -> list[Half]:
    words = ("alpha", "beta", "gamma", "delta", "epsilon")
    return [
        Half(f"h{i}", f"{words[i % 5]} item{i} v{version}", topic=f"t{i % 3}", rank=i) for i in range(count)
    ]


async def load(
    store: PostgresVectorIndex, vectors: NDArray[np.float32], version: int = 1, key: str | None = None
) -> list[Half]:
    values = halves(len(vectors), version)
    by_key = {value.key: vector for value, vector in zip(values, vectors, strict=True)}
    await store.index(Half, values=values, attribute=lambda value: by_key[value.key], key=key)
    return values


def exact(vectors: NDArray[np.float32], query: NDArray[np.float32], limit: int) -> list[str]:
    """The top `limit` keys by cosine over what a halfvec table stores (float16 components)."""
    stored = vectors.astype(np.float16).astype(np.float64)
    scores = stored @ query.astype(np.float64) / np.linalg.norm(stored, axis=1)
    return [f"h{int(i)}" for i in np.argsort(-scores, kind="stable")[:limit]]


async def column_type(postgres: Postgres, table: str) -> str:
    found: str = await postgres.fetch_value(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = $1::regclass AND attname = 'embedding'",
        table,
    )
    return found


async def opclasses(postgres: Postgres, table: str) -> dict[str, str]:
    rows = await postgres.fetch(
        "SELECT am.amname, oc.opcname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
        "JOIN pg_am am ON am.oid = ic.relam JOIN pg_opclass oc ON oc.oid = i.indclass[0] "
        "WHERE i.indrelid = $1::regclass AND am.amname IN ('hnsw', 'ivfflat')",
        table,
    )
    return {row["amname"]: row["opcname"] for row in rows}


# -- the table --------------------------------------------------------------------------------------


async def test_float16_stores_halfvec_with_its_cosine_opclass(postgres: Postgres) -> None:
    store = PostgresVectorIndex(postgres)
    await store.create_table(Half, dimension=8, precision="float16")
    await store.create_table(Half, dimension=8, precision="float16")  # idempotent
    assert await column_type(postgres, "half") == "halfvec(8)"
    assert await opclasses(postgres, "half") == {"hnsw": "halfvec_cosine_ops"}
    await store.create_table(Half, dimension=8, table="full")
    assert await column_type(postgres, "full") == "vector(8)"
    assert await opclasses(postgres, "full") == {"hnsw": "vector_cosine_ops"}
    with pytest.raises(ConfigurationError, match='precision="float16"'):
        await store.create_table(Half, dimension=8)  # the table holds halfvec
    with pytest.raises(ConfigurationError, match='precision="float32"'):
        await store.create_table(Half, dimension=8, table="full", precision="float16")
    for wrong in ("float64", "half", None, 16):
        with pytest.raises(ValueError, match='precision must be "float32" or "float16"'):
            await store.create_table(Half, dimension=8, table="other", precision=wrong)  # type: ignore[arg-type]
    assert await postgres.fetch_value("SELECT to_regclass('other')") is None


async def test_dimension_limits_depend_on_the_precision(postgres: Postgres) -> None:
    store = PostgresVectorIndex(postgres)
    with pytest.raises(ValueError, match=r'at most 2,000 dimensions, got 2,001.*precision="float16"'):
        await store.create_table(Half, dimension=2001, table="wide")
    with pytest.raises(ValueError, match="at most 4,000 dimensions, got 4,001: pass index=None"):
        await store.create_table(Half, dimension=4001, table="wide", precision="float16")
    with pytest.raises(ValueError, match="at most 4,000 dimensions"):
        await store.create_table(Half, dimension=4001, index="ivfflat", table="wide", precision="float16")
    with pytest.raises(ValueError, match="16,000"):
        await store.create_table(Half, dimension=16_001, index=None, table="wide", precision="float16")
    assert await postgres.fetch_value("SELECT to_regclass('wide')") is None
    await store.create_table(Half, dimension=4000, table="wide", precision="float16")
    assert await opclasses(postgres, "wide") == {"hnsw": "halfvec_cosine_ops"}
    await store.create_table(Half, dimension=4001, index=None, table="wider", precision="float16")
    assert await column_type(postgres, "wider") == "halfvec(4001)"


# -- ingest, search, filters, MMR, delete ----------------------------------------------------------


async def test_a_float16_table_ingests_searches_filters_reranks_and_deletes(postgres: Postgres) -> None:
    store = PostgresVectorIndex(postgres, mmr_multiplier=4)
    await store.create_table(Half, dimension=16, precision="float16")
    vectors = unit_rows(400, 16)
    values = await load(store, vectors)
    stored = await postgres.fetch("SELECT payload->>'key' AS key, embedding FROM half")
    assert len(stored) == 400
    by_key = {row["key"]: row["embedding"] for row in stored}
    assert isinstance(by_key["h3"], np.ndarray) and by_key["h3"].dtype.kind == "f"
    assert np.array_equal(by_key["h3"].astype(np.float16), vectors[3].astype(np.float16))

    query = unit_rows(1, 16, seed=7)[0]
    found = await store.search_scored(Half, query=query, limit=10)
    expected = exact(vectors, query, 10)
    assert len({value.key for value, _ in found} & set(expected)) >= 9  # HNSW, ef_search 40
    half = vectors.astype(np.float16).astype(np.float64)
    for value, score in found:
        row = half[value.rank]
        assert score == pytest.approx(row @ query / np.linalg.norm(row) / np.linalg.norm(query), abs=2e-3)
    assert [value.key for value, _ in found] == sorted(
        (value.key for value, _ in found), key=lambda key: -dict((v.key, s) for v, s in found)[key]
    )

    # a filter on HNSW still returns limit rows (iterative scan, else the exact re-run)
    filtered = await store.search(Half, query=query, limit=20, requirements=R.equal("topic", "t1"))
    assert len(filtered) == 20 and all(value.topic == "t1" for value in filtered)
    assert {value.key for value in filtered} == {
        key for key in exact(vectors, query, 400) if int(key[1:]) % 3 == 1
    } & {value.key for value in filtered}
    tuned = await store.search(Half, query=query, limit=50, ef_search=100)
    assert len(tuned) == 50
    threshold = await store.search_scored(Half, query=query, limit=400, score_threshold=0.5)
    assert threshold and all(score >= 0.5 for _, score in threshold)

    reranked = await store.search(Half, query=query, limit=5, rerank=True)
    assert len(reranked) == 5 and reranked[0].key == found[0][0].key
    newest = await store.search(Half, limit=3)
    assert [value.key for value in newest] == [values[-1].key, values[-2].key, values[-3].key]

    assert await store.delete(Half, requirements=R.equal("topic", "t0")) == 134  # a bulk delete
    assert await opclasses(postgres, "half") == {"hnsw": "halfvec_cosine_ops"}  # rebuilt, same class
    left = await store.search(Half, query=query, limit=30)
    assert len(left) == 30 and all(value.topic != "t0" for value in left)
    assert await postgres.fetch_value("SELECT count(*) FROM half") == 266


async def test_float16_hnsw_recall_on_clustered_vectors(postgres: Postgres) -> None:
    store = PostgresVectorIndex(postgres)
    await store.create_table(Half, dimension=32, precision="float16")
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((20, 32)).astype(np.float32)
    rows = centres[rng.integers(0, 20, 3000)] + 0.3 * rng.standard_normal((3000, 32)).astype(np.float32)
    vectors = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    await load(store, vectors)
    queries = vectors[rng.choice(3000, 25, replace=False)] + 0.05 * rng.standard_normal((25, 32)).astype(
        np.float32
    )
    hits = 0
    for query in queries:
        found = await store.search(Half, query=query, limit=10)
        truth = {f"h{int(i)}" for i in np.argsort(-(vectors @ query))[:10]}  # float32, exact
        hits += len(truth & {value.key for value in found})
    assert hits / (10 * len(queries)) >= 0.9


async def test_ivfflat_on_float16(postgres: Postgres) -> None:
    store = PostgresVectorIndex(postgres)
    await store.create_table(Half, dimension=4, index="ivfflat", precision="float16")
    vectors = unit_rows(5000, 4, seed=2)
    await load(store, vectors)  # enough rows: the index call builds the waiting IVFFlat index
    assert await opclasses(postgres, "half") == {"ivfflat": "halfvec_cosine_ops"}
    query = unit_rows(1, 4, seed=9)[0]
    found = await store.search(Half, query=query, limit=10, probes=100)
    assert [value.key for value in found][:5] == exact(vectors, query, 5)


async def test_an_index_added_to_a_float16_table_holding_rows_uses_halfvec_ops(postgres: Postgres) -> None:
    store = PostgresVectorIndex(postgres)
    await store.create_table(Half, dimension=8, index=None, precision="float16")
    vectors = unit_rows(300, 8, seed=4)
    await load(store, vectors)
    assert await opclasses(postgres, "half") == {}
    await store.create_table(Half, dimension=8, index="hnsw", precision="float16")  # CONCURRENTLY
    assert await opclasses(postgres, "half") == {"hnsw": "halfvec_cosine_ops"}
    query = unit_rows(1, 8, seed=8)[0]
    found = await store.search(Half, query=query, limit=10, requirements=R.equal("topic", "t2"))
    assert len(found) == 10 and all(value.topic == "t2" for value in found)


# -- checks after the cast to float16 ------------------------------------------------------------


async def test_components_outside_float16_are_refused_naming_the_row(postgres: Postgres) -> None:
    store = PostgresVectorIndex(postgres)
    await store.create_table(Half, dimension=3, index=None, precision="float16")
    await store.create_table(Half, dimension=3, index=None, table="full")
    values = halves(3)
    wide = {"h0": [1.0, 0.0, 0.0], "h1": [1.0, 70_000.0, 0.0], "h2": [0.0, 1.0, 0.0]}
    with pytest.raises(ValueError, match=r"vector 1 has a component outside float16's range.*70000\.0"):
        await store.index(Half, values=values, attribute=lambda value: wide[value.key])
    tiny = {"h0": [1.0, 0.0, 0.0], "h1": [1e-8, 1e-8, 1e-8], "h2": [0.0, 1.0, 0.0]}
    with pytest.raises(ValueError, match=r"vector 1 is all zeros.*after the cast to float16"):
        await store.index(Half, values=values, attribute=lambda value: tiny[value.key])
    assert await postgres.fetch_value("SELECT count(*) FROM half") == 0  # nothing written
    assert await store.index(Half, values=values, attribute=lambda value: wide[value.key], table="full") == 3
    await store.index(Half, values=values, attribute=lambda value: [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="query vector 0 has a component outside float16's range"):
        await store.search(Half, query=[1e6, 0.0, 0.0])
    assert len(await store.search(Half, query=[1e-3, 0.0, 0.0])) == 3


# -- keyed upserts, text and hybrid search --------------------------------------------------------


async def test_keys_text_and_hybrid_on_float16(postgres: Postgres) -> None:
    store = PostgresVectorIndex(postgres)
    await store.create_table(Half, dimension=8, text="body", precision="float16")
    vectors = unit_rows(60, 8, seed=5)
    await load(store, vectors, version=1, key="key")
    await load(store, vectors[::-1].copy(), version=2, key="key")  # every key again
    assert await postgres.fetch_value("SELECT count(*) FROM half") == 60
    assert await postgres.fetch_value("SELECT count(*) FROM half WHERE payload->>'body' LIKE '%v2'") == 60

    text = await store.search_scored(Half, query="gamma", mode="text", limit=5)
    assert len(text) == 5 and all("gamma" in value.body for value, _ in text)
    # hybrid: the query text embeds as vectors[-1], which the second load stored for h0
    with_store = PostgresVectorIndex(postgres, embedding=lambda texts: _embed(texts, vectors))
    hybrid = await with_store.search(Half, query="gamma", mode="hybrid", limit=5)
    assert len(hybrid) == 5
    by_vector = await with_store.search(Half, query="gamma", mode="hybrid", limit=5, weights=(1.0, 0.0))
    assert by_vector[0].key == "h0"
    reranked = await with_store.search(Half, query="gamma", mode="hybrid", limit=4, rerank=True)
    assert len(reranked) == 4
    filtered = await with_store.search(
        Half, query="gamma", mode="hybrid", limit=3, requirements=R.equal("topic", "t1")
    )
    assert filtered and all(value.topic == "t1" for value in filtered)

    assert await store.delete(Half, keys=["h0", "h1", "missing"]) == 2
    assert await postgres.fetch_value("SELECT count(*) FROM half") == 58


async def _embed(texts: object, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
    return np.repeat(vectors[-1:], len(texts), axis=0)  # type: ignore[arg-type]


# -- status and the command line ------------------------------------------------------------------


@pytest.mark.process
def test_cli_creates_a_float16_table_and_status_shows_each_precision(database_dsn: str) -> None:
    created = pgstash(
        "vector",
        "create-table",
        "halves",
        "--dimension",
        "16",
        "--precision",
        "float16",
        "--dsn",
        database_dsn,
    )
    assert created.returncode == 0, created.stderr
    assert "halfvec(16)" in created.stdout and "float16" in created.stdout
    plain = pgstash("vector", "create-table", "fulls", "--dimension", "16", "--dsn", database_dsn)
    assert plain.returncode == 0, plain.stderr
    wrong = pgstash("vector", "create-table", "x", "--dimension", "16", "--precision", "float8")
    assert wrong.returncode != 0 and "float16" in wrong.stderr

    rows = "\n".join(f'{{"text": "note {i}"}}' for i in range(50))
    ingested = pgstash(
        "vector", "ingest", "halves", "-", "--text-field", "text", "--dsn", database_dsn, stdin=rows
    )
    assert ingested.returncode == 0, ingested.stderr
    found = pgstash("vector", "search", "halves", "note 7", "--limit", "3", "--dsn", database_dsn)
    assert found.returncode == 0, found.stderr
    assert '"note 7"' in found.stdout

    async def column() -> str:
        async with PostgresConnectionPool.of(dsn=database_dsn) as postgres:
            return await column_type(postgres, "halves")

    assert asyncio.run(column()) == "halfvec(16)"
    status = pgstash("status", "--dsn", database_dsn)
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    header = next(line for line in lines if line.startswith("table ") and "precision" in line)
    by_name = {line.split()[0]: line for line in lines[lines.index(header) + 2 :] if line.strip()}
    column_at = header.index("precision")
    assert by_name["halves"][column_at:].split()[0] == "float16"
    assert by_name["fulls"][column_at:].split()[0] == "float32"
    assert "halfvec_cosine_ops" not in status.stdout  # the precision says it, not the index name


async def test_the_search_takes_the_columns_type_and_its_index(postgres: Postgres) -> None:
    """No cast on the query vector: PostgreSQL infers halfvec from the column, so the HNSW index
    on halfvec serves the search (a `::vector` cast would compare vector with vector, unindexed)."""
    store = PostgresVectorIndex(postgres)
    await store.create_table(Half, dimension=8, precision="float16")
    await load(store, unit_rows(200, 8))
    search = compose(
        named_query("vectors_search"),
        slots={"table": "half"},
        fragments={"requirements": fragment("filter_everything")},
        query_vector=unit_rows(1, 8)[0],
        candidates=5,
        max_distance=2.0,
        with_embeddings=False,
    )
    async with postgres.connection() as connection:
        prepared = await connection.prepare(search.sql)
        place = next(n for n, value in enumerate(search.args) if isinstance(value, np.ndarray))
        assert prepared.get_parameters()[place].name == "halfvec"  # the query vector's $n
    async with postgres.transaction(rollback=True):
        await postgres.execute("SET LOCAL enable_seqscan = off")
        plan = await postgres.fetch_value(f"EXPLAIN (FORMAT JSON) {search.sql}", *search.args)
    assert "half_embedding_idx" in (plan if isinstance(plan, str) else json.dumps(plan))
