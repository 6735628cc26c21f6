"""Issue 12, connections: a statement is sent again only when it provably never reached the
server; acquire and connect timeouts say what timed out; no password in any message or log line;
a pool opened before `migrate` searches once the vector type exists."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator

import attrs
import numpy as np
import pytest

import pgstash
from pgstash import (
    ConfigurationError,
    DatabaseError,
    PgstashError,
    Postgres,
    PostgresConnectionPool,
    PostgresVectorIndex,
)
from pgstash.connection import redact
from tests.support.faults import pool_pids, terminate_unnoticed
from tests.support.proxy import DroppingProxy


async def test_a_write_whose_reply_was_lost_is_not_sent_again(database_dsn: str) -> None:
    """The INSERT committed, then the connection dropped before its reply arrived: the caller
    gets DatabaseError and the row exists once (the old code retried the "read" and stored it
    twice)."""
    async with DroppingProxy(database_dsn) as proxy, PostgresConnectionPool.of(dsn=proxy.dsn) as postgres:
        await postgres.execute("CREATE TABLE payments (id SERIAL PRIMARY KEY, amount INT NOT NULL)")
        # the reply to Bind/Execute/Sync (BindComplete first): the row is committed by then
        proxy.arm(b"INSERT INTO payments", b"2\x00\x00\x00\x04")
        with pytest.raises(DatabaseError) as failure:
            await postgres.fetch_value("INSERT INTO payments (amount) VALUES ($1) RETURNING id", 100)
        assert proxy.dropped == 1
        assert failure.value.query == "sql" and failure.value.sqlstate in {"08003", "08006"}
        assert await postgres.fetch_value("SELECT count(*) FROM payments WHERE amount = 100") == 1


async def test_a_connection_that_closed_in_the_pool_is_replaced_before_anything_is_sent(
    database_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Provably never sent: the closed connection is found before use and another one runs the
    write, exactly once."""
    async with PostgresConnectionPool.of(dsn=database_dsn, min_size=1, max_size=1) as postgres:
        await postgres.execute("CREATE TABLE payments (amount INT NOT NULL)")
        terminate_unnoticed(database_dsn, pool_pids(postgres))
        await postgres.execute("INSERT INTO payments VALUES (7)")
        assert await postgres.fetch_value("SELECT count(*) FROM payments") == 1
    assert any("nothing was sent, using another" in record.getMessage() for record in caplog.records)


async def test_an_exhausted_pool_says_so_after_acquire_timeout(database_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=database_dsn, max_size=2, acquire_timeout=0.3) as postgres:
        held = asyncio.Event()
        done = asyncio.Event()

        async def hold() -> None:
            async with postgres.transaction():
                await postgres.fetch_value("SELECT 1")
                held.set()
                await done.wait()

        holders = [asyncio.create_task(hold()) for _ in range(2)]
        try:
            while sum(1 for task in holders if not task.done()) < 2 or not held.is_set():
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            with pytest.raises(DatabaseError) as failure:
                await postgres.fetch_value("SELECT 1")
        finally:
            done.set()
            await asyncio.gather(*holders)
        message = str(failure.value)
        assert "pool is exhausted" in message and "2 connections" in message and "0.3 s" in message
        assert await postgres.fetch_value("SELECT 1") == 1


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A port that accepts connections and never answers."""
    writers: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in writers:
            writer.close()
        server.close()


async def test_a_connect_timeout_says_where_it_connected_not_57014(silent_port: int) -> None:
    dsn = f"postgresql://app:hunter2@127.0.0.1:{silent_port}/db"
    async with PostgresConnectionPool.of(dsn=dsn, min_size=0, connect_timeout=0.3) as postgres:
        with pytest.raises(DatabaseError) as failure:
            await postgres.fetch_value("SELECT 1")
    assert failure.value.sqlstate == "08001"
    assert f"timed out after 0.3 s connecting to 127.0.0.1:{silent_port}" in str(failure.value)
    with pytest.raises(ConfigurationError, match=r"timed out after 0\.3 s connecting to") as opening:
        async with PostgresConnectionPool.of(dsn=dsn, connect_timeout=0.3):
            pass
    assert "hunter2" not in str(failure.value) + str(opening.value)


def refused_port() -> int:
    """A port nobody listens on (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://app:hunter2@127.0.0.1:{port}/db",
        "postgresql://app:hun@ter2@127.0.0.1:{port}/db",
        "postgresql://app:hu/n?ter2@127.0.0.1:{port}/db",
        "postgresql://app@127.0.0.1:{port}/db?password=hunter2",
        "postgresql://app@127.0.0.1:{port}/db?sslmode=disable&password=hunter2&application_name=x",
        "host=127.0.0.1 port={port} user=app password=hunter2 dbname=db",
        "host=127.0.0.1 port={port} user=app password='hun ter2' dbname=db",
    ],
    ids=["userinfo", "at-sign", "slash-question", "query", "query-middle", "keywords", "quoted"],
)
async def test_no_password_in_any_message_or_log_line(dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    target = dsn.format(port=refused_port())
    messages = [redact(target)]
    with pytest.raises(ConfigurationError) as opening:
        async with PostgresConnectionPool.of(dsn=target, connect_timeout=0.3):
            pass
    messages.append(str(opening.value))
    if target.startswith("postgresql://"):  # asyncpg takes URLs only
        async with PostgresConnectionPool.of(dsn=target, min_size=0, connect_timeout=0.3) as postgres:
            with pytest.raises(PgstashError) as failure:  # DatabaseError, or a DSN it cannot parse
                await postgres.fetch_value("SELECT 1")
        messages.append(str(failure.value))
    messages += [record.getMessage() for record in caplog.records]
    assert not [message for message in messages if "ter2" in message]


@attrs.frozen
class Chunk:
    text: str


async def test_a_pool_opened_before_migrate_indexes_and_searches_after_it(empty_dsn: str) -> None:
    """Application pods start before the migration job: their connections registered codecs
    when no vector type existed. After migrate and create_table ran elsewhere, the same pool
    indexes and searches (the old code failed with 'expected str, got ndarray')."""
    async with PostgresConnectionPool.of(dsn=empty_dsn, min_size=2, max_size=2) as early:
        assert await early.fetch_value("SELECT 1") == 1
        async with PostgresConnectionPool.of(dsn=empty_dsn) as migrator:
            await pgstash.migrate(migrator)
            await PostgresVectorIndex(migrator).create_table(Chunk, dimension=3, index="hnsw")
        index = PostgresVectorIndex(early)
        vectors = {"a": [1.0, 0.0, 0.0], "b": [0.0, 1.0, 0.0]}
        await index.index(Chunk, values=[Chunk("a"), Chunk("b")], attribute=lambda chunk: vectors[chunk.text])
        found = await index.search(Chunk, query=np.array([1.0, 0.1, 0.0]), limit=2)
        assert [chunk.text for chunk in found] == ["a", "b"]
        vector = await early.fetch_value("SELECT $1::vector", np.array([0.5, 0.25]))
        assert isinstance(vector, np.ndarray) and vector.tolist() == [0.5, 0.25]


async def test_retries_never_hide_a_failure_inside_a_transaction(postgres: Postgres) -> None:
    """A statement inside a transaction is never sent twice, whatever happened."""
    await postgres.execute("CREATE TABLE t (x INT)")
    with pytest.raises(DatabaseError):
        async with postgres.transaction():
            await postgres.execute("INSERT INTO t VALUES (1)")
            pid = await postgres.fetch_value("SELECT pg_backend_pid()")
            await postgres.fetch_value("SELECT pg_terminate_backend($1)", pid)
    assert await postgres.fetch_value("SELECT count(*) FROM t") == 0
