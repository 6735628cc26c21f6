"""The pool, the current pool, transactions, codecs, errors and the query log."""

from __future__ import annotations

import logging
import socket

import numpy as np
import pytest

from pgstash import (
    ConfigurationError,
    DatabaseError,
    Postgres,
    PostgresConnectionPool,
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
    from tests.conftest import with_database

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
