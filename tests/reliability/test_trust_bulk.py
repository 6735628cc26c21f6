"""Bulk loads and index builds an unlucky operator or a hostile role meets (issue 21 items 4, 5, 7
and 8): a load killed after its index drop leaves a record that the next call repairs and
`pgstash status` flags; build_index replaces an invalid index of its name; a role with only
CONNECT cannot stall an ingest; eight concurrent loads under lock_timeout=5s all land."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from pgstash import DatabaseError, Postgres, PostgresConnectionPool, PostgresVectorIndex
from pgstash.vectors.facts import read_facts
from pgstash.vectors.write import bulk, tables
from tests.support.bulk import Chunk, chunks
from tests.support.cli import pgstash
from tests.support.faults import STALL, stall_inserts, stalled_backend, terminate
from tests.support.roles import as_role, login_roles
from tests.support.vectors import unit_rows


async def ann_indexes(postgres: Postgres, table: str = "chunk") -> list[tuple[str, bool]]:
    """(name, valid) of every HNSW/IVFFlat index on the table."""
    rows = await postgres.fetch(
        "SELECT ic.relname, i.indisvalid FROM pg_index AS i JOIN pg_class AS ic ON ic.oid = i.indexrelid "
        "JOIN pg_am AS am ON am.oid = ic.relam WHERE i.indrelid = $1::regclass "
        "AND am.amname IN ('hnsw', 'ivfflat') ORDER BY 1",
        table,
    )
    return [(row[0], row[1]) for row in rows]


async def comment(postgres: Postgres, table: str = "chunk") -> str | None:
    value: str | None = await postgres.fetch_value("SELECT obj_description($1::regclass, 'pg_class')", table)
    return value


# -- item 4: a load killed after its drop ------------------------------------------------------

KILLED_LOAD = """
import asyncio, sys
import attrs
import numpy as np
from pgstash import PostgresConnectionPool, PostgresVectorIndex

@attrs.frozen
class Chunk:
    identifier: str
    rank: int = 0

async def main() -> None:
    async with PostgresConnectionPool.of(sys.argv[1]) as postgres:
        rows = np.random.default_rng(3).standard_normal((400, 8)).astype(np.float32)
        values = [Chunk("stall-here" if i == 350 else f"c{i}", i) for i in range(400)]
        await PostgresVectorIndex(postgres).index(
            Chunk, values=values, attribute=lambda c: rows[c.rank], table="chunk"
        )

asyncio.run(main())
"""


@pytest.mark.process
async def test_a_load_killed_after_its_drop_is_flagged_and_rebuilt_by_the_next_index(
    postgres: Postgres, database_dsn: str
) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=8)
    await postgres.execute("ALTER INDEX chunk_embedding_idx SET (m = 24)")  # kept by the repair
    await stall_inserts(postgres, "chunk")
    client = subprocess.Popen([sys.executable, "-c", KILLED_LOAD, database_dsn])
    try:
        backend = await stalled_backend(postgres, within=60)  # past the drop, inside the COPY
        client.send_signal(signal.SIGKILL)  # the client dies: nothing of it puts the index back
        client.wait()
        await terminate(postgres, backend)
    finally:
        client.kill()
        client.wait()
    assert await ann_indexes(postgres) == [], "the load's drop committed, its rebuild never ran"
    status = pgstash("status", env={"PGSTASH_DSN": database_dsn})
    assert status.returncode == 0, status.stderr
    assert "chunk: its ANN index was dropped by a bulk load that never committed" in status.stdout
    assert bulk.dropped_of(await comment(postgres)), "the drop is recorded in its own transaction"
    vectors = unit_rows(10, 8, seed=4)
    await index.index(Chunk, values=chunks(10), attribute=lambda c: vectors[c.rank])
    assert await ann_indexes(postgres) == [("chunk_embedding_idx", True)]
    assert await comment(postgres) is None
    options = await postgres.fetch_value(
        "SELECT reloptions FROM pg_class WHERE relname = 'chunk_embedding_idx'"
    )
    assert "m=24" in options
    status = pgstash("status", env={"PGSTASH_DSN": database_dsn})
    assert "never committed" not in status.stdout


async def test_a_running_load_is_not_repaired_and_create_table_or_build_index_repair_a_killed_one(
    postgres: Postgres, database_dsn: str
) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=8)
    await stall_inserts(postgres, "chunk")
    vectors = unit_rows(400, 8, seed=5)
    values = chunks(400)
    values[300] = Chunk(STALL, 300)
    load = asyncio.ensure_future(index.index(Chunk, values=values, attribute=lambda c: vectors[c.rank]))
    backend = await stalled_backend(postgres, within=60)
    async with PostgresConnectionPool.of(database_dsn) as other:  # while the load holds the bulk lock
        await PostgresVectorIndex(other).index(Chunk, values=chunks(5, 1000), attribute=lambda c: vectors[0])
        assert await ann_indexes(other) == [], "a running load's drop is not a repair case"
        assert bulk.dropped_of(await comment(other))
        await PostgresVectorIndex(other).create_table(Chunk, dimension=8)
        assert await ann_indexes(other) == []
    await terminate(postgres, backend)
    with pytest.raises(DatabaseError):
        await load
    assert await ann_indexes(postgres) == [("chunk_embedding_idx", True)], "a failed load puts it back"
    assert await comment(postgres) is None
    for repair in ("create_table", "build_index"):  # a record left by a killed client
        planned = await bulk.plan(postgres, "chunk", 100, 8)
        assert planned is not None and await bulk.drop_indexes(postgres, planned)
        assert await ann_indexes(postgres) == [] and bulk.dropped_of(await comment(postgres))
        if repair == "create_table":
            await index.create_table(Chunk, dimension=8)
        else:
            await index.build_index(Chunk)
        assert await ann_indexes(postgres) == [("chunk_embedding_idx", True)], repair
        assert await comment(postgres) is None, repair


async def _lock_seen(postgres: Postgres, granted: bool) -> None:
    """Waits until another backend holds (`granted`) or waits for the bulk lock on chunk."""
    seen = (
        "SELECT count(*) FROM pg_locks WHERE relation = 'chunk'::regclass "
        "AND mode = 'ShareUpdateExclusiveLock' AND granted = $1 AND pid <> pg_backend_pid()"
    )
    for _ in range(6000):
        if await postgres.fetch_value(seen, granted):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no backend {'held' if granted else 'waited for'} the bulk lock in 60 s")


async def test_a_repair_meeting_a_live_load_between_its_two_transactions_leaves_one_valid_index(
    postgres: Postgres, database_dsn: str
) -> None:
    """A load between its drop's commit and its load transaction looks like a killed one (the
    record is there, nobody holds the bulk lock), and another caller's index() repairs then. The
    repair builds holding the bulk lock, so the load waits for it, then writes into that index:
    both land, one valid index, no record. (A concurrent build there, once it held the table,
    waited for the load's snapshot while the load waited for its lock: a deadlock, which left the
    index invalid or failed the load; eight concurrent loads met it.) A writer's open transaction
    holds the repair's build while the load comes to wait."""
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=8)
    vectors = unit_rows(300, 8, seed=12)
    await index.index(Chunk, values=chunks(300), attribute=lambda c: vectors[c.rank])
    planned = await bulk.plan(postgres, "chunk", 1_000, 8)  # a batch large next to the table
    assert planned is not None and await bulk.drop_indexes(postgres, planned)  # its first transaction
    writer = await asyncpg.connect(database_dsn)
    try:
        writing = writer.transaction()
        await writing.start()
        await writer.execute("DELETE FROM chunk WHERE payload->>'identifier' = 'c1'")
        async with PostgresConnectionPool.of(database_dsn) as other:
            repairing = asyncio.ensure_future(bulk.repair(other, "chunk", await read_facts(other, "chunk")))
            await _lock_seen(postgres, granted=True)  # the repair holds the table, its build waits

            async def load() -> None:  # the load's second transaction: the bulk lock, its rows
                async with bulk.rebuilt(other, planned) as written:
                    copied = "INSERT INTO chunk (embedding, payload, meta) SELECT embedding, payload, meta "
                    await other.execute(copied + "FROM chunk")
                    written.rows += 300

            loading = asyncio.ensure_future(load())
            await _lock_seen(postgres, granted=False)  # the load waits for the bulk lock
            await writing.rollback()
            assert await repairing is True
            await loading
    finally:
        await writer.close()
    assert await ann_indexes(postgres) == [("chunk_embedding_idx", True)]
    assert await comment(postgres) is None
    assert await postgres.fetch_value("SELECT count(*) FROM chunk") == 600
    assert len(await index.search(Chunk, query=vectors[7], limit=5)) == 5


# -- item 5: an invalid index of the standard name ---------------------------------------------


async def test_build_index_replaces_an_invalid_index_of_its_name_and_create_table_adds_no_second(
    postgres: Postgres, database_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=8, index=None)
    vectors = unit_rows(50, 8, seed=6)
    await index.index(Chunk, values=chunks(50), attribute=lambda c: vectors[c.rank])
    writer = await asyncpg.connect(database_dsn)
    try:
        writing = writer.transaction()
        await writing.start()
        await writer.execute("DELETE FROM chunk WHERE payload->>'identifier' = 'c1'")  # a write held open
        monkeypatch.setattr(tables, "DDL_LOCK_TIMEOUT", "200ms")
        with pytest.raises(DatabaseError) as timed_out:  # CREATE INDEX CONCURRENTLY waits for the writer
            await index.create_table(Chunk, dimension=8)
        assert timed_out.value.sqlstate == "55P03"
        await writing.rollback()
    finally:
        await writer.close()
    assert await ann_indexes(postgres) == [("chunk_embedding_idx", False)]
    await index.build_index(Chunk)
    assert await ann_indexes(postgres) == [("chunk_embedding_idx", True)]
    # a replacement whose rename never ran: a valid *_new beside the index
    await postgres.execute(
        "CREATE INDEX chunk_embedding_new ON chunk USING hnsw (embedding vector_cosine_ops)"
    )
    await index.create_table(Chunk, dimension=8)
    await index.build_index(Chunk)
    assert await ann_indexes(postgres) == [("chunk_embedding_idx", True)]
    await postgres.execute("DROP INDEX chunk_embedding_idx")
    await postgres.execute(
        "CREATE INDEX chunk_embedding_new ON chunk USING hnsw (embedding vector_cosine_ops)"
    )
    await index.create_table(Chunk, dimension=8)  # an ANN index of another name serves: none added
    assert await ann_indexes(postgres) == [("chunk_embedding_new", True)]
    await index.build_index(Chunk)
    assert await ann_indexes(postgres) == [("chunk_embedding_idx", True)]


# -- item 7: a role with only CONNECT --------------------------------------------------------


@pytest.fixture
async def connect_only(database_dsn: str) -> AsyncIterator[str]:
    """A DSN logging in as a role that has CONNECT (PUBLIC's) and nothing else."""
    password = uuid.uuid4().hex
    admin = await asyncpg.connect(database_dsn)
    try:
        async with login_roles(admin, "pgstash_nobody", password=password) as (role,):
            yield as_role(database_dsn, role, password)
    finally:
        await admin.close()


async def test_a_connect_only_role_cannot_stall_keyed_or_bulk_ingests(
    postgres: Postgres, database_dsn: str, connect_only: str
) -> None:
    await PostgresVectorIndex(postgres).create_table(Chunk, dimension=8)
    hostile = await asyncpg.connect(connect_only)
    try:
        await hostile.execute("SELECT pg_advisory_lock(hashtextextended('pgstash.vectors.keys.chunk', 0))")
        async with hostile.transaction():
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await hostile.execute("LOCK TABLE chunk IN SHARE UPDATE EXCLUSIVE MODE")
        async with PostgresConnectionPool.of(database_dsn, server_settings={"lock_timeout": "2s"}) as timed:
            index = PostgresVectorIndex(timed)
            vectors = unit_rows(400, 8, seed=8)
            keyed = await index.index(
                Chunk, values=chunks(5), attribute=lambda c: vectors[c.rank], key="identifier"
            )
            assert keyed == 5
            loaded = await index.index(Chunk, values=chunks(300, 100), attribute=lambda c: vectors[c.rank])
            assert loaded == 300
            rekeyed = await index.index(
                Chunk, values=chunks(300, 100), attribute=lambda c: vectors[c.rank], key="identifier"
            )
            assert rekeyed == 300
    finally:
        await hostile.close()
    assert await postgres.fetch_value("SELECT count(*) FROM chunk") == 605
    assert await ann_indexes(postgres) == [("chunk_embedding_idx", True)]


# -- item 8: concurrent loads under the README's lock_timeout ----------------------------------


async def test_eight_concurrent_loads_under_lock_timeout_5s_all_land(
    postgres: Postgres, database_dsn: str
) -> None:
    await PostgresVectorIndex(postgres).create_table(Chunk, dimension=64)
    vectors = unit_rows(8 * 1500, 64, seed=9)
    settings: dict[str, Any] = {"lock_timeout": "5s"}
    async with PostgresConnectionPool.of(database_dsn, server_settings=settings, max_size=10) as pool:
        index = PostgresVectorIndex(pool)

        async def load(which: int) -> int:
            batch = chunks(1500, 1500 * which)
            return await index.index(Chunk, values=batch, attribute=lambda c: vectors[c.rank])

        results = await asyncio.gather(*(load(which) for which in range(8)), return_exceptions=True)
    assert results == [1500] * 8, [repr(result) for result in results if not isinstance(result, int)]
    assert await postgres.fetch_value("SELECT count(*) FROM chunk") == 12000
    assert await ann_indexes(postgres) == [("chunk_embedding_idx", True)]
    assert await comment(postgres) is None
    found = await PostgresVectorIndex(postgres).search(Chunk, query=vectors[4321], limit=1)
    assert found == [Chunk("c4321", 4321)]
