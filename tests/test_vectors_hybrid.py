"""Full-text and hybrid search (reciprocal rank fusion in one statement) and upserts by key, on a
real PostgreSQL with pgvector."""

from __future__ import annotations

import asyncio
import contextvars
import json
import uuid
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
import pytest
from numpy.typing import NDArray

from pgstash import AttributeRequirement, Postgres, PostgresVectorIndex, SchemaMissingError
from tests.support.vectors import plan_of, unit_rows

R = AttributeRequirement

WORDS = (
    "postgres vacuum index btree gin hnsw query planner tuple page buffer checkpoint wal replica "
    "standby lock deadlock timeout cursor portal schema role grant sequence trigger function"
).split()


@attrs.frozen
class Note:
    key: str
    body: str
    topic: str = "general"
    version: int = 1


def notes(count: int, seed: int = 0, version: int = 1) -> list[Note]:
    rng = np.random.default_rng(seed)
    made = []
    for i in range(count):
        body = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 12)))) + f" item{i}"
        if i % 17 == 0:
            body += " JSONDecodeError"
        made.append(Note(f"n{i}", body, topic=f"t{i % 3}", version=version))
    return made


async def loaded(
    postgres: Postgres, count: int = 300, index: str | None = None
) -> tuple[PostgresVectorIndex, list[Note], NDArray[np.float32]]:
    """`count` notes in a table with the text column; `index` built after the rows (from data)."""
    store = PostgresVectorIndex(postgres)
    await store.create_table(Note, dimension=8, index=None, text="body")
    values = notes(count)
    vectors = unit_rows(count, 8)
    by_key = {note.key: vector for note, vector in zip(values, vectors, strict=True)}
    await store.index(Note, values=values, attribute=lambda note: by_key[note.key])
    if index is not None:
        await store.create_table(Note, dimension=8, index=index, text="body")
    return store, values, vectors


def fused(
    vector: Sequence[tuple[Note, float]],
    text: Sequence[tuple[Note, float]],
    k: int,
    weights: tuple[float, float],
) -> list[tuple[str, float]]:
    """Reciprocal rank fusion in Python, as the issue defines it."""
    vector_rank = {note.key: rank for rank, (note, _) in enumerate(vector, start=1)}
    text_rank = {note.key: rank for rank, (note, _) in enumerate(text, start=1)}
    keys = vector_rank.keys() | text_rank.keys()
    score = {
        key: (weights[0] / (k + vector_rank[key]) if key in vector_rank else 0.0)
        + (weights[1] / (k + text_rank[key]) if key in text_rank else 0.0)
        for key in keys
    }
    last = float("inf")
    order = sorted(keys, key=lambda key: (-score[key], vector_rank.get(key, last), text_rank.get(key, last)))
    return [(key, score[key]) for key in order]


# -- the text column --------------------------------------------------------------------------------


async def test_the_server_generates_and_indexes_the_text_column(postgres: Postgres) -> None:
    await loaded(postgres, 20)
    stored = await postgres.fetch("SELECT payload ->> 'key' AS key, text_vector::TEXT AS words FROM note")
    assert len(stored) == 20 and all(row["words"] for row in stored)
    expression = await postgres.fetch_value(
        "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef AS d JOIN pg_attribute AS a "
        "ON a.attrelid = d.adrelid AND a.attnum = d.adnum WHERE d.adrelid = 'note'::regclass "
        "AND a.attname = 'text_vector'"
    )
    assert expression == "to_tsvector('english'::regconfig, (payload #>> '{body}'::text[]))"
    assert "note_text_idx" in {
        row["indexname"]
        for row in await postgres.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'note'")
    }


async def test_language_must_be_a_configuration_the_server_has(postgres: Postgres) -> None:
    store = PostgresVectorIndex(postgres)
    for language in ("klingon", "English", "english'; DROP TABLE note; --", "", None):
        with pytest.raises(ValueError, match="english") as raised:
            await store.create_table(Note, dimension=8, text="body", language=language)
        assert "language" in str(raised.value)
    for text in ("body.", "body'", "a b", "1st", ".body"):
        with pytest.raises(ValueError):
            await store.create_table(Note, dimension=8, text=text)
    assert await postgres.fetch_value("SELECT to_regclass('note')") is None  # nothing was made
    await store.create_table(Note, dimension=8, text="body", language="simple")
    assert await postgres.fetch_value("SELECT 'running'::TEXT") == "running"
    found = await store.search(Note, query="running", mode="text")
    assert found == []  # nothing indexed yet; the search ran on the simple configuration


async def test_text_added_to_a_populated_table_covers_its_rows(postgres: Postgres) -> None:
    store = PostgresVectorIndex(postgres)
    await store.create_table(Note, dimension=8, index="hnsw")
    values = notes(200)
    await store.index(Note, values=values, attribute=lambda note: unit_rows(1, 8, seed=len(note.body))[0])
    with pytest.raises(SchemaMissingError, match=r"text="):
        await store.search(Note, query="vacuum", mode="text")
    await store.create_table(Note, dimension=8, index="hnsw", text="body")  # rewrites the table
    assert await postgres.fetch_value("SELECT count(*) FROM note") == 200
    expected = sum(1 for note in values if "JSONDecodeError" in note.body)
    found = await store.search(Note, query="JSONDecodeError", mode="text", limit=100)
    assert len(found) == expected and all("JSONDecodeError" in note.body for note in found)
    await store.create_table(Note, dimension=8, index="hnsw", text="body")  # idempotent
    with pytest.raises(ValueError, match="body"):
        await store.create_table(Note, dimension=8, index="hnsw", text="topic")


async def test_a_text_table_keeps_rows_of_up_to_4_kb_whole_in_the_heap(postgres: Postgres) -> None:
    """Issue 26 item 5: the text arm reads the tsvector of every row that matches; with the
    default toast_tuple_target (2 kB) a 384-dimension row's tsvector or payload went to TOAST, a
    TOAST index probe per matching row. The text column comes with toast_tuple_target = 4096, on
    a new table and on one given the column later (the ADD COLUMN rewrite moves its rows in); a
    table given it before moves in with the documented ALTER TABLE and a rewrite. The results
    are the same rows and scores wherever the values are kept."""
    toasted = (
        "SELECT count(*) FILTER (WHERE pg_column_toast_chunk_id(text_vector) IS NOT NULL "
        "OR pg_column_toast_chunk_id(payload) IS NOT NULL) FROM {}"
    )
    rng = np.random.default_rng(3)
    values = [Note(f"n{i}", " ".join(rng.choice(WORDS, size=90)) + f" item{i}") for i in range(300)]
    vectors = unit_rows(len(values), 384)
    store = PostgresVectorIndex(postgres, embedding=_constant(unit_rows(1, 384, seed=5)[0]))
    for table, later in (("note", False), ("note_later", True)):
        text = None if later else "body"
        await store.create_table(Note, dimension=384, index="hnsw", text=text, table=table)
        await store.index(Note, values=values, attribute=lambda note: vectors[int(note.key[1:])], table=table)
        if later:
            await store.create_table(Note, dimension=384, index="hnsw", text="body", table=table)  # a rewrite
        options = await postgres.fetch_value("SELECT reloptions FROM pg_class WHERE relname = $1", table)
        assert options == ["toast_tuple_target=4096"]
        assert await postgres.fetch_value(toasted.format(table)) == 0

    async def results() -> list[object]:
        found = []
        for words in ("vacuum checkpoint", "item7", "wal OR replica"):
            for mode in ("text", "hybrid"):
                scored = await store.search_scored(Note, query=words, mode=mode, limit=20)
                found.append([(note.key, score) for note, score in scored])
        return found

    before = await results()
    assert all(before)
    await postgres.execute("ALTER TABLE note RESET (toast_tuple_target)")  # a text table made before
    await postgres.execute("VACUUM FULL note")
    assert await postgres.fetch_value(toasted.format("note")) > 100
    assert await results() == before
    await postgres.execute("ALTER TABLE note SET (toast_tuple_target = 4096)")  # README: the migration
    await postgres.execute("VACUUM FULL note")
    assert await postgres.fetch_value(toasted.format("note")) == 0
    assert await results() == before


# -- text and hybrid search -------------------------------------------------------------------------


async def test_text_search_ranks_by_ts_rank_cd_then_newer(postgres: Postgres) -> None:
    store, _, _ = await loaded(postgres)
    found = await store.search_scored(Note, query="vacuum checkpoint", mode="text", limit=50)
    expected = await postgres.fetch(
        "SELECT payload ->> 'key' AS key, ts_rank_cd(text_vector, q) AS rank FROM note, "
        "websearch_to_tsquery('english', 'vacuum checkpoint') AS q WHERE text_vector @@ q "
        "ORDER BY rank DESC, created DESC LIMIT 50"
    )
    assert [(note.key, score) for note, score in found] == [(row["key"], row["rank"]) for row in expected]
    assert found and all("vacuum" in note.body and "checkpoint" in note.body for note, _ in found)
    with pytest.raises(ValueError, match="score_threshold"):
        await store.search(Note, query="vacuum", mode="text", score_threshold=0.5)
    with pytest.raises(TypeError):
        await store.search(Note, query=unit_rows(1, 8)[0], mode="text")
    with pytest.raises(ValueError, match="mode"):
        await store.search(Note, query="vacuum", mode="keyword")


@pytest.mark.parametrize(
    ("words", "k", "weights", "candidates"),
    [
        ("vacuum checkpoint", 60, (1.0, 1.0), 20),
        ("JSONDecodeError", 60, (1.0, 1.0), 20),
        ('"query planner" -btree', 10, (0.3, 2.0), 40),
        ("wal OR replica", 1, (1.0, 0.5), 25),
    ],
)
async def test_hybrid_is_the_rrf_of_the_vector_and_text_searches(
    postgres: Postgres, words: str, k: int, weights: tuple[float, float], candidates: int
) -> None:
    store, _, _ = await loaded(postgres)
    query = unit_rows(1, 8, seed=5)[0]
    # the query text is embedded for the vector arm: give the store an embedding that returns `query`
    store = attrs.evolve(store, embedding=_constant(query))
    vector = await store.search_scored(Note, query=words, mode="vector", limit=candidates)
    text = await store.search_scored(Note, query=words, mode="text", limit=candidates)
    hybrid = await store.search_scored(
        Note, query=words, mode="hybrid", limit=candidates, candidates=candidates, rrf_k=k, weights=weights
    )
    want = fused(vector, text, k, weights)
    assert [(note.key, score) for note, score in hybrid] == want[:candidates]
    top = await store.search_scored(
        Note, query=words, mode="hybrid", limit=5, candidates=candidates, rrf_k=k, weights=weights
    )
    assert [(note.key, score) for note, score in top] == want[:5]


async def test_the_text_arm_ranks_every_matching_row_by_ts_rank_cd(postgres: Postgres) -> None:
    """Issue 26 item 5 weighed bounding the text arm by a cheaper first pass (the best rows by
    ts_rank, then ts_rank_cd over those): on this corpus such a shortlist of twice the arm misses
    rows of the arm's true best (ts_rank saturates, ts_rank_cd sums covers), so it would change the
    fused result. Hybrid stays the RRF of the vector arm and ts_rank_cd over every match."""
    store = PostgresVectorIndex(postgres)
    await store.create_table(Note, dimension=8, index=None, text="body")
    rng = np.random.default_rng(7)
    values = [
        Note(f"n{i}", " ".join(rng.choice(WORDS[:6], size=int(rng.integers(4, 40)))) + f" item{i}")
        for i in range(1_500)
    ]
    vectors = unit_rows(len(values), 8)
    await store.index(Note, values=values, attribute=lambda note: vectors[int(note.key[1:])])
    words, candidates = "postgres vacuum", 20
    ranked = await postgres.fetch(
        "SELECT payload ->> 'key' AS key, ts_rank_cd(text_vector, q) AS rank, "
        "row_number() OVER (ORDER BY ts_rank(text_vector, q) DESC, created DESC) AS by_ts_rank "
        "FROM note, websearch_to_tsquery('english', $1) AS q WHERE text_vector @@ q "
        "ORDER BY rank DESC, created DESC",
        words,
    )
    assert len(ranked) > 10 * candidates  # a common query: most rows match
    best = ranked[:candidates]
    assert max(row["by_ts_rank"] for row in best) > 2 * candidates  # the shortlist would miss some
    store = attrs.evolve(store, embedding=_constant(unit_rows(1, 8, seed=5)[0]))
    vector = await store.search_scored(Note, query=words, mode="vector", limit=candidates)
    text = [(Note(row["key"], ""), row["rank"]) for row in best]
    hybrid = await store.search_scored(
        Note, query=words, mode="hybrid", limit=candidates, candidates=candidates
    )
    assert [(note.key, score) for note, score in hybrid] == fused(vector, text, 60, (1.0, 1.0))[:candidates]
    found = await store.search_scored(Note, query=words, mode="text", limit=candidates)
    assert [(note.key, score) for note, score in found] == [(row["key"], row["rank"]) for row in best]


async def test_requirements_apply_in_both_arms(postgres: Postgres) -> None:
    store, values, _ = await loaded(postgres)
    store = attrs.evolve(store, embedding=_constant(unit_rows(1, 8, seed=5)[0]))
    topic = R.equal("topic", "t1")
    found = await store.search(Note, query="JSONDecodeError", mode="hybrid", limit=60, requirements=topic)
    assert found and all(note.topic == "t1" for note in found)
    text = await store.search(Note, query="JSONDecodeError", mode="text", limit=60, requirements=topic)
    assert {note.key for note in text} == {
        note.key for note in values if note.topic == "t1" and "JSONDecodeError" in note.body
    }
    assert {note.key for note in text} <= {note.key for note in found}


async def test_a_query_of_stop_words_has_an_empty_text_arm(postgres: Postgres) -> None:
    store, _, _ = await loaded(postgres)
    store = attrs.evolve(store, embedding=_constant(unit_rows(1, 8, seed=5)[0]))
    assert await store.search(Note, query="the of and", mode="text") == []
    hybrid = await store.search_scored(Note, query="the of and", mode="hybrid", limit=10, candidates=20)
    vector = await store.search_scored(Note, query="the of and", mode="vector", limit=10)
    assert [note.key for note, _ in hybrid] == [note.key for note, _ in vector]
    assert [score for _, score in hybrid] == [1.0 / (60 + rank) for rank in range(1, 11)]


async def test_explain_shows_gin_and_hnsw_serving_the_arms(postgres: Postgres) -> None:
    store, _, _ = await loaded(postgres, 3_000, index="hnsw")
    await postgres.execute("ANALYZE note")
    store = attrs.evolve(store, embedding=_constant(unit_rows(1, 8, seed=5)[0]))
    plan = await plan_of(
        postgres, lambda: store.search(Note, query="item42", mode="hybrid", limit=10), name="vectors_hybrid"
    )
    assert '"Index Name": "note_embedding_idx"' in plan
    assert '"Index Name": "note_text_idx"' in plan


# -- upserts by key ---------------------------------------------------------------------------------


async def test_ingesting_twice_by_key_keeps_one_row_per_key_with_the_newest_content(
    postgres: Postgres,
) -> None:
    store = PostgresVectorIndex(postgres)
    await store.create_table(Note, dimension=8, index="hnsw", text="body")
    first = notes(1_000, version=1)
    second = [attrs.evolve(note, body=note.body + " replaced", version=2) for note in first]
    vectors = unit_rows(1_000, 8)
    assert (
        await store.index(Note, values=first, attribute=lambda n: vectors[int(n.key[1:])], key="key") == 1_000
    )
    ids = {
        row["key"]: row["id"] for row in await postgres.fetch("SELECT payload ->> 'key' AS key, id FROM note")
    }
    assert (
        await store.index(Note, values=second, attribute=lambda n: -vectors[int(n.key[1:])], key="key")
        == 1_000
    )
    rows = await postgres.fetch("SELECT id, payload, embedding FROM note")
    assert len(rows) == 1_000
    assert {row["payload"]["version"] for row in rows} == {2}
    namespace = uuid.uuid5(uuid.NAMESPACE_URL, "pgstash:vectors:note")
    assert all(row["id"] == uuid.uuid5(namespace, json.dumps(row["payload"]["key"])) for row in rows)
    assert {row["payload"]["key"]: row["id"] for row in rows} == ids
    replaced = await store.search(Note, query="replaced", mode="text", limit=5)
    assert len(replaced) == 5 and all(note.version == 2 for note in replaced)


async def test_duplicate_keys_in_one_call_are_refused_before_writing(postgres: Postgres) -> None:
    store = PostgresVectorIndex(postgres)
    await store.create_table(Note, dimension=8, index=None)
    values = [Note("a", "x"), Note("b", "y"), Note("a", "z")]
    with pytest.raises(ValueError, match=r"values 0 and 2 have the same key 'a'"):
        await store.index(Note, values=values, attribute=lambda n: unit_rows(1, 8)[0], key="key")
    assert await postgres.fetch_value("SELECT count(*) FROM note") == 0
    with pytest.raises(TypeError, match="key"):
        await store.index(Note, values=values[:1], attribute=lambda n: unit_rows(1, 8)[0], key=lambda n: 1.5)


async def test_delete_by_keys(postgres: Postgres) -> None:
    store = PostgresVectorIndex(postgres)
    await store.create_table(Note, dimension=8, index=None)
    values = notes(10)
    await store.index(
        Note, values=values, attribute=lambda n: unit_rows(1, 8)[0], key=Note.__attrs_attrs__.key
    )
    assert await store.delete(Note, keys=["n1", "n2", "missing"]) == 2
    left = {row["k"] for row in await postgres.fetch("SELECT payload ->> 'key' AS k FROM note")}
    assert left == {f"n{i}" for i in range(10)} - {"n1", "n2"}


def _constant(vector: NDArray[np.float32]) -> Any:
    async def embed(texts: Sequence[str]) -> NDArray[np.float32]:
        return np.stack([vector] * len(texts))

    return embed


async def test_concurrent_ingests_of_the_same_keys_replace_each_other(postgres: Postgres) -> None:
    store = PostgresVectorIndex(postgres)
    await store.create_table(Note, dimension=8, index=None)
    first, second = notes(50, version=1), notes(50, version=2)

    def vector(_: Note) -> NDArray[np.float32]:
        return unit_rows(1, 8)[0]

    async with postgres.transaction():  # the first ingest's rows and lock stay uncommitted ...
        await store.index(Note, values=first, attribute=vector, key="key")
        # ... while a second ingest of the same keys starts on another connection
        other = asyncio.create_task(
            store.index(Note, values=second, attribute=vector, key="key"), context=contextvars.Context()
        )
        await asyncio.sleep(0.5)
        assert not other.done()  # it waits for the first one's transaction
    assert await other == 50  # then replaces its rows, instead of failing on the primary key
    versions = await postgres.fetch("SELECT payload ->> 'version' AS v, count(*) AS n FROM note GROUP BY 1")
    assert [(row["v"], row["n"]) for row in versions] == [("2", 50)]


async def test_a_keyed_ingest_joins_the_transaction_in_scope(postgres: Postgres) -> None:
    store = PostgresVectorIndex(postgres)
    await store.create_table(Note, dimension=8, index=None)
    await store.index(Note, values=notes(5), attribute=lambda n: unit_rows(1, 8)[0], key="key")
    with pytest.raises(RuntimeError):
        async with postgres.transaction():
            await store.index(
                Note, values=notes(5, version=2), attribute=lambda n: unit_rows(1, 8)[0], key="key"
            )
            raise RuntimeError("the caller gives up")
    assert {row["v"] for row in await postgres.fetch("SELECT payload ->> 'version' AS v FROM note")} == {"1"}


async def test_hybrid_settings_are_checked(postgres: Postgres) -> None:
    store, _, _ = await loaded(postgres, 10)
    store = attrs.evolve(store, embedding=_constant(unit_rows(1, 8, seed=5)[0]))
    for options in (
        {"candidates": 3},  # fewer than limit
        {"candidates": 10_001},
        {"rrf_k": -1},
        {"rrf_k": 1.5},
        {"weights": (1.0,)},
        {"weights": (0.0, 0.0)},
        {"weights": (1.0, float("nan"))},
        {"weights": (-1.0, 1.0)},
    ):
        with pytest.raises(ValueError):
            await store.search(Note, query="vacuum", mode="hybrid", limit=5, **options)
    with pytest.raises(ValueError, match="candidates"):
        await store.search(Note, query="vacuum", limit=5, candidates=20)  # vector mode has no arms
    with pytest.raises(TypeError):
        await store.search(Note, query=None, mode="hybrid")
    with pytest.raises(ValueError, match="NUL"):
        await store.search(Note, query="a\x00b", mode="text")


async def test_hybrid_rerank_picks_limit_rows_among_the_fused_ones(postgres: Postgres) -> None:
    store, _, _ = await loaded(postgres)
    store = attrs.evolve(store, embedding=_constant(unit_rows(1, 8, seed=5)[0]))
    arms = [
        await store.search(Note, query="vacuum checkpoint", mode=mode, limit=20)
        for mode in ("vector", "text")
    ]
    reranked = await store.search_scored(
        Note, query="vacuum checkpoint", mode="hybrid", limit=5, candidates=20, rerank=True
    )
    assert len(reranked) == 5
    assert {note.key for note, _ in reranked} <= {note.key for arm in arms for note in arm}
