"""The server stopped and started again under a live pool, on a dedicated embedded server (the
shared test server must stay up): every call fails with a clear `DatabaseError` while it is
down, writes tried then are not replayed, and the same pool, caches and listener work again
within seconds of the restart."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

import pgstash
from pgstash import (
    DatabaseError,
    ModelInput,
    PostgresConfigurationRepository,
    PostgresConnectionPool,
    PostgresInstructionsRepository,
    PostgresModelMemory,
    PostgresVectorIndex,
)
from pgstash.embedded import EmbeddedServer
from pgstash.stores.listener import Listener
from tests.support.faults import eventually

pytestmark = pytest.mark.process


@attrs.frozen
class Note:
    text: str


@pytest.fixture
async def server() -> AsyncIterator[EmbeddedServer]:
    folder = Path(tempfile.mkdtemp(prefix="pgstash-restart-"))  # short: the socket lives there
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = await asyncio.to_thread(pgstash.embedded.start(folder / "data").start)
    try:
        yield started
    finally:
        await asyncio.to_thread(started.stop)
        shutil.rmtree(folder, ignore_errors=True)


async def test_calls_fail_clearly_while_the_server_is_down_and_work_again_after(
    server: EmbeddedServer,
) -> None:
    dsn = server.dsn
    async with PostgresConnectionPool.of(dsn=dsn, min_size=2, max_size=4) as postgres:
        await pgstash.migrate(postgres)
        configurations = PostgresConfigurationRepository(postgres)
        instructions = PostgresInstructionsRepository(postgres)
        memory = PostgresModelMemory("chat", postgres=postgres)
        vectors = PostgresVectorIndex(postgres)
        await vectors.create_table(Note, dimension=3)
        await vectors.index(Note, values=[Note("before")], attribute=lambda _: [1.0, 0.0, 0.0])
        await configurations.define({"v": 1}, "app")
        await instructions.define("greet", "hello {name}")
        await memory.remember(ModelInput("before"))
        assert await configurations.load_raw("app") == {"v": 1}  # cached from here on
        listener = Listener.of(postgres)
        assert listener.listening

        await asyncio.to_thread(server.stop)

        async def down() -> bool:
            return not listener.listening

        await eventually(down)

        def unit_z(_: Note) -> list[float]:
            return [0.0, 0.0, 1.0]

        calls: dict[str, Callable[[], Awaitable[Any]]] = {
            "configurations_newest": lambda: configurations.load_raw("app"),  # not from the cache
            "instructions_newest": lambda: instructions.resolve("greet", {"name": "x"}),
            "memory_recall": lambda: memory.recall(),
            "memory_remember": lambda: memory.remember(ModelInput("while down")),
            "begin": lambda: configurations.define({"v": 2}, "app"),
            "vectors_table_facts": lambda: vectors.index(Note, values=[Note("x")], attribute=unit_z),
            "vectors_search": lambda: vectors.search(Note, query=[1.0, 0.0, 0.0]),
            "sql": lambda: postgres.fetch_value("SELECT 1"),
        }
        for name, call in calls.items():
            with pytest.raises(DatabaseError) as failure:
                await call()
            assert failure.value.query == name
            assert failure.value.sqlstate is not None and failure.value.sqlstate.startswith("08")
            assert "cannot connect to PostgreSQL at" in str(failure.value)

        await asyncio.to_thread(server.start)
        assert server.dsn == dsn

        async def serving() -> bool:
            return await postgres.fetch_value("SELECT 1") == 1

        await eventually(serving, within=10.0)  # the same pool, not recreated
        assert await configurations.load_raw("app") == {"v": 1}  # nothing replayed
        assert [element.content for element in (await memory.recall()).context] == ["before"]
        assert await instructions.resolve("greet", {"name": "x"}) == "hello x"
        assert await vectors.search(Note, query=[1.0, 0.0, 0.0]) == [Note("before")]
        assert await vectors.index(Note, values=[Note("after")], attribute=lambda _: [0.0, 1.0, 0.0]) == 1
        await memory.remember(ModelInput("after"))
        await configurations.define({"v": 3}, "app")
        assert await configurations.load_raw("app") == {"v": 3}

        # the listener is back: caches serve again and another process's define reaches them
        async def listening() -> bool:
            return listener.listening

        await eventually(listening, within=10.0)
        assert await configurations.load_raw("app") == {"v": 3}
        async with PostgresConnectionPool.of(dsn=dsn) as elsewhere:
            await PostgresConfigurationRepository(elsewhere).define({"v": 4}, "app")

        async def invalidated() -> bool:
            return await configurations.load_raw("app") == {"v": 4}

        await eventually(invalidated, within=5.0)
