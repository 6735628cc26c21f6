"""The pool, the current pool, transactions, codecs, errors and the query log."""

from __future__ import annotations

import asyncio
import logging
import socket

import asyncpg
import attrs
import numpy as np
import pytest
from bench.roundtrips import RoundTripCounter

from pgstash import (
    AttributeRequirement,
    ConfigurationError,
    DatabaseError,
    Postgres,
    PostgresConnectionPool,
    PostgresVectorIndex,
    SchemaMissingError,
)
from pgstash.connection import current_postgres


async def test_no_dsn_anywhere_names_both_places(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGSTASH_DSN", raising=False)
    with pytest.raises(ConfigurationError, match=r"dsn=.*PGSTASH_DSN"):
        async with PostgresConnectionPool.of():
            pass


async def test_the_dsn_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, database_dsn: str) -> None:
    monkeypatch.setenv("PGSTASH_DSN", database_dsn)
    async with PostgresConnectionPool.of() as postgres:
        assert await postgres.fetch_value("SELECT 1") == 1


async def test_an_unreachable_server_says_what_to_check() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dsn = f"postgresql://user:secret@127.0.0.1:{port}/db"
    with pytest.raises(
        ConfigurationError, match=r"cannot reach PostgreSQL at .*\*\*\*@127\.0\.0\.1"
    ) as failure:
        async with PostgresConnectionPool.of(dsn=dsn):
            pass
    assert "secret" not in str(failure.value)


async def test_a_missing_database_says_to_create_it(template_ready: str) -> None:
    from tests.support.databases import with_database

    with pytest.raises(ConfigurationError, match="create the database"):
        async with PostgresConnectionPool.of(dsn=with_database(template_ready, "no_such_db")):
            pass


async def test_the_block_makes_the_pool_current(database_dsn: str) -> None:
    with pytest.raises(ConfigurationError, match="no PostgreSQL pool is active"):
        current_postgres()
    async with PostgresConnectionPool.of(dsn=database_dsn) as postgres:
        assert current_postgres() is postgres
        async with PostgresConnectionPool.of(dsn=database_dsn) as inner:
            assert current_postgres() is inner
        assert current_postgres() is postgres
    with pytest.raises(ConfigurationError):
        current_postgres()


async def test_jsonb_and_vectors_are_python_values(postgres: Postgres) -> None:
    document = {"a": [1, 2.5, None, True], "b": {"c": "ü'\""}}
    assert await postgres.fetch_value("SELECT $1::jsonb", document) == document
    assert await postgres.fetch_value("SELECT $1::jsonb", "text") == "text"
    vector = await postgres.fetch_value("SELECT $1::vector", np.array([1.0, -2.5, 3.0]))
    assert isinstance(vector, np.ndarray) and vector.dtype == np.float32
    assert vector.tolist() == [1.0, -2.5, 3.0]
    assert (await postgres.fetch_value("SELECT $1::vector", [0.5, 0.25])).tolist() == [0.5, 0.25]
    half = await postgres.fetch_value("SELECT $1::halfvec", [0.5, 1.0])
    assert isinstance(half, np.ndarray) and half.tolist() == [0.5, 1.0]
    sparse = await postgres.fetch_value("SELECT $1::sparsevec", np.array([0.0, 2.0, 0.0, 3.0]))
    assert isinstance(sparse, np.ndarray) and sparse.tolist() == [0.0, 2.0, 0.0, 3.0]
    assert await postgres.fetch_value("SELECT $1::sparsevec::text", [0.0, 2.0, 0.0, 3.0]) == "{2:2,4:3}/4"


async def test_a_transaction_commits_or_rolls_back_every_call_in_it(postgres: Postgres) -> None:
    await postgres.execute("CREATE TABLE t (x INT)")
    async with postgres.transaction():
        await postgres.execute("INSERT INTO t VALUES (1)")
        async with current_postgres().transaction():  # any adapter of the pool joins
            await current_postgres().execute("INSERT INTO t VALUES (2)")
    with pytest.raises(RuntimeError):
        async with postgres.transaction():
            await postgres.execute("INSERT INTO t VALUES (3)")
            raise RuntimeError("boom")
    assert [r["x"] for r in await postgres.fetch("SELECT x FROM t ORDER BY x")] == [1, 2]


async def test_a_nested_block_is_a_savepoint(postgres: Postgres) -> None:
    await postgres.execute("CREATE TABLE t (x INT)")
    async with postgres.transaction():
        await postgres.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(DatabaseError):
            async with postgres.transaction():
                await postgres.execute("INSERT INTO t VALUES (2)")
                await postgres.execute("SELECT 1/0")
        await postgres.execute("INSERT INTO t VALUES (3)")
    assert [r["x"] for r in await postgres.fetch("SELECT x FROM t ORDER BY x")] == [1, 3]


async def test_driver_errors_carry_the_query_name_and_sqlstate(postgres: Postgres) -> None:
    with pytest.raises(DatabaseError) as failure:
        await postgres.run("migrations_record", name="0001_vector_extension", checksum="x")
    assert failure.value.query == "migrations_record"
    assert failure.value.sqlstate == "23505"  # unique_violation
    assert "migrations_record" in str(failure.value) and "23505" in str(failure.value)


async def test_a_missing_table_names_it_and_the_fix(empty_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=empty_dsn) as postgres:
        with pytest.raises(SchemaMissingError, match=r'"pgstash_migrations".*pgstash migrate'):
            await postgres.run("migrations_applied")


async def test_command_timeout_is_a_database_error_naming_the_query(database_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=database_dsn, command_timeout=0.2) as postgres:
        with pytest.raises(DatabaseError) as failure:
            await postgres.fetch("SELECT pg_sleep(5)")
        assert failure.value.query == "sql" and failure.value.sqlstate == "57014"
        assert await postgres.fetch_value("SELECT 1") == 1


async def test_every_query_is_logged_and_slow_ones_warn(
    database_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pgstash")
    async with PostgresConnectionPool.of(dsn=database_dsn, slow_query_threshold=0.05) as postgres:
        await postgres.run("migrations_applied")
        await postgres.fetch("SELECT pg_sleep(0.1)")
    debug = [
        r for r in caplog.records if r.levelno == logging.DEBUG and "migrations_applied" in r.getMessage()
    ]
    assert debug and "rows in" in debug[0].getMessage()
    slow = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert slow and "slow query sql" in slow[0].getMessage()


# -- issue 11: misuse is said as misuse, a killed backend is a DatabaseError, a connect timeout is
# not a statement timeout --------------------------------------------------------------------------


async def test_two_tasks_on_one_transaction_is_misuse_and_keeps_the_connection(database_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=database_dsn, min_size=1, max_size=1) as postgres:
        pid = await postgres.fetch_value("SELECT pg_backend_pid()")
        with pytest.raises(DatabaseError) as failure:
            async with postgres.transaction():
                await asyncio.gather(
                    postgres.fetch_value("SELECT pg_sleep(0.2)"), postgres.fetch_value("SELECT 1")
                )
        message = str(failure.value)
        assert "used by two tasks at once" in message and "connection lost" not in message
        assert failure.value.sqlstate is None
        assert await postgres.fetch_value("SELECT pg_backend_pid()") == pid  # not terminated


async def test_a_call_after_its_transaction_ended_is_misuse(postgres: Postgres) -> None:
    async def later() -> object:
        await asyncio.sleep(0.05)
        return await postgres.fetch_value("SELECT 1")

    async with postgres.transaction():
        task = asyncio.create_task(later())  # inherits the transaction's scope
    with pytest.raises(DatabaseError, match="used after the transaction ended"):
        await task
    assert await postgres.fetch_value("SELECT 1") == 1


@attrs.frozen
class Item:
    kind: int


async def test_a_backend_killed_in_a_filtered_search_is_a_database_error(postgres: Postgres) -> None:
    """The filtered search (one statement, its scan settings inside it); its backend terminated
    mid-query raised a raw asyncpg.InterfaceError before."""
    index = PostgresVectorIndex(postgres)
    await index.create_table(Item, dimension=3, index="hnsw")
    await index.index(Item, values=[Item(1), Item(2)], attribute=lambda item: [1.0, float(item.kind), 0.0])
    blocker = await asyncpg.connect(postgres.dsn)
    try:
        lock = blocker.transaction()
        await lock.start()
        await blocker.execute("LOCK TABLE item IN ACCESS EXCLUSIVE MODE")
        search = asyncio.create_task(
            index.search(Item, query=[1.0, 1.0, 0.0], requirements=AttributeRequirement.equal("kind", 1))
        )
        pid = None
        while pid is None and not search.done():
            await asyncio.sleep(0.02)
            pid = await blocker.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
        await blocker.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
        with pytest.raises(DatabaseError) as failure:
            await search
        assert failure.value.query == "vectors_search"
        assert failure.value.sqlstate in {"57P01", "08003", "08006"}
        await lock.rollback()
    finally:
        await blocker.close()
    kind = AttributeRequirement.equal("kind", 1)
    again = await index.search(Item, query=[1.0, 1.0, 0.0], requirements=kind)
    assert len(again) == 1  # the same pool serves the next search


async def test_a_connect_timeout_is_not_a_statement_timeout() -> None:
    writers: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)  # accepts, never answers

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        dsn = f"postgresql://app:secret@127.0.0.1:{port}/db"
        async with PostgresConnectionPool.of(dsn=dsn, min_size=0, connect_timeout=0.3) as postgres:
            with pytest.raises(DatabaseError) as failure:
                await postgres.fetch_value("SELECT 1")
    finally:
        for writer in writers:
            writer.close()
        server.close()
    assert failure.value.sqlstate == "08001", failure.value
    assert f"timed out after 0.3 s connecting to 127.0.0.1:{port}" in str(failure.value)


# -- issue 13: one round trip per call; the caller's session state never leaks -----------------


async def test_the_callers_session_state_does_not_reach_the_next_user(database_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=database_dsn, min_size=1, max_size=1) as postgres:
        pid = await postgres.fetch_value("SELECT pg_backend_pid()")
        await postgres.execute("SET work_mem = '77MB'")
        await postgres.execute("SELECT pg_advisory_lock(4242)")
        await postgres.run("migrations_applied")  # a named query on the same connection
        assert await postgres.fetch_value("SELECT pg_backend_pid()") == pid  # the same connection
        assert await postgres.fetch_value("SHOW work_mem") != "77MB"
        locks = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        assert await postgres.fetch_value(locks) == 0
        async with postgres.session():
            await postgres.execute("SET statement_timeout = '12s'")
        assert await postgres.fetch_value("SHOW statement_timeout") != "12s"


async def test_a_named_query_costs_one_round_trip(database_dsn: str) -> None:
    """No reset round trip after pgstash's own queries (they hold no session state)."""
    async with RoundTripCounter(database_dsn) as counter:
        async with PostgresConnectionPool.of(dsn=counter.dsn, min_size=1, max_size=1) as postgres:
            await postgres.run("server_facts")  # prepared once
            counter.reset()
            await postgres.run("server_facts")
            assert counter.round_trips == 1
            await postgres.fetch_value("SELECT 1")  # caller SQL: the full reset follows
            counter.reset()
            await postgres.fetch_value("SELECT 1")
            assert counter.round_trips == 2
