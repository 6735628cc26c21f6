"""PostgresVectorIndex on a real PostgreSQL with pgvector: tables, ingest, search, delete."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import math
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import asyncpg
import attrs
import cattrs
import numpy as np
import pytest

from pgstash import (
    AttributeRequirement,
    ConfigurationError,
    DatabaseError,
    DimensionMismatchError,
    EmbeddingMissingError,
    HashingEmbedding,
    Postgres,
    PostgresConnectionPool,
    PostgresVectorIndex,
    SchemaMissingError,
)
from pgstash.sql.statements import Statement
from pgstash.vectors import table_name
from tests.support.databases import TEMPLATE_DATABASE, clone, drop, with_database
from tests.support.pooler import PgBouncer, pooled
from tests.support.statements import sent
from tests.support.vectors import Chunk, brute_force, chunks_for, load, plan_of, unit_rows

R = AttributeRequirement


@dataclasses.dataclass(frozen=True)
class HTTPDocument:
    url: str
    body: bytes | None = None


# -- tables -----------------------------------------------------------------------------------------


def test_table_names_are_the_snake_case_of_the_class() -> None:
    assert table_name(Chunk) == "chunk"
    assert table_name(HTTPDocument) == "http_document"
    assert table_name(type("MyHTMLParser2", (), {})) == "my_html_parser2"
    assert table_name(Chunk, "other_chunks") == "other_chunks"
    with pytest.raises(ValueError, match="invalid table"):
        table_name(type("Ünïcode", (), {}))
    with pytest.raises(ValueError, match="invalid table"):
        table_name(Chunk, "Chunks")


async def test_create_table_makes_the_seed_columns_and_indexes_idempotently(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=8)
    await index.create_table(Chunk, dimension=8)
    columns = await postgres.fetch(
        "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns "
        "WHERE table_name = 'chunk' ORDER BY ordinal_position"
    )
    assert [(c["column_name"], c["data_type"], c["is_nullable"]) for c in columns] == [
        ("id", "uuid", "NO"),
        ("embedding", "USER-DEFINED", "NO"),
        ("payload", "jsonb", "NO"),
        ("meta", "jsonb", "NO"),
        ("created", "timestamp with time zone", "NO"),
    ]
    assert columns[0]["column_default"] == "gen_random_uuid()"
    assert (
        await postgres.fetch_value(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = 'chunk'::regclass AND attname = 'embedding'"
        )
        == "vector(8)"
    )
    indexes = await postgres.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'chunk'")
    definitions = {row["indexname"]: row["indexdef"] for row in indexes}
    assert "USING hnsw (embedding vector_cosine_ops)" in definitions["chunk_embedding_idx"]
    assert "USING gin (payload jsonb_path_ops)" in definitions["chunk_payload_idx"]
    assert "(created)" in definitions["chunk_created_idx"]
    with pytest.raises(DimensionMismatchError) as mismatch:
        await index.create_table(Chunk, dimension=16)
    assert (mismatch.value.expected, mismatch.value.actual) == (8, 16)


async def test_create_table_variants(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=4, index="ivfflat", table="ivf_chunks")
    await index.create_table(Chunk, dimension=4, index=None, table="bare_chunks")
    await index.create_table(Chunk, dimension=4, table="a" * 63)
    methods = await postgres.fetch(
        "SELECT c.relname AS tab, am.amname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
        "JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam "
        "WHERE c.relname IN ('ivf_chunks', 'bare_chunks', $1)",
        "a" * 63,
    )
    # every table has its primary key; IVFFlat waits for rows to train on (test_ivfflat_...)
    assert sorted(r["amname"] for r in methods if r["tab"] == "ivf_chunks") == ["btree", "btree", "gin"]
    # index=None: no nearest-neighbour index; the key, the filters' GIN and the listing's B-tree stay
    assert sorted(r["amname"] for r in methods if r["tab"] == "bare_chunks") == ["btree", "btree", "gin"]
    assert sorted(r["amname"] for r in methods if r["tab"] == "a" * 63) == ["btree", "btree", "gin", "hnsw"]
    for bad in (
        {"dimension": 0},
        {"dimension": 4, "index": "flat"},
        {"dimension": 4, "distance": "l2"},
        {"dimension": 3000},
        {"dimension": True},
    ):
        with pytest.raises(ValueError):
            await index.create_table(Chunk, **bad)
    with pytest.raises(TypeError, match="attrs classes or dataclasses"):
        await index.create_table(dict, dimension=4)


async def test_without_pgvector_create_table_says_to_migrate(empty_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=empty_dsn) as postgres:
        with pytest.raises(ConfigurationError, match="pgstash migrate"):
            await PostgresVectorIndex(postgres).create_table(Chunk, dimension=4)


async def test_a_missing_table_names_itself_and_create_table(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres, embedding=HashingEmbedding(4))
    calls = [
        index.index(Chunk, values=[Chunk("a", "x")], attribute="text"),
        index.search(Chunk, query="x"),
        index.search(Chunk),
        index.delete(Chunk, everything=True),
    ]
    for call in calls:
        with pytest.raises(SchemaMissingError, match=r'"chunk".*create_table\(Chunk'):
            await call


# -- ingest -----------------------------------------------------------------------------------------


async def test_index_embeds_texts_and_keeps_input_order_in_created(postgres: Postgres) -> None:
    embedding = HashingEmbedding(32)
    index = PostgresVectorIndex(postgres, embedding=embedding)
    await index.create_table(Chunk, dimension=32)
    chunks = [Chunk(f"c{i}", f"document number {i} about {'cats' if i % 2 else 'dogs'}") for i in range(300)]
    assert (
        await index.index(Chunk, values=chunks, attribute=attrs.fields(Chunk).text, meta={"source": "t"})
        == 300
    )
    rows = await postgres.fetch("SELECT payload, meta, embedding, created FROM chunk ORDER BY created, id")
    assert [row["payload"]["identifier"] for row in rows] == [chunk.identifier for chunk in chunks]
    assert all(a["created"] < b["created"] for a, b in itertools.pairwise(rows))
    assert rows[0]["payload"] == {"identifier": "c0", "text": chunks[0].text, "topic": "general", "rank": 0}
    assert {json.dumps(row["meta"]) for row in rows} == {'{"source": "t"}'}
    expected = await embedding([chunk.text for chunk in chunks])
    np.testing.assert_allclose(np.stack([row["embedding"] for row in rows]), expected, rtol=1e-6)
    # a later call's rows are newer, and query=None lists newest first
    await index.index(Chunk, values=[Chunk("late", "late text")], attribute="text")
    newest = await index.search(Chunk, limit=3)
    assert [chunk.identifier for chunk in newest] == ["late", "c299", "c298"]


async def test_index_takes_images_ready_vectors_and_per_row_meta(postgres: Postgres) -> None:
    async def image_embedding(images: Sequence[bytes]) -> list[list[float]]:
        return [[float(len(image)), 1.0, 0.0] for image in images]

    index = PostgresVectorIndex(postgres, image_embedding=image_embedding)
    await index.create_table(HTTPDocument, dimension=3)
    documents = [HTTPDocument("a", b"xx"), HTTPDocument("b", b"yyyy"), HTTPDocument("c")]
    vectors = {"c": (0.0, 0.0, 1.0)}
    written = await index.index(
        HTTPDocument,
        values=documents,
        attribute=lambda d: d.body if d.body is not None else vectors[d.url],
        meta=[{"n": 1}, {"n": 2}, {"n": 3}],
    )
    assert written == 3
    rows = await postgres.fetch("SELECT embedding, meta FROM http_document ORDER BY created")
    assert [row["embedding"].tolist() for row in rows] == [[2.0, 1.0, 0.0], [4.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    assert [row["meta"] for row in rows] == [{"n": 1}, {"n": 2}, {"n": 3}]
    found = await index.search(HTTPDocument, query=b"xxxx", limit=1)
    assert found[0].url == "b"
    assert await index.index(HTTPDocument, values=[], attribute="body") == 0


async def test_bad_vectors_are_refused_before_anything_is_written(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres, embedding=HashingEmbedding(4))
    await index.create_table(Chunk, dimension=4)
    good = [0.5, 0.5, 0.5, 0.5]
    cases: list[tuple[list[Any], type[Exception], str]] = [
        ([good, [1.0, 2.0, 3.0]], DimensionMismatchError, "expected vectors of dimension 4, got 3"),
        ([[1.0] * 5, [1.0] * 5], DimensionMismatchError, "expected vectors of dimension 4, got 5"),
        ([good, [1.0, math.nan, 0.0, 0.0]], ValueError, "NaN or infinite"),
        ([good, [1.0, math.inf, 0.0, 0.0]], ValueError, "NaN or infinite"),
        ([good, [0.0, 0.0, 0.0, 0.0]], ValueError, "all zeros"),
        ([good, "text is fine", [1.0, 2.0]], DimensionMismatchError, "got 2"),
        ([good, {"not": "a vector"}], TypeError, "neither text, bytes nor a vector"),
    ]
    for vectors, error, message in cases:
        chunks = [Chunk(f"c{i}", "t") for i in range(len(vectors))]
        with pytest.raises(error, match=message):
            await index.index(Chunk, values=chunks, attribute=lambda c, v=vectors: v[int(c.identifier[1:])])
    with pytest.raises(DimensionMismatchError) as mismatch:
        await PostgresVectorIndex(postgres, embedding=HashingEmbedding(6)).index(
            Chunk, values=[Chunk("a", "b")], attribute="text"
        )
    assert (mismatch.value.expected, mismatch.value.actual) == (4, 6)
    with pytest.raises(EmbeddingMissingError, match="no image_embedding"):
        await index.index(Chunk, values=[Chunk("a", "b")], attribute=lambda _: b"image")
    with pytest.raises(ValueError, match="no attribute 'missing'"):
        await index.index(Chunk, values=[Chunk("a", "b")], attribute="missing")
    with pytest.raises(TypeError, match="got a str value"):
        await index.index(Chunk, values=["not a chunk"], attribute="text")  # type: ignore[list-item]
    with pytest.raises(ValueError, match="one per value"):
        await index.index(Chunk, values=[Chunk("a", "b")], attribute="text", meta=[{}, {}])
    with pytest.raises(ValueError, match=r"payload 1 .*NUL"):
        await index.index(Chunk, values=[Chunk("a", "b"), Chunk("c", "d\x00")], attribute="identifier")
    with pytest.raises(TypeError, match="meta 0 is not JSON"):
        await index.index(Chunk, values=[Chunk("a", "b")], attribute="text", meta={"when": object()})
    plain = PostgresVectorIndex(postgres, converter=cattrs.Converter())  # leaves bytes as bytes
    with pytest.raises(TypeError, match="payload 0 is not JSON"):
        await plain.index(
            HTTPDocument, values=[HTTPDocument("u", b"png")], attribute=lambda _: good, table="chunk"
        )
    assert await postgres.fetch_value("SELECT count(*) FROM chunk") == 0


async def test_index_joins_the_transaction_in_scope(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres, embedding=HashingEmbedding(4))
    await index.create_table(Chunk, dimension=4)
    with pytest.raises(RuntimeError):
        async with postgres.transaction():
            await index.index(Chunk, values=[Chunk("a", "one"), Chunk("b", "two")], attribute="text")
            assert len(await index.search(Chunk)) == 2
            raise RuntimeError("roll back")
    assert await index.search(Chunk) == []


async def test_a_terminated_copy_ends_in_an_error_not_a_hang(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=64, index=None)
    vectors = unit_rows(2000, 64)
    chunks = chunks_for(vectors) * 150  # 300,000 rows: the COPY lasts long enough to be cut

    async def terminate_the_copy() -> bool:
        for _ in range(3000):
            pid = await postgres.fetch_value(
                "SELECT pid FROM pg_stat_activity WHERE query LIKE 'COPY%' AND pid <> pg_backend_pid()"
            )
            if pid is not None:
                return bool(await postgres.fetch_value("SELECT pg_terminate_backend($1)", pid))
            await asyncio.sleep(0.01)
        return False

    killer = asyncio.create_task(terminate_the_copy())
    with pytest.raises(DatabaseError) as failure:
        await asyncio.wait_for(
            index.index(Chunk, values=chunks, attribute=lambda c: vectors[c.rank]), timeout=60
        )
    assert await killer
    assert failure.value.query == "vectors_copy"
    assert (
        str(failure.value.sqlstate).startswith("08") or failure.value.sqlstate == "57P01"
    )  # lost, or told why
    assert await postgres.fetch_value("SELECT count(*) FROM chunk") == 0


# -- search -----------------------------------------------------------------------------------------


async def test_exact_search_is_the_brute_force_top_k(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=32, index=None)
    vectors = unit_rows(2000, 32)
    await load(index, vectors, topics=("red", "green", "blue"))
    topics = ["red", "green", "blue"]
    for seed in range(5):
        query = unit_rows(1, 32, seed=100 + seed)[0] * 3.0  # scale does not change cosine
        found = await index.search_scored(Chunk, query=query, limit=10)
        expected = brute_force(vectors, query, 10)
        assert [chunk.identifier for chunk, _ in found] == [identifier for identifier, _ in expected]
        np.testing.assert_allclose([score for _, score in found], [score for _, score in expected], atol=1e-5)
        blue = brute_force(vectors, query, 7, allowed=[topics[i % 3] == "blue" for i in range(2000)])
        found = await index.search_scored(
            Chunk, query=list(query), limit=7, requirements=R.equal("topic", "blue")
        )
        assert [(chunk.identifier, chunk.topic) for chunk, _ in found] == [(i, "blue") for i, _ in blue]
        threshold = (expected[4][1] + expected[5][1]) / 2
        within = await index.search_scored(Chunk, query=tuple(query), limit=10, score_threshold=threshold)
        assert [chunk.identifier for chunk, _ in within] == [identifier for identifier, _ in expected[:5]]
        assert all(score >= threshold for _, score in within)


async def test_search_takes_text_and_rejects_bad_arguments(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres, embedding=HashingEmbedding(64))
    await index.create_table(Chunk, dimension=64)
    texts = ["the cat sat on the mat", "dogs chase cats", "stock markets fell today", "a cat and a hat"]
    await index.index(Chunk, values=[Chunk(f"c{i}", t) for i, t in enumerate(texts)], attribute="text")
    found = await index.search_scored(Chunk, query="the cat on the mat", limit=2)
    assert found[0][0].identifier == "c0" and found[0][1] > found[1][1]
    assert len(await index.search(Chunk, query="cat", limit=8)) == 4
    assert await index.search(Chunk, query="cat", score_threshold=1.0) == []
    for bad in (
        {"limit": 0},
        {"limit": -1},
        {"score_threshold": 1.5},
        {"score_threshold": -1.01},
        {"score_threshold": math.nan},
        {"ef_search": 0},
        {"probes": 0},
    ):
        with pytest.raises(ValueError):
            await index.search(Chunk, query="cat", **bad)
    with pytest.raises(ValueError, match="need a query"):
        await index.search(Chunk, score_threshold=0.5)
    with pytest.raises(DimensionMismatchError):
        await index.search(Chunk, query=[1.0, 2.0])
    with pytest.raises(ValueError, match="all zeros"):
        await index.search(Chunk, query=[0.0] * 64)
    with pytest.raises(TypeError, match="query is a text"):
        await index.search(Chunk, query=3)
    with pytest.raises(EmbeddingMissingError, match="no image_embedding"):
        await index.search(Chunk, query=b"png")


async def test_rerank_returns_limit_diverse_rows(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres, mmr_multiplier=4)
    await index.create_table(Chunk, dimension=2, index=None)
    # five near-duplicates at angle 0.1 from the query, five rows spread further away
    angles = [0.100, 0.101, 0.102, 0.103, 0.104, -0.25, 0.5, -0.6, 0.9, -1.0]
    vectors = np.array([[math.cos(a), math.sin(a)] for a in angles], dtype=np.float32)
    await load(index, vectors)
    plain = await index.search(Chunk, query=[1.0, 0.0], limit=3)
    assert [chunk.identifier for chunk in plain] == ["c0", "c1", "c2"]
    diverse = await index.search(Chunk, query=[1.0, 0.0], limit=3, rerank=True)
    # MMR, diversity 0.5: c0 first; then max over c of 0.5 cos(a_c) - 0.5 cos(a_c - 0.1): c9 (0.043)
    # beats c7 (0.030), c5 (0.015) and every duplicate (-0.0025); then c5 (0.5 cos 0.25 - 0.5 cos 0.35)
    assert [chunk.identifier for chunk in diverse] == ["c0", "c9", "c5"]
    assert len(await index.search(Chunk, query=[1.0, 0.0], limit=8, rerank=True)) == 8
    filtered = await index.search(
        Chunk, query=[1.0, 0.0], limit=2, rerank=True, requirements=R.greater("rank", 6)
    )
    assert len(filtered) == 2 and all(chunk.rank > 6 for chunk in filtered)
    with pytest.raises(ValueError, match="need a query"):
        await index.search(Chunk, rerank=True)


async def test_newest_first_with_requirements(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=4)
    await load(index, unit_rows(20, 4), topics=("a", "b"))
    found = await index.search_scored(Chunk, limit=3, requirements=R.equal("topic", "a"))
    assert [chunk.identifier for chunk, _ in found] == ["c18", "c16", "c14"]
    assert all(math.isnan(score) for _, score in found)


async def test_search_settings_stay_inside_the_search(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=4)
    await load(index, unit_rows(50, 4))
    async with postgres.transaction():
        await index.search(Chunk, query=[1.0, 0, 0, 0], limit=1)  # loads pgvector in this session
        before = await postgres.fetch(
            "SELECT name, setting FROM pg_settings WHERE name ~ '^(hnsw|ivfflat)[.]|^enable_indexscan$'"
        )
        found = await index.search(
            Chunk, query=[1.0, 0, 0, 0], limit=5, ef_search=77, requirements=R.exists("text")
        )
        assert len(found) == 5
        after = await postgres.fetch(
            "SELECT name, setting FROM pg_settings WHERE name ~ '^(hnsw|ivfflat)[.]|^enable_indexscan$'"
        )
        assert {r["name"] for r in before} >= {"hnsw.ef_search", "hnsw.iterative_scan", "enable_indexscan"}
        assert before == after


async def test_a_seed_table_with_its_ivfflat_index_works(postgres: Postgres) -> None:
    await postgres.execute(
        """
        CREATE TABLE chunk (
            id UUID NOT NULL DEFAULT gen_random_uuid(),
            embedding VECTOR(1536) NOT NULL,
            payload JSONB NOT NULL,
            meta JSONB NOT NULL,
            created TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
        );
        CREATE INDEX IF NOT EXISTS chunk_embedding_idx
            ON chunk
            USING ivfflat (embedding vector_cosine_ops)
            WITH (lists = 100);
        """
    )
    index = PostgresVectorIndex(embedding=HashingEmbedding(1536))  # the current pool, as the seed does
    texts = [f"note {i} on {'postgres' if i % 3 == 0 else 'python'} and vectors" for i in range(40)]
    await index.index(
        Chunk, values=[Chunk(f"c{i}", t, rank=i) for i, t in enumerate(texts)], attribute="text"
    )
    await postgres.execute("ANALYZE chunk")
    found = await index.search(Chunk, query="note 3 on postgres", limit=10)
    assert len(found) == 10 and found[0].identifier == "c3"
    only = await index.search(Chunk, query="python", limit=5, requirements=R.text_match("text", "POSTGRES"))
    assert len(only) == 5 and all("postgres" in chunk.text for chunk in only)
    assert len(await index.search(Chunk, query="python", limit=40, rerank=True)) == 40
    assert await index.delete(Chunk, requirements=R.less("rank", 10)) == 10
    with pytest.raises(ValueError, match="everything=True"):
        await index.delete(Chunk)
    with pytest.raises(ValueError, match="not both"):
        await index.delete(Chunk, requirements=R.exists("text"), everything=True)
    assert await index.delete(Chunk, everything=True) == 30


# -- indexes that serve the queries -----------------------------------------------------------------


async def _fill_large(dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=dsn) as postgres:
        index = PostgresVectorIndex(postgres)
        await index.create_table(Chunk, dimension=16, index=None)
        await load(index, unit_rows(20_000, 16), topics=[f"topic-{i}" for i in range(200)])
        await index.create_table(Chunk, dimension=16)  # adds the indexes to the loaded table
        await postgres.execute("ANALYZE chunk")


@pytest.fixture(scope="module")
def large_database(template_ready: str) -> Iterator[str]:
    """A migrated database of the module's own with 20,000 rows of dimension 16 in 200 topics, every
    index built and analysed: built once, for the tests below, which only read it (EXPLAIN without
    ANALYZE, searches, SET LOCAL). Its DSN, direct."""
    name = asyncio.run(clone(template_ready, TEMPLATE_DATABASE))
    try:
        dsn = with_database(template_ready, name)
        asyncio.run(_fill_large(dsn))
        yield dsn
    finally:
        asyncio.run(drop(template_ready, name))


@pytest.fixture
async def large_postgres(bouncer: PgBouncer | None, large_database: str) -> AsyncIterator[Postgres]:
    """A pool of the test's own on `large_database`, active as the current pool (through PgBouncer
    when PGSTASH_TEST_POOLER is set, as `postgres` is)."""
    with pooled(bouncer, large_database) as dsn:
        async with PostgresConnectionPool.of(dsn=dsn) as pool:
            yield pool


@pytest.fixture
def large(large_postgres: Postgres) -> PostgresVectorIndex:
    return PostgresVectorIndex(large_postgres)


@pytest.mark.scale
async def test_explain_shows_the_indexes_serving_the_queries(
    large_postgres: Postgres, large: PostgresVectorIndex
) -> None:
    query = unit_rows(1, 16, seed=7)[0]
    topk = await plan_of(large_postgres, lambda: large.search(Chunk, query=query, limit=10))
    assert '"Index Name": "chunk_embedding_idx"' in topk and '"Node Type": "Index Scan"' in topk
    equal = await plan_of(
        large_postgres, lambda: large.search(Chunk, limit=10, requirements=R.equal("topic", "topic-7"))
    )
    assert '"Index Name": "chunk_payload_idx"' in equal and "Bitmap Index Scan" in equal
    deleting = await plan_of(
        large_postgres, lambda: large.delete(Chunk, requirements=R.contains("tags", "x"))
    )
    assert '"Index Name": "chunk_payload_idx"' in deleting
    newest = await plan_of(large_postgres, lambda: large.search(Chunk, limit=10))
    assert '"Index Name": "chunk_created_idx"' in newest


@pytest.mark.scale
async def test_filtered_hnsw_search_still_returns_limit_rows(
    large_postgres: Postgres, large: PostgresVectorIndex
) -> None:
    query = unit_rows(1, 16, seed=8)[0]
    selective = R.greater_or_equal("rank", 19_900)  # 100 of 20,000 rows (0.5%), a filter no index serves
    plan = await plan_of(
        large_postgres,
        lambda: large.search(Chunk, query=query, limit=10, requirements=selective),
        name="vectors_search",
    )
    assert '"Index Name": "chunk_embedding_idx"' in plan  # HNSW serves it, the filter runs during the scan
    async with large_postgres.transaction():  # the pool's connections iterate: turned off for the premise
        await large_postgres.execute("SET LOCAL hnsw.iterative_scan = off")
        plain = await large_postgres.fetch(
            "SELECT payload FROM chunk WHERE (payload ->> 'rank')::INT >= 19900 "
            "ORDER BY embedding <=> $1 LIMIT 10",
            query,
        )
    assert len(plain) < 10, "premise: a plain filtered HNSW scan comes up short"
    found = await large.search_scored(Chunk, query=query, limit=10, requirements=selective)
    assert len(found) == 10 and all(chunk.rank >= 19_900 for chunk, _ in found)
    assert [score for _, score in found] == sorted((score for _, score in found), reverse=True)
    vectors = unit_rows(20_000, 16)
    exact = brute_force(vectors, query, 10, allowed=[i >= 19_900 for i in range(20_000)])
    assert len({chunk.identifier for chunk, _ in found} & {identifier for identifier, _ in exact}) >= 8
    few = await large.search(Chunk, query=query, limit=10, requirements=R.greater_or_equal("rank", 19_996))
    assert sorted(chunk.rank for chunk in few) == [19_996, 19_997, 19_998, 19_999]  # fewer match: all
    gin = await large.search(Chunk, query=query, limit=10, requirements=R.equal("topic", "topic-3"))
    assert len(gin) == 10 and all(chunk.topic == "topic-3" for chunk in gin)
    many = await large.search(Chunk, query=query, limit=60, requirements=R.less("rank", 2000))
    assert len(many) == 60 and all(chunk.rank < 2000 for chunk in many)


@pytest.mark.scale
async def test_without_iterative_scans_the_fallback_is_exact(
    large_postgres: Postgres, large: PostgresVectorIndex
) -> None:
    from pgstash.vectors.facts import tables as remembered

    tables = remembered(large_postgres)
    query = unit_rows(1, 16, seed=9)[0]
    await large.search(Chunk, query=query, limit=1)  # reads the table's facts
    tables["chunk"] = attrs.evolve(tables["chunk"], iterative=False)  # as on pgvector < 0.8
    found = await large.search_scored(Chunk, query=query, limit=10, requirements=R.equal("topic", "topic-5"))
    rows = await large_postgres.fetch("SELECT embedding FROM chunk ORDER BY created")
    vectors = np.stack([row["embedding"] for row in rows])
    expected = brute_force(vectors, query, 10, allowed=[i % 200 == 5 for i in range(20_000)])
    assert [chunk.identifier for chunk, _ in found] == [identifier for identifier, _ in expected]


# -- DDL at production scale (issue 17: 4, 8, 9) ---------------------------------------------------


async def test_create_table_on_a_complete_table_takes_no_lock(postgres: Postgres, database_dsn: str) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=4)
    await load(index, unit_rows(10, 4))
    ingest = await asyncpg.connect(database_dsn)  # an open ingest: ROW EXCLUSIVE until it ends
    try:
        await ingest.execute("BEGIN; LOCK TABLE chunk IN ROW EXCLUSIVE MODE")
        with sent(postgres) as statements:
            await asyncio.wait_for(index.create_table(Chunk, dimension=4), timeout=30)
        ran = [statement.name for statement in statements]
        assert ran == ["vectors_table_facts"]  # one catalog read, no DDL, no lock
    finally:
        await ingest.close()


async def test_create_table_on_a_table_with_rows_builds_concurrently(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=4, index=None)
    await load(index, unit_rows(50, 4))
    with sent(postgres) as statements:
        await index.create_table(Chunk, dimension=4)
    ran = [statement.name for statement in statements]
    built = [name for name in ran if name.startswith("vector_table_")]
    assert built == ["vector_table_hnsw_index_concurrently"]  # index=None made the other two
    assert "begin" not in ran and "vectors_ddl_settings" in ran
    assert set(
        await postgres.fetch_value(
            "SELECT array_agg(indexrelid::regclass::text) FROM pg_index WHERE indrelid = 'chunk'::regclass "
            "AND indisvalid"
        )
    ) == {"chunk_pkey", "chunk_embedding_idx", "chunk_payload_idx", "chunk_created_idx"}


async def test_ddl_gives_up_after_its_lock_timeout_and_a_later_call_completes(
    postgres: Postgres, database_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pgstash.vectors.write import tables

    monkeypatch.setattr(tables, "DDL_LOCK_TIMEOUT", "200ms")
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=4, index=None)
    await load(index, unit_rows(50, 4))
    other = await asyncpg.connect(database_dsn)  # a maintenance job holding a conflicting lock
    try:
        await other.execute("BEGIN; LOCK TABLE chunk IN SHARE UPDATE EXCLUSIVE MODE")
        with pytest.raises(DatabaseError) as waited:
            await asyncio.wait_for(index.create_table(Chunk, dimension=4), timeout=30)
        assert waited.value.sqlstate == "55P03"
        assert await postgres.fetch_value("SHOW lock_timeout") == "0"  # the session setting was put back
    finally:
        await other.close()
    await index.create_table(Chunk, dimension=4)  # drops what the failed build left, builds again
    assert (
        await postgres.fetch_value(
            "SELECT count(*) FROM pg_index WHERE indrelid = 'chunk'::regclass AND NOT indisvalid"
        )
        == 0
    )
    assert len(await index.search(Chunk, query=[1.0, 0, 0, 0], limit=3)) == 3


async def test_vectors_are_stored_inline_in_new_and_existing_tables(postgres: Postgres) -> None:
    await postgres.execute(
        "CREATE TABLE chunk (id UUID NOT NULL DEFAULT gen_random_uuid(), embedding VECTOR(768) NOT NULL, "
        "payload JSONB NOT NULL, meta JSONB NOT NULL, created TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    storage = (
        "SELECT attstorage::text FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'embedding'"
    )
    assert await postgres.fetch_value(storage, "chunk") == "e"  # pgvector's default: out of line
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=768)
    await index.create_table(Chunk, dimension=768, table="fresh")
    assert [await postgres.fetch_value(storage, table) for table in ("chunk", "fresh")] == ["m", "m"]
    await load(index, unit_rows(20, 768))
    out_of_line = await postgres.fetch_value(
        "SELECT count(*) FROM chunk WHERE pg_column_toast_chunk_id(embedding) IS NOT NULL"
    )
    assert out_of_line == 0  # 768 dimensions (3 KB) stay in the heap


@pytest.mark.direct_only("counts the plans of named prepared statements, which no transaction pooler keeps")
async def test_filtered_vector_statements_are_right_whatever_plans_the_server_makes(
    postgres: Postgres, database_dsn: str
) -> None:
    """Under a database-wide `force_generic_plan`, pgstash's connections still run `auto` (set at
    connect, under the caller's own settings), so the gate keeps filtered searches, listings and
    deletes on custom plans (no generic plan is ever made for them) and the rows are right."""
    await postgres.execute(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET plan_cache_mode = force_generic_plan', "
        "current_database()); END $$"
    )
    async with PostgresConnectionPool.of(dsn=database_dsn) as generic:
        index = PostgresVectorIndex(generic)
        await index.create_table(Chunk, dimension=4, index=None)
        vectors = unit_rows(2_000, 4)
        await load(index, vectors, topics=("rare", *["common"] * 99))
        await index.create_table(Chunk, dimension=4)  # HNSW from the rows
        modes: dict[str, set[str]] = {}

        async def mode_of(statement: Statement) -> None:
            mode = await generic.fetch_value("SELECT current_setting('plan_cache_mode')")
            modes.setdefault(statement.name, set()).add(mode)

        with sent(generic, mode_of):
            query = unit_rows(1, 4, seed=3)[0]
            for _ in range(6):  # past the five custom plans the server makes before it may go generic
                for topic in ("rare", "common"):
                    found = await index.search(
                        Chunk, query=query, limit=5, requirements=R.equal("topic", topic)
                    )
                    allowed = [
                        chunk.topic == topic for chunk in chunks_for(vectors, ("rare", *["common"] * 99))
                    ]
                    assert [chunk.identifier for chunk in found] == [
                        identifier for identifier, _ in brute_force(vectors, query, 5, allowed)
                    ]
                newest = await index.search(Chunk, limit=3, requirements=R.equal("topic", "common"))
                assert [chunk.rank for chunk in newest] == [1_999, 1_998, 1_997]
            assert await index.delete(Chunk, requirements=R.equal("topic", "rare")) == 20
        assert modes["vectors_search"] == modes["vectors_newest"] == {"auto"}
        plans = await generic.fetch_one(  # the gated statements this connection prepared
            "SELECT pg_catalog.sum(generic_plans) AS generic, pg_catalog.sum(custom_plans) AS custom "
            "FROM pg_catalog.pg_prepared_statements WHERE statement LIKE '%1000000000000::BIGINT%' "
            "AND statement NOT LIKE '%pg_prepared_statements%'"
        )
        assert plans is not None and plans["custom"] >= 6 and plans["generic"] == 0


class Note:
    """A model that is neither attrs nor a dataclass: the converter below knows it."""

    def __init__(self, key: str, text: str) -> None:
        self.key, self.text = key, text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Note) and (self.key, self.text) == (other.key, other.text)

    __hash__ = None  # type: ignore[assignment]


async def test_a_model_the_converter_structures_is_stored_and_read_back(postgres: Postgres) -> None:
    converter = cattrs.Converter()
    converter.register_unstructure_hook(Note, lambda note: {"id": note.key, "text": note.text})
    converter.register_structure_hook(Note, lambda payload, _: Note(payload["id"], payload["text"]))
    index = PostgresVectorIndex(postgres, embedding=HashingEmbedding(16), converter=converter)
    await index.create_table(Note, dimension=16)
    await index.index(Note, values=[Note("n1", "red apples"), Note("n2", "green pears")], attribute="text")
    found = await index.search(Note, query="apples", limit=1, requirements=AttributeRequirement.exists("id"))
    assert list(found) == [Note("n1", "red apples")]
    stored = await postgres.fetch_value("SELECT payload FROM note WHERE payload ->> 'id' = 'n2'")
    assert stored == {"id": "n2", "text": "green pears"}

    class Unknown:
        pass

    with pytest.raises(TypeError, match="Unknown"):
        await index.search(Unknown, limit=1)
