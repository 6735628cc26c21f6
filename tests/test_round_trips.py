"""Issue 13, one round trip per call: every common vector search is one statement on the wire.

pgvector's iterative index scans are set once per connection (asyncpg `server_settings`, under the
caller's own); per-call settings (ef_search, probes, the filtered HNSW walk's bound) are set inside
the search statement (`vectors_scan_gate`). Round trips are counted by a TCP relay
(`bench/roundtrips.py`); each search's rows are checked against an exact search in numpy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from bench.roundtrips import RoundTripCounter

from pgstash import AttributeRequirement as R
from pgstash import Postgres, PostgresConnectionPool, PostgresVectorIndex
from pgstash.connection.pool import SCAN_SETTINGS
from tests.support.statements import logged
from tests.support.vectors import Chunk, brute_force, chunks_for, load, unit_rows

TOPICS = ("rare", *["common"] * 99)  # 1 row in 100 is "rare"
ROWS = 1_000


@pytest.fixture
async def counted(database_dsn: str) -> AsyncIterator[tuple[RoundTripCounter, Postgres]]:
    """A one-connection pool behind the round-trip counter."""
    async with (
        RoundTripCounter(database_dsn) as counter,
        PostgresConnectionPool.of(dsn=counter.dsn, min_size=1, max_size=1) as postgres,
    ):
        yield counter, postgres


async def tables(postgres: Postgres, rows: int = ROWS) -> tuple[PostgresVectorIndex, np.ndarray]:
    """`chunk` with HNSW, `chunk_ivf` with IVFFlat (one list: an IVFFlat scan is then exact), the
    same rows in both, GIN on payload."""
    index = PostgresVectorIndex(postgres)
    vectors = unit_rows(rows, 8)
    await index.create_table(Chunk, dimension=8, index=None)
    await load(index, vectors, TOPICS)
    await index.create_table(Chunk, dimension=8)  # HNSW from the rows
    await index.create_table(Chunk, dimension=8, index=None, table="chunk_ivf")
    await postgres.execute("INSERT INTO chunk_ivf SELECT * FROM chunk")
    await postgres.execute(
        "CREATE INDEX chunk_ivf_embedding_idx ON chunk_ivf USING ivfflat (embedding vector_cosine_ops) "
        "WITH (lists = 1)"
    )
    await postgres.execute("ANALYZE chunk")
    await postgres.execute("ANALYZE chunk_ivf")
    return index, vectors


def exact(
    vectors: np.ndarray, query: np.ndarray, limit: int, requirement: Callable[[Chunk], bool]
) -> list[str]:
    allowed = [requirement(chunk) for chunk in chunks_for(vectors, TOPICS)]
    return [identifier for identifier, _ in brute_force(vectors, query, limit, allowed)]


async def test_each_common_search_is_one_round_trip_with_the_exact_rows(
    counted: tuple[RoundTripCounter, Postgres],
) -> None:
    counter, postgres = counted
    index, vectors = await tables(postgres)
    query = unit_rows(1, 8, seed=7)[0]
    anything: Callable[[Chunk], bool] = lambda chunk: True  # noqa: E731
    common: Callable[[Chunk], bool] = lambda chunk: chunk.topic == "common"  # noqa: E731
    early: Callable[[Chunk], bool] = lambda chunk: chunk.rank < 500  # noqa: E731
    searches: dict[str, tuple[Callable[[], Awaitable[list[Chunk]]], list[str]]] = {
        "plain": (lambda: index.search(Chunk, query=query, limit=10), exact(vectors, query, 10, anything)),
        "filtered, GIN equality": (
            lambda: index.search(Chunk, query=query, limit=10, requirements=R.equal("topic", "common")),
            exact(vectors, query, 10, common),
        ),
        "filtered, no index serves it": (
            lambda: index.search(Chunk, query=query, limit=10, requirements=R.less("rank", 500)),
            exact(vectors, query, 10, early),
        ),
        "80 candidates (MMR)": (
            lambda: index.search(Chunk, query=query, limit=10, rerank=True),
            [],  # MMR picks among the 80 nearest: checked below
        ),
        "tuned": (
            lambda: index.search(Chunk, query=query, limit=10, ef_search=100),
            exact(vectors, query, 10, anything),
        ),
        "IVFFlat": (
            lambda: index.search(Chunk, query=query, limit=10, table="chunk_ivf"),
            exact(vectors, query, 10, anything),
        ),
        "IVFFlat, filtered": (
            lambda: index.search(
                Chunk, query=query, limit=10, table="chunk_ivf", requirements=R.less("rank", 500)
            ),
            exact(vectors, query, 10, early),
        ),
        "IVFFlat, filtered and tuned": (
            lambda: index.search(
                Chunk, query=query, limit=10, table="chunk_ivf", requirements=R.less("rank", 500), probes=1
            ),
            exact(vectors, query, 10, early),
        ),
    }
    for search, _ in searches.values():  # prepares every statement on the one connection
        await search()
    for kind, (search, expected) in searches.items():
        counter.reset()
        found = await search()
        assert counter.round_trips == 1, f"{kind}: {counter.round_trips} round trips"
        if expected:
            assert [chunk.identifier for chunk in found] == expected, kind
    # MMR's candidates are the 80 nearest: the 10 it picks are among them
    mmr = await searches["80 candidates (MMR)"][0]()
    assert {chunk.identifier for chunk in mmr} <= set(exact(vectors, query, 80, anything))
    # inside a transaction the per-call settings live in a rolled-back savepoint
    async with postgres.transaction():
        for kind, trips in (
            ("plain", 1),
            ("IVFFlat", 1),
            ("IVFFlat, filtered", 1),  # its gate sets nothing: no savepoint
            ("tuned", 3),
            ("filtered, GIN equality", 3),  # the HNSW walk's bound
            ("IVFFlat, filtered and tuned", 3),
        ):
            search, expected = searches[kind]
            counter.reset()
            found = await search()
            assert counter.round_trips == trips, f"{kind} in a transaction: {counter.round_trips}"
            assert [chunk.identifier for chunk in found] == expected, kind
        assert await postgres.fetch_value("SHOW hnsw.ef_search") == "40"
        assert await postgres.fetch_value("SHOW hnsw.max_scan_tuples") == "20000"


async def test_a_very_selective_filter_comes_back_short_and_runs_exactly_in_a_second_statement(
    counted: tuple[RoundTripCounter, Postgres], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bound on the filtered HNSW walk (10 candidates x 50 tuples) takes effect inside the
    statement: 20 rows of 4,000 match, the walk stops short and the exact statement finds them."""
    counter, postgres = counted
    index, vectors = await tables(postgres, 4_000)
    query = unit_rows(1, 8, seed=7)[0]
    late = R.greater_or_equal("rank", 3_980)  # no index serves it
    expected = exact(vectors, query, 10, lambda chunk: chunk.rank >= 3_980)
    await index.search(Chunk, query=query, limit=10, requirements=late)
    ran = await statements(postgres, monkeypatch)
    counter.reset()
    found = await index.search(Chunk, query=query, limit=10, requirements=late)
    assert ran == ["vectors_search", "vectors_search_exact"]
    assert counter.round_trips == 2
    assert [chunk.identifier for chunk in found] == expected
    # without the bound (pgvector's default, 20,000 tuples) the same walk finds them all at once
    async with postgres.session():
        await postgres.execute("SET hnsw.max_scan_tuples = 20000")
        rows = await postgres.fetch(
            "SELECT payload->>'identifier' FROM chunk WHERE (payload->>'rank')::int >= $2 "
            "ORDER BY embedding <=> $1 LIMIT 10",
            query,
            3_980,
        )
    assert len(rows) == 10


async def statements(postgres: Postgres, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the vector statements run from now on (a live list)."""
    return logged(monkeypatch, lambda name: name.startswith("vectors_s"))


async def test_ef_search_and_probes_take_effect_inside_the_search_statement(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With iterative scans turned off by the caller's own server_settings (the caller wins), an
    HNSW scan yields at most ef_search rows and an IVFFlat scan only its probed lists: 100
    candidates come back short (and run exactly) unless ef_search / probes given to the call
    raise them, in the same statement."""
    off = {"hnsw.iterative_scan": "off", "ivfflat.iterative_scan": "off"}
    async with (
        RoundTripCounter(database_dsn) as counter,
        PostgresConnectionPool.of(dsn=counter.dsn, min_size=1, max_size=1, server_settings=off) as postgres,
    ):
        index = PostgresVectorIndex(postgres)
        vectors = unit_rows(2_000, 8)
        await index.create_table(Chunk, dimension=8, index=None)
        await load(index, vectors)
        await index.create_table(Chunk, dimension=8)
        await index.create_table(Chunk, dimension=8, index=None, table="chunk_ivf")
        await postgres.execute("INSERT INTO chunk_ivf SELECT * FROM chunk")
        await postgres.execute(
            "CREATE INDEX chunk_ivf_embedding_idx ON chunk_ivf "
            "USING ivfflat (embedding vector_cosine_ops) WITH (lists = 40)"
        )
        assert await postgres.fetch_value("SHOW hnsw.iterative_scan") == "off"
        query = unit_rows(1, 8, seed=3)[0]
        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "hnsw": lambda: index.search(Chunk, query=query, limit=100),
            "hnsw, ef_search=100": lambda: index.search(Chunk, query=query, limit=100, ef_search=100),
            "ivfflat": lambda: index.search(Chunk, query=query, limit=100, table="chunk_ivf"),
            "ivfflat, probes=40": lambda: index.search(
                Chunk, query=query, limit=100, table="chunk_ivf", probes=40
            ),
        }
        for call in calls.values():
            await call()
        ran = await statements(postgres, monkeypatch)
        expected = exact(vectors, query, 100, lambda chunk: True)
        for kind, call, names in (
            ("hnsw", calls["hnsw"], ["vectors_search", "vectors_search_exact"]),  # 40 of 100
            ("hnsw, ef_search=100", calls["hnsw, ef_search=100"], ["vectors_search"]),
            ("ivfflat", calls["ivfflat"], ["vectors_search_relaxed", "vectors_search_exact"]),  # 1 list of 40
            ("ivfflat, probes=40", calls["ivfflat, probes=40"], ["vectors_search_relaxed"]),
        ):
            ran.clear()
            counter.reset()
            found = await call()
            assert ran == names, kind
            assert counter.round_trips == len(names), kind
            assert len(found) == 100, kind
            if kind != "hnsw, ef_search=100":  # exact, or every list probed
                assert [chunk.identifier for chunk in found] == expected, kind
        # the settings ended with their statement
        assert await postgres.fetch_value("SHOW hnsw.ef_search") == "40"
        assert await postgres.fetch_value("SHOW ivfflat.probes") == "1"


# -- the connection's settings ---------------------------------------------------------------


async def test_iterative_scans_are_set_at_connect_and_survive_reset_all(database_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=database_dsn, min_size=1, max_size=1) as postgres:
        show = "SELECT current_setting('hnsw.iterative_scan'), current_setting('ivfflat.iterative_scan')"
        wanted = (SCAN_SETTINGS["hnsw.iterative_scan"], SCAN_SETTINGS["ivfflat.iterative_scan"])
        assert tuple(await postgres.fetch_one(show)) == wanted  # type: ignore[arg-type]
        async with postgres.session():
            await postgres.execute("SET hnsw.iterative_scan = off")
            await postgres.execute("RESET ALL")
            assert tuple(await postgres.fetch_one(show)) == wanted  # type: ignore[arg-type]
            await postgres.execute("SET hnsw.iterative_scan = off")
            await postgres.execute("SELECT pg_advisory_lock(4243)")
        # the next user of the connection: the caller's SET and lock are gone, the scans stay
        assert tuple(await postgres.fetch_one(show)) == wanted  # type: ignore[arg-type]
        locks = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        assert await postgres.fetch_value(locks) == 0


async def test_the_callers_server_settings_win_and_replica_pools_get_the_same(database_dsn: str) -> None:
    settings = {"hnsw.iterative_scan": "relaxed_order", "application_name": "mine"}
    async with PostgresConnectionPool.of(
        dsn=database_dsn, server_settings=settings, replicas=[database_dsn], replica_wait=0
    ) as postgres:
        show = (
            "SELECT current_setting('hnsw.iterative_scan'), current_setting('ivfflat.iterative_scan'), "
            "current_setting('application_name')"
        )
        wanted = ("relaxed_order", SCAN_SETTINGS["ivfflat.iterative_scan"], "mine")
        assert tuple(await postgres.fetch_one(show)) == wanted  # type: ignore[arg-type]
        assert postgres.replicas is not None
        for replica in postgres.replicas.replicas:  # a standby's pool connects as the primary's does
            async with replica.pool.acquire() as connection:
                assert tuple(await connection.fetchrow(show)) == wanted


# -- plans -------------------------------------------------------------------------------------


GUARD = "1000000000000::BIGINT"  # the scan gate's branch only a generic plan keeps, in every gate


async def test_filtered_searches_keep_custom_plans_and_each_shape_is_prepared_once(
    counted: tuple[RoundTripCounter, Postgres],
) -> None:
    """Under the server's default plan_cache_mode (auto): a filtered search is planned for its
    values every time (its generic plan, the filter unknown, would sort every row the GIN index
    returns for a common filter); each shape is one prepared statement, reused."""
    _, postgres = counted
    index, _ = await tables(postgres)
    query = unit_rows(1, 8, seed=7)[0]
    for _ in range(4):
        for topic in ("common", "rare"):
            await index.search(Chunk, query=query, limit=10, requirements=R.equal("topic", topic))
        await index.search(Chunk, query=query, limit=10, requirements=R.less("rank", 500))
        await index.search(Chunk, query=query, limit=10)
        await index.search(Chunk, query=query, limit=10)
        await index.search(Chunk, limit=10, requirements=R.equal("topic", "rare"))  # newest first
        await index.search(Chunk, limit=10, requirements=R.equal("topic", "common"))
    listings = await postgres.fetch(
        "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
        "WHERE statement LIKE 'SELECT /* pgstash:% */ payload%ORDER BY created DESC%' "
        "AND statement LIKE '%1000000000000::BIGINT%'"  # the gate's never-run branch
    )
    assert [tuple(row) for row in listings] == [(0, 8)]
    plans = await postgres.fetch(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements "
        "WHERE statement LIKE 'SELECT /* pgstash:vectors_search */%'"
    )
    filtered = [row for row in plans if GUARD in row["statement"]]
    plain = [row for row in plans if GUARD not in row["statement"]]
    assert len(filtered) == 2 and len(plain) == 1
    assert all(row["generic_plans"] == 0 and row["custom_plans"] >= 4 for row in filtered)
    assert plain[0]["generic_plans"] + plain[0]["custom_plans"] == 8  # one statement, prepared once
