"""Behind a real PgBouncer (Debian's 1.18) in transaction mode (issue 24): the probe of every
store, the filtered search's full limit in one statement, no session state left on any server
connection, the cache listener on `listen_dsn` (and its TTL fallback), migrations from many
processes, and the faults a pooler brings."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import attrs
import pytest

import pgstash
from pgstash import (
    AttributeRequirement,
    ConfigurationError,
    DatabaseError,
    HashingEmbedding,
    InstructionsDeclaration,
    ModelInput,
    ModelOutput,
    Postgres,
    PostgresConfigurationRepository,
    PostgresConnectionPool,
    PostgresInstructionsRepository,
    PostgresModelMemory,
    PostgresVectorIndex,
)
from tests.support.caches import cached_behind_a_sneak, define_in_another_process, eventually, sneak
from tests.support.cli import pgstash as run_pgstash
from tests.support.pooler import PgBouncer, database_of, start_pgbouncer
from tests.support.vectors import Chunk, load, unit_rows

TRANSACTION = "pgbouncer-transaction"


@attrs.frozen
class Assistant:
    model: str
    temperature: float = 0.2


@attrs.frozen
class Doc:
    title: str
    body: str


@pytest.fixture
async def pooled(pooled_dsn: str, direct_dsn: str) -> AsyncIterator[Postgres]:
    """A pool through PgBouncer in transaction mode, listening on the direct DSN."""
    async with PostgresConnectionPool.of(
        dsn=pooled_dsn, pooler=TRANSACTION, listen_dsn=direct_dsn
    ) as postgres:
        yield postgres


@pytest.fixture
def two_servers(template_ready: str, pgbouncer: PgBouncer) -> Iterator[PgBouncer]:
    """PgBouncer with two server connections per database: two concurrent transactions through
    it are on both, so every server connection can be inspected."""
    bouncer = start_pgbouncer(template_ready, pool_size=2)
    try:
        yield bouncer
    finally:
        bouncer.stop()


# the parameters PgBouncer itself SETs on a server connection to match each client's
TRACKED_BY_PGBOUNCER = (
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "standard_conforming_strings",
    "application_name",
    "IntervalStyle",
)


async def session_settings(bouncer: PgBouncer, database: str) -> list[dict[str, str]]:
    """On each of the (two) server connections: the settings a session changed (pg_settings
    rows whose source is "session", beyond those PgBouncer keeps in step with its clients),
    read inside two transactions held at once."""
    clients = [await asyncpg.connect(bouncer.dsn(database), statement_cache_size=0) for _ in range(2)]
    try:
        found: list[dict[str, str]] = []
        for client in clients:
            await client.execute("BEGIN")
            rows = await client.fetch(
                "SELECT name, setting FROM pg_settings WHERE source = 'session' AND name <> ALL($1::TEXT[])",
                list(TRACKED_BY_PGBOUNCER),
            )
            found.append({row["name"]: row["setting"] for row in rows})
        pids = [await client.fetchval("SELECT pg_backend_pid()") for client in clients]
        assert len(set(pids)) == 2  # both server connections
        return found
    finally:
        for client in clients:
            await client.close()


# -- what a user meets first -------------------------------------------------------------------


async def test_without_pooler_the_refused_startup_parameter_says_to_pass_pooler(
    pooled_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PGSTASH_POOLER", raising=False)
    with pytest.raises(ConfigurationError, match=r"unsupported startup parameter.*pooler="):
        async with PostgresConnectionPool.of(dsn=pooled_dsn):
            pass


def test_an_unknown_pooler_names_the_choices() -> None:
    with pytest.raises(ValueError, match="pgbouncer-transaction"):
        PostgresConnectionPool.of(dsn="postgresql://x@localhost/db", pooler="pgbouncer")


# -- the probe ---------------------------------------------------------------------------------


async def test_the_probe_passes_through_pgbouncer_in_transaction_mode(
    pgbouncer: PgBouncer, empty_dsn: str, template_ready: str
) -> None:
    """The issue's probe: migrate, define/load, remember/recall, create_table, bulk index,
    vector/filtered/text search, a transaction across stores, 50 concurrent loads and 40
    concurrent searches, all through PgBouncer in transaction mode."""
    dsn = pgbouncer.dsn(database_of(empty_dsn))
    async with PostgresConnectionPool.of(dsn=dsn, pooler=TRANSACTION, listen_dsn=empty_dsn) as postgres:
        assert "0001_vector_extension" in await pgstash.migrate(postgres)
        assert await pgstash.migrate(postgres) == []  # a second run applies nothing

        configurations = PostgresConfigurationRepository(cache_limit=0)
        await configurations.define(Assistant("small"))
        await configurations.define(Assistant("large", 0.5))
        assert await configurations.load(Assistant) == Assistant("large", 0.5)
        instructions = PostgresInstructionsRepository()
        await instructions.define(InstructionsDeclaration("greet"), "Hello {name}")
        assert await instructions.resolve("greet", {"name": "Ada"}) == "Hello Ada"
        memory = PostgresModelMemory("probe")
        await memory.remember(ModelInput("hi"), ModelOutput("hello"))
        assert [element.content for element in (await memory.recall()).context] == ["hi", "hello"]

        index = PostgresVectorIndex(embedding=HashingEmbedding(16))
        await index.create_table(Chunk, dimension=16, index="hnsw")
        vectors = unit_rows(2_000, 16)
        await load(index, vectors, ("news", *["other"] * 9))  # a bulk load into the empty table
        assert await postgres.fetch_value("SELECT count(*) FROM chunk") == 2_000
        found = await index.search(Chunk, query=vectors[7], limit=5)
        assert found[0].rank == 7
        news = AttributeRequirement.equal("topic", "news")
        filtered = await index.search(Chunk, query=vectors[3], limit=50, requirements=news)
        assert len(filtered) == 50 and {chunk.topic for chunk in filtered} == {"news"}

        documents = PostgresVectorIndex(embedding=HashingEmbedding(16))
        await documents.create_table(Doc, dimension=16, text="body")
        docs = [Doc("a", "JSONDecodeError while parsing"), Doc("b", "a quiet afternoon")]
        await documents.index(Doc, values=docs, attribute="body", key="title")
        await documents.index(Doc, values=[Doc("b", "another afternoon")], attribute="body", key="title")
        assert [doc.title for doc in await documents.search(Doc, query="JSONDecodeError", mode="text")] == [
            "a"
        ]
        hybrid = await documents.search(Doc, query="afternoon", mode="hybrid", limit=2)
        assert hybrid[0] == Doc("b", "another afternoon")
        assert await postgres.fetch_value("SELECT count(*) FROM doc") == 2  # keyed: replaced

        with pytest.raises(RuntimeError):
            async with postgres.transaction():  # across stores, rolled back whole
                await memory.remember(ModelInput("lost"))
                await configurations.define(Assistant("lost"))
                await index.index(Chunk, values=[Chunk("x", "lost")], attribute=lambda _: vectors[0])
                raise RuntimeError("roll back")
        assert await configurations.load(Assistant) == Assistant("large", 0.5)
        assert len((await memory.recall()).context) == 2
        async with postgres.transaction():
            await memory.remember(ModelInput("kept"))
            await configurations.define(Assistant("kept"))
        assert await configurations.load(Assistant) == Assistant("kept")

        loads = await asyncio.gather(*(configurations.load(Assistant) for _ in range(50)))
        assert loads == [Assistant("kept")] * 50
        searches = await asyncio.gather(
            *(index.search(Chunk, query=vectors[i], limit=10, requirements=news) for i in range(40))
        )
        assert all(len(result) == 10 for result in searches)


async def test_a_filtered_search_returns_its_full_limit_in_one_statement(
    pooled: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The iterative scan travels inside the statement (no setting at connect through a
    transaction pooler): a filter matching 1 row in 10 fills the limit of 50, more than HNSW's
    default ef_search of 40 yields without iterative scans, in one statement."""
    index = PostgresVectorIndex(pooled)
    await index.create_table(Chunk, dimension=8, index=None)
    vectors = unit_rows(4_000, 8)
    await load(index, vectors, ("rare", *["common"] * 9))
    await index.create_table(Chunk, dimension=8)  # HNSW from the rows (CONCURRENTLY)
    await pooled.execute("ANALYZE chunk")
    ran: list[str] = []
    log = Postgres.log

    def recording(self: Postgres, name: str, rows: int, seconds: float) -> None:
        ran.append(name)
        log(self, name, rows, seconds)

    monkeypatch.setattr(Postgres, "log", recording)
    rare = AttributeRequirement.equal("topic", "rare")
    found = await index.search(Chunk, query=vectors[0], limit=50, requirements=rare)
    assert len(found) == 50 and {chunk.topic for chunk in found} == {"rare"}
    assert [name for name in ran if name.startswith("vectors_s")] == ["vectors_search"]
    ran.clear()
    unfiltered = await index.search(Chunk, query=vectors[1], limit=100)  # > ef_search, unfiltered
    assert len(unfiltered) == 100
    assert [name for name in ran if name.startswith("vectors_s")] == ["vectors_search"]


# -- no session state --------------------------------------------------------------------------


async def test_no_setting_stays_behind_on_any_server_connection(
    two_servers: PgBouncer, direct_dsn: str
) -> None:
    """Searches with their per-call settings, builds, the caller's SQL on a type asyncpg must
    introspect (it toggles jit around that in separate statements, kept here in one transaction)
    and a migration, then both server connections: no setting with source "session"."""
    database = database_of(direct_dsn)
    admin = await asyncpg.connect(direct_dsn)
    await admin.execute("CREATE TYPE mood AS ENUM ('happy', 'sad')")
    await admin.close()
    assert await session_settings(two_servers, database) == [{}, {}]

    async def work() -> None:
        async with PostgresConnectionPool.of(
            dsn=two_servers.dsn(database), pooler=TRANSACTION, min_size=3, max_size=3
        ) as postgres:
            await pgstash.migrate(postgres)
            index = PostgresVectorIndex(postgres)
            await index.create_table(Chunk, dimension=8, index="hnsw")
            vectors = unit_rows(500, 8)
            await load(index, vectors, ("a", "b"))
            await index.create_table(Chunk, dimension=8, index="hnsw", text="text")  # concurrently
            b = AttributeRequirement.equal("topic", "b")
            await asyncio.gather(
                *(
                    index.search(Chunk, query=vectors[i], limit=60, requirements=b, ef_search=80)
                    for i in range(6)
                ),
                *(postgres.fetch_value("SELECT 'happy'::mood") for _ in range(6)),
            )

    for _ in range(3):  # new connections each time: each introspects the enum once
        await work()
    assert await session_settings(two_servers, database) == [{}, {}]
    # what pgstash overrides to keep asyncpg's introspection in one transaction still exists
    assert "_introspect_types" in vars(asyncpg.Connection)


# -- the cache listener ------------------------------------------------------------------------


async def test_a_define_in_another_process_reaches_this_cache_through_listen_dsn(
    pooled: Postgres, pooled_dsn: str
) -> None:
    repository = PostgresConfigurationRepository(pooled, cache_expiration=600.0)
    await cached_behind_a_sneak(repository, pooled)  # its own NOTIFY came back through the listener
    child = await define_in_another_process(pooled_dsn, pooler=TRANSACTION)
    _, errors = await child.communicate()
    assert child.returncode == 0, errors.decode()

    async def arrived() -> bool:  # the NOTIFY arrives on the listener's direct connection
        return await repository.load_raw("shared") == {"from": "child"}

    await eventually(arrived, within=20.0)


async def test_without_listen_dsn_one_warning_and_caches_live_by_their_ttl(
    pooled_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="pgstash"):
        async with PostgresConnectionPool.of(dsn=pooled_dsn, pooler=TRANSACTION) as postgres:
            repository = PostgresConfigurationRepository(postgres, cache_expiration=600.0)
            await repository.define({"v": 1}, "app")
            assert await repository.load_raw("app") == {"v": 1}
            await sneak(postgres, "app", {"v": 2})
            assert await repository.load_raw("app") == {"v": 1}  # cached: nobody tells it
            await repository.define({"v": 3}, "app")  # this process's own write evicts at once
            assert await repository.load_raw("app") == {"v": 3}
    warnings = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "listen_dsn" in warnings[0] and "cache_expiration" in warnings[0]


async def test_a_session_needs_listen_dsn_behind_a_transaction_pooler(
    pooled_dsn: str, direct_dsn: str
) -> None:
    async with PostgresConnectionPool.of(dsn=pooled_dsn, pooler=TRANSACTION) as postgres:
        with pytest.raises(ConfigurationError, match="listen_dsn"):
            async with postgres.session():
                pass
    async with PostgresConnectionPool.of(
        dsn=pooled_dsn, pooler=TRANSACTION, listen_dsn=direct_dsn
    ) as postgres:
        async with postgres.session():
            await postgres.execute("SET work_mem = '7MB'")
            assert await postgres.fetch_value("SHOW work_mem") == "7MB"  # one session throughout


# -- migrations from many processes ------------------------------------------------------------


async def test_many_processes_migrate_through_the_pooler_once(pgbouncer: PgBouncer, empty_dsn: str) -> None:
    dsn = pgbouncer.dsn(database_of(empty_dsn))
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import asyncio, sys, pgstash\n"
            "async def main():\n"
            "    pool = pgstash.PostgresConnectionPool.of(dsn=sys.argv[1], pooler=sys.argv[2])\n"
            "    async with pool as p:\n"
            "        print(len(await pgstash.migrate(p)))\n"
            "asyncio.run(main())\n",
            dsn,
            TRANSACTION,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(4)
    ]
    results = [await child.communicate() for child in children]
    assert all(child.returncode == 0 for child in children), [err.decode() for _, err in results]
    applied = [int(out) for out, _ in results]
    assert sum(applied) == len(pgstash.migrations.migrations())  # each file once, in all


def test_the_cli_goes_through_the_pooler_with_pgstash_pooler(pooled_dsn: str, tmp_path: object) -> None:
    env = {"PGSTASH_DSN": pooled_dsn, "PGSTASH_POOLER": TRANSACTION}
    created = run_pgstash("vector", "create-table", "notes", "--dimension", "8", env=env)
    assert created.returncode == 0, created.stderr
    refused = run_pgstash("status", env={"PGSTASH_DSN": pooled_dsn, "PGSTASH_POOLER": ""})
    assert refused.returncode != 0 and "pooler" in refused.stderr


# -- faults ------------------------------------------------------------------------------------


async def test_pause_holds_calls_until_resume(
    pooled: Postgres, pgbouncer: PgBouncer, direct_dsn: str
) -> None:
    repository = PostgresConfigurationRepository(pooled, cache_limit=0)
    await repository.define({"v": 1}, "paused")
    database = database_of(direct_dsn)
    await pgbouncer.admin(f"PAUSE {database}")
    try:
        waiting = asyncio.ensure_future(repository.load_raw("paused"))
        for _ in range(3_000):  # the call reached PgBouncer and waits there
            pools = [row for row in pgbouncer.show("POOLS") if row.get("database") == database]
            if pools and int(pools[0]["cl_waiting"]) > 0:
                break
            await asyncio.sleep(0.01)
        assert not waiting.done()
        assert int(pools[0]["cl_waiting"]) > 0
    finally:
        await pgbouncer.admin(f"RESUME {database}")
    assert await waiting == {"v": 1}


async def test_reconnect_and_server_lifetime_are_invisible(template_ready: str, direct_dsn: str) -> None:
    bouncer = start_pgbouncer(template_ready, server_lifetime=1, server_idle_timeout=1)
    try:
        database = database_of(direct_dsn)
        async with PostgresConnectionPool.of(dsn=bouncer.dsn(database), pooler=TRANSACTION) as postgres:
            repository = PostgresConfigurationRepository(postgres, cache_limit=0)
            await repository.define({"v": 1}, "app")
            await bouncer.admin(f"RECONNECT {database}")
            assert await repository.load_raw("app") == {"v": 1}
            first = await postgres.fetch_value("SELECT pg_backend_pid()")
            for _ in range(3_000):  # server_idle_timeout closes the server connection
                if not [row for row in bouncer.show("SERVERS") if row.get("database") == database]:
                    break
                await asyncio.sleep(0.01)
            assert await repository.load_raw("app") == {"v": 1}
            assert await postgres.fetch_value("SELECT pg_backend_pid()") != first
    finally:
        bouncer.stop()


async def test_query_wait_timeout_is_one_error_naming_the_setting(
    template_ready: str, direct_dsn: str
) -> None:
    bouncer = start_pgbouncer(template_ready, pool_size=1, query_wait_timeout=1)
    try:
        database = database_of(direct_dsn)
        async with PostgresConnectionPool.of(dsn=bouncer.dsn(database), pooler=TRANSACTION) as postgres:
            repository = PostgresConfigurationRepository(postgres, cache_limit=0)
            holder = await asyncpg.connect(bouncer.dsn(database), statement_cache_size=0)
            await holder.execute("BEGIN")  # holds the one server connection
            try:
                with pytest.raises(DatabaseError, match="query_wait_timeout") as failure:
                    await repository.define({"v": 1}, "never")
                assert "nothing was" in str(failure.value)
            finally:
                await holder.close()
        admin = await asyncpg.connect(direct_dsn)
        try:
            assert await admin.fetchval("SELECT count(*) FROM configurations") == 0
        finally:
            await admin.close()
    finally:
        bouncer.stop()


async def test_a_restarted_pgbouncer_costs_no_call(template_ready: str, direct_dsn: str) -> None:
    """Every idle pooled connection dies with PgBouncer; the next calls get new ones (nothing had
    been sent on the dead ones), reads and writes alike."""
    database = database_of(direct_dsn)
    bouncer = start_pgbouncer(template_ready)
    port = bouncer.port
    try:
        async with PostgresConnectionPool.of(
            dsn=bouncer.dsn(database), pooler=TRANSACTION, min_size=3, max_size=3
        ) as postgres:
            repository = PostgresConfigurationRepository(postgres, cache_limit=0)
            await repository.define({"v": 1}, "app")
            bouncer.stop()
            bouncer = start_pgbouncer(template_ready, listen_port=port)
            assert await repository.load_raw("app") == {"v": 1}
            await repository.define({"v": 2}, "app")
            assert await repository.load_raw("app") == {"v": 2}
    finally:
        bouncer.stop()
    admin = await asyncpg.connect(direct_dsn)
    try:
        assert await admin.fetchval("SELECT count(*) FROM configurations WHERE identifier = 'app'") == 2
    finally:
        await admin.close()


# -- replicas behind a pooler ------------------------------------------------------------------


async def test_replicas_behind_their_own_pgbouncer() -> None:
    """The primary and its hot standby each behind a PgBouncer in transaction mode: reads go to
    the standby, a write is read back (the WAL position travels, not the connection), and a
    filtered search on the standby returns its full limit."""
    import tempfile

    from tests.support.replication import ReplicaPair

    with ReplicaPair.start(Path(tempfile.mkdtemp(prefix="pgstash-replicas-"))) as pair:
        primary = start_pgbouncer(pair.primary_dsn)
        standby = start_pgbouncer(pair.standby_dsn)
        try:
            async with PostgresConnectionPool.of(
                primary.dsn("postgres"),
                pooler=TRANSACTION,
                listen_dsn=pair.primary_dsn,
                replicas=[standby.dsn("postgres")],
                replica_wait=5.0,
            ) as postgres:
                await pgstash.migrate(postgres)
                assert await postgres.replica().fetch_value("SELECT pg_is_in_recovery()") is True
                configurations = PostgresConfigurationRepository(postgres, cache_limit=0)
                await configurations.define(Assistant("replicated"))
                assert await configurations.load(Assistant) == Assistant("replicated")
                index = PostgresVectorIndex(postgres)
                await index.create_table(Chunk, dimension=8, index="hnsw")
                vectors = unit_rows(2_000, 8)
                await load(index, vectors, ("rare", *["common"] * 9))
                rare = AttributeRequirement.equal("topic", "rare")
                found = await index.search(Chunk, query=vectors[0], limit=50, requirements=rare)
                assert len(found) == 50 and {chunk.topic for chunk in found} == {"rare"}
        finally:
            standby.stop()
            primary.stop()


# -- the embedded server for TCP clients -------------------------------------------------------


async def test_server_start_port_serves_tcp_clients_such_as_pgbouncer(tmp_path: Path) -> None:
    """`pgstash server start --port N` makes the embedded server reachable over TCP (its socket
    folder is not traversable by other users), `server dsn` prints that DSN, and a PgBouncer
    in front of it serves pgstash in transaction mode."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = run_pgstash("server", "start", "--port", str(port), "--listen", "0.0.0.0", cwd=tmp_path)
    assert refused.returncode != 0 and "loopback" in refused.stderr
    started = run_pgstash("server", "start", "--port", str(port), cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    try:
        dsn = run_pgstash("server", "dsn", cwd=tmp_path).stdout.strip()
        assert dsn == f"postgresql://postgres@127.0.0.1:{port}/postgres"
        bouncer = start_pgbouncer(dsn)
        try:
            env = {"PGSTASH_DSN": bouncer.dsn("postgres"), "PGSTASH_POOLER": TRANSACTION}
            migrated = run_pgstash("migrate", env=env, cwd=tmp_path)
            assert migrated.returncode == 0, migrated.stderr
            status = run_pgstash("status", env=env, cwd=tmp_path)
            assert status.returncode == 0 and "0006_clock_timestamp_defaults" in status.stdout, status.stderr
        finally:
            bouncer.stop()
    finally:
        stopped = run_pgstash("server", "stop", cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stderr
