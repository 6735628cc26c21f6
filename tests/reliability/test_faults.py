"""Faults on the real server: a backend terminated in the middle of a write, connections that
died behind the pool's back, statements that time out, and backends killed at random under load.
Every failure is a `DatabaseError` naming the query, nothing is half-written, and the same pool
serves the next call. (The server stopped and started again: test_restart.py. The cache
listener's connection killed: tests/test_caching.py, test_a_killed_listener_flushes_the_caches_and_comes_back,
and test_restart.py for the listener across a server restart.)"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

import asyncpg
import attrs
import numpy as np
import pytest

from pgstash import (
    DatabaseError,
    ModelInput,
    ModelOutput,
    PgstashError,
    Postgres,
    PostgresConfigurationRepository,
    PostgresConnectionPool,
    PostgresInstructionsRepository,
    PostgresModelMemory,
    PostgresVectorIndex,
)
from tests.support.faults import (
    STALL,
    TABLES,
    counts,
    killed_midway,
    pool_pids,
    stall_inserts,
    terminate_unnoticed,
)

# SQLSTATEs of a connection that is gone: admin_shutdown, connection_does_not_exist,
# connection_failure.
LOST = {"57P01", "08003", "08006"}


def lost(error: BaseException, query: str) -> bool:
    return isinstance(error, DatabaseError) and error.query == query and error.sqlstate in LOST


# -- a backend terminated in the middle of a write ---------------------------------------------


@pytest.mark.parametrize("existing", [False, True], ids=["new-memory", "existing-memory"])
async def test_remember_killed_midway_writes_nothing_and_the_pool_heals(
    postgres: Postgres, existing: bool
) -> None:
    memory = PostgresModelMemory("conversation", postgres=postgres)
    if existing:
        await memory.remember(ModelInput("before"), ModelOutput("kept"), variables={"turn": 1})
    before = await counts(postgres)
    await stall_inserts(postgres, "memories_elements")
    items = [ModelInput(f"item {n}") for n in range(5)] + [ModelInput(STALL), ModelOutput("after")]

    error = await killed_midway(postgres, memory.remember(*items, variables={"turn": 2}))

    assert lost(error, "memory_remember"), error
    assert await counts(postgres) == before  # five elements were in, then the backend died
    recall = await memory.recall()
    assert [element.content for element in recall.context] == (["before", "kept"] if existing else [])
    assert recall.variables == ({"turn": 1} if existing else {})
    await memory.remember(ModelInput("next"), variables={"turn": 3})  # the same pool
    assert (await memory.recall()).variables == {"turn": 3}


@pytest.mark.parametrize("store", ["configurations", "instructions"])
async def test_define_killed_midway_writes_nothing_and_the_pool_heals(postgres: Postgres, store: str) -> None:
    configurations = PostgresConfigurationRepository(postgres)
    instructions = PostgresInstructionsRepository(postgres)

    async def define(text: str) -> None:
        if store == "configurations":
            await configurations.define({"text": text}, "app")
        else:
            await instructions.define("app", text)

    async def newest() -> Any:
        if store == "configurations":
            return (await configurations.load_raw("app") or {}).get("text")
        return await instructions.load("app")

    await define("first")
    assert await newest() == "first"  # now cached
    before = await counts(postgres)
    await stall_inserts(postgres, store)

    error = await killed_midway(postgres, define(STALL))

    assert lost(error, f"{store}_insert"), error
    assert await counts(postgres) == before
    assert await newest() == "first"
    await define("second")
    assert await newest() == "second"
    assert await counts(postgres) == {**before, store: before[store] + 1}


# -- connections that died while idle, unnoticed ----------------------------------------------


async def test_a_write_on_a_connection_that_died_idle_runs_once_on_another(
    database_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The pooled connection died while idle: that is found before anything is sent (provably
    not executed), so the write runs on another connection, once."""
    async with PostgresConnectionPool.of(dsn=database_dsn, min_size=1, max_size=1) as postgres:
        memory = PostgresModelMemory("m", postgres=postgres)
        await memory.maintenance()
        terminate_unnoticed(database_dsn, pool_pids(postgres))

        await memory.remember(ModelInput("once"))

        assert [element.content for element in (await memory.recall()).context] == ["once"]
        replaced = [record.getMessage() for record in caplog.records if "another" in record.getMessage()]
        assert replaced == [
            "query memory_remember: a pooled connection had closed; nothing was sent, using another"
        ]


async def test_a_transaction_on_a_connection_that_died_idle_begins_on_another(database_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=database_dsn, min_size=1, max_size=1) as postgres:
        configurations = PostgresConfigurationRepository(postgres)
        await configurations.define({"v": 1}, "app")
        terminate_unnoticed(database_dsn, pool_pids(postgres))

        await configurations.define({"v": 2}, "app")

        assert [snapshot.content for snapshot in await configurations.history("app")] == [{"v": 2}, {"v": 1}]


async def test_a_statement_that_may_have_run_is_never_sent_again(database_dsn: str) -> None:
    """The backend is terminated while the read runs: the outcome is unknown, so it raises."""
    async with PostgresConnectionPool.of(dsn=database_dsn, min_size=1, max_size=1) as postgres:
        task = asyncio.ensure_future(postgres.fetch_value("SELECT pg_sleep(30)"))
        pid = None
        admin = await asyncpg.connect(database_dsn)
        try:
            while pid is None:
                await asyncio.sleep(0.02)
                pid = await admin.fetchval(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE wait_event = 'PgSleep' AND pid <> pg_backend_pid()"
                )
            await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
        finally:
            await admin.close()
        with pytest.raises(DatabaseError) as failure:
            await task
        assert lost(failure.value, "sql"), failure.value
        assert await postgres.fetch_value("SELECT 1") == 1


async def test_a_dead_connection_with_no_replacement_is_one_error(
    database_dsn: str, template_ready: str
) -> None:
    """With the server refusing every new connection as well, replacing the dead connection
    fails: one error naming the query, no loop."""
    async with PostgresConnectionPool.of(dsn=database_dsn, min_size=1, max_size=1) as postgres:
        memory = PostgresModelMemory("m", postgres=postgres)
        await memory.maintenance()
        database = await postgres.fetch_value("SELECT current_database()")
        admin = await asyncpg.connect(template_ready)
        try:
            await admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
            terminate_unnoticed(template_ready, pool_pids(postgres))
            with pytest.raises(DatabaseError) as failure:
                await memory.recall()
            assert failure.value.query == "memory_recall"
            assert "not currently accepting connections" in str(failure.value)
        finally:
            await admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')
            await admin.close()
        assert (await memory.recall()).context == ()


async def test_the_callers_own_error_in_a_transaction_rolls_back_and_keeps_the_connection(
    database_dsn: str,
) -> None:
    """Only a lost connection is dropped: an OSError of the caller's own is not one."""
    async with PostgresConnectionPool.of(dsn=database_dsn, min_size=1, max_size=1) as postgres:
        configurations = PostgresConfigurationRepository(postgres)
        pid = await postgres.fetch_value("SELECT pg_backend_pid()")
        with pytest.raises(FileNotFoundError):
            async with postgres.transaction():
                await configurations.define({"v": 1}, "app")
                raise FileNotFoundError("the caller's own")
        assert await configurations.load_raw("app") is None
        assert await postgres.fetch_value("SELECT pg_backend_pid()") == pid


# -- statement timeouts -----------------------------------------------------------------------


async def test_a_store_call_that_times_out_names_its_query_and_is_not_retried(
    database_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """tests/test_connection.py covers raw SQL; here named store calls, blocked behind a lock."""
    blocker = await asyncpg.connect(database_dsn)
    async with PostgresConnectionPool.of(dsn=database_dsn, command_timeout=0.3) as postgres:
        configurations = PostgresConfigurationRepository(postgres, cache_limit=0)
        memory = PostgresModelMemory("m", postgres=postgres)
        vectors = PostgresVectorIndex(postgres)
        await vectors.create_table(Passage, dimension=3)
        await configurations.define({"v": 1}, "app")
        await vectors.index(Passage, values=[Passage("kept", 0)], attribute=lambda _: [0.0, 1.0, 0.0])
        before = await counts(postgres, (*TABLES, "passage"))

        def x_axis(_: Passage) -> list[float]:
            return [1.0, 0.0, 0.0]

        try:
            async with blocker.transaction():
                await blocker.execute(
                    "LOCK TABLE configurations, memories, memories_elements, passage IN ACCESS EXCLUSIVE MODE"
                )
                calls = {
                    "configurations_newest": configurations.load_raw("app"),
                    "configurations_insert": configurations.define({"v": 2}, "app"),
                    "memory_remember": memory.remember(ModelInput("late")),
                    "memory_recall": memory.recall(),
                    "vectors_copy": vectors.index(Passage, values=[Passage("late", 1)], attribute=x_axis),
                    "vectors_search": vectors.search(Passage, query=[1.0, 0.0, 0.0]),
                }
                for name, call in calls.items():
                    with pytest.raises(DatabaseError) as failure:
                        await call
                    assert failure.value.query == name
                    assert failure.value.sqlstate == "57014"
                    assert f"query {name!r}" in str(failure.value)
                    assert "command_timeout" in str(failure.value)
        finally:
            await blocker.close()
        # a timeout is not a lost connection: nothing was run a second time
        assert not [record for record in caplog.records if "retrying" in record.getMessage()]
        assert await counts(postgres, (*TABLES, "passage")) == before
        assert await configurations.load_raw("app") == {"v": 1}  # the same pool, lock gone
        assert await vectors.search(Passage, query=[1.0, 0.0, 0.0]) == [Passage("kept", 0)]


# -- backends killed at random under load -----------------------------------------------------


async def test_backends_killed_at_random_fail_calls_only_with_database_errors(database_dsn: str) -> None:
    """Whatever state a connection is in when its backend dies (idle, in a statement, inside a
    transaction, being reset, in a COPY), the caller gets a `DatabaseError`, never a raw driver
    error (nor asyncpg's InternalClientError), a remember and an index batch are whole or absent,
    and the pool heals."""
    rng = random.Random(7)
    async with PostgresConnectionPool.of(dsn=database_dsn, min_size=4, max_size=4) as postgres:
        configurations = PostgresConfigurationRepository(postgres)
        instructions = PostgresInstructionsRepository(postgres)
        vectors = PostgresVectorIndex(postgres)
        await instructions.define("greet", "hello {name}")
        await vectors.create_table(Passage, dimension=8)
        unit = np.eye(8, dtype=np.float32)
        failures: list[BaseException] = []
        done = asyncio.Event()

        async def work(task: int) -> None:
            memory = PostgresModelMemory(f"memory-{task % 4}", postgres=postgres)
            for step in range(40):
                tag = f"{task}/{step}"
                try:
                    kind = (task + step) % 7
                    if kind == 0:
                        await memory.remember(ModelInput(tag), ModelOutput(tag))
                    elif kind == 1:
                        await memory.recall(limit=4)
                    elif kind == 2:
                        await configurations.define({"tag": tag}, f"config-{task % 3}")
                    elif kind == 3:
                        await configurations.load_raw(f"config-{task % 3}")
                    elif kind == 4:
                        async with postgres.transaction():
                            await instructions.resolve("greet", {"name": tag})
                            await postgres.execute("SELECT pg_sleep(0.002)")
                    elif kind == 5:  # a batch is whole or absent: 50 rows sharing the tag
                        batch = [Passage(tag, n) for n in range(50)]
                        await vectors.index(Passage, values=batch, attribute=lambda p: unit[p.number % 8])
                    else:
                        await vectors.search(Passage, query=unit[step % 8], limit=3)
                except Exception as error:
                    failures.append(error)

        async def killer() -> int:
            kills = 0
            while not done.is_set():
                pids = pool_pids(postgres)
                if pids:
                    with contextlib.suppress(DatabaseError):  # it may terminate its own backend
                        await postgres.fetch_value("SELECT pg_terminate_backend($1)", rng.choice(pids))
                    kills += 1
                await asyncio.sleep(rng.uniform(0.005, 0.03))
            return kills

        killing = asyncio.create_task(killer())
        await asyncio.gather(*(work(task) for task in range(12)))
        done.set()
        kills = await killing

        assert kills > 10
        raw = [error for error in failures if not isinstance(error, PgstashError)]
        assert not raw, raw[:3]
        assert all(isinstance(error, DatabaseError) and error.sqlstate in LOST for error in failures), {
            (type(error).__name__, str(error)[:120]) for error in failures
        }
        # a remember is whole or absent: its input and output share the tag
        rows = await postgres.fetch(
            "SELECT content->>'content' AS tag, count(*) AS n FROM memories_elements GROUP BY 1"
        )
        assert rows and all(row["n"] == 2 for row in rows)
        batches = await postgres.fetch("SELECT count(*) AS n FROM passage GROUP BY payload->>'text'")
        assert batches and all(row["n"] == 50 for row in batches)
        # the pool heals: every connection serves again
        await asyncio.gather(*(configurations.history(f"config-{n}") for n in range(8)))
        await instructions.define("greet", "hi {name}")
        assert await instructions.resolve("greet", {"name": "x"}) == "hi x"


# -- the vector index: a large index killed in the middle of its COPY -------------------------


@attrs.frozen
class Passage:
    text: str
    number: int


async def test_a_large_index_killed_mid_copy_ends_in_an_error_and_writes_nothing(postgres: Postgres) -> None:
    """asyncpg's COPY waits forever for its socket to drain when the backend dies with the client
    blocked on a full send buffer: here the server stalls on row 15000 of 20000 (megabytes
    still to send), then is terminated. The call must end, in an error, with no row written."""
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((20_000, 64)).astype(np.float32)
    index = PostgresVectorIndex(postgres)
    await index.create_table(Passage, dimension=64, index=None)  # the COPY is what is tested
    await index.index(Passage, values=[Passage("before", 0)], attribute=lambda p: vectors[p.number])
    await stall_inserts(postgres, "passage")
    passages = [Passage(STALL if n == 15_000 else f"passage {n}", n) for n in range(20_000)]

    error = await killed_midway(
        postgres, index.index(Passage, values=passages, attribute=lambda p: vectors[p.number])
    )

    assert lost(error, "vectors_copy"), error
    assert await postgres.fetch_value("SELECT count(*) FROM passage") == 1
    await postgres.execute("DROP TRIGGER reliability_stall ON passage")
    assert await index.index(Passage, values=passages[:100], attribute=lambda p: vectors[p.number]) == 100
    found = await index.search(Passage, query=vectors[42], limit=1)
    assert found == [passages[42]]
