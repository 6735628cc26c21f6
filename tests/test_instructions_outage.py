"""Serving instructions through a database outage (issue 27 item 5), on a dedicated embedded
server stopped under a running reader: `stale_ok` serves the last value read, flagged `.stale`
and with a WARNING; `fallback=` answers when nothing was read; without either the error is
raised as ever; once the server is back the reader gets fresh values again (waited on, not
timed: the delay is printed, the 1 s bound is `Outage.retry_interval` plus one connection)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import pgstash
from pgstash import DatabaseError, PostgresConnectionPool, PostgresInstructionsRepository
from pgstash.embedded import EmbeddedServer
from pgstash.stores.chat import ChatPrompt
from pgstash.stores.outage import ResolvedText
from tests.support.faults import eventually


@pytest.fixture
async def server() -> AsyncIterator[EmbeddedServer]:
    folder = Path(tempfile.mkdtemp(prefix="pgstash-outage-"))  # short: the socket lives there
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = await asyncio.to_thread(pgstash.embedded.start(folder / "data").start)
    try:
        yield started
    finally:
        await asyncio.to_thread(started.stop)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.process
async def test_stale_values_are_served_while_the_server_is_down_and_fresh_ones_after(
    server: EmbeddedServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with PostgresConnectionPool.of(dsn=server.dsn, min_size=1, max_size=4) as postgres:
        await pgstash.migrate(postgres)
        writer = PostgresInstructionsRepository(postgres)
        await writer.define("greet", "v1 {user}", labels=("production",))
        await writer.define("chat", messages=[{"role": "system", "content": "v1"}], config={"m": 1})
        reader = PostgresInstructionsRepository(postgres, stale_ok=True)
        strict = PostgresInstructionsRepository(postgres)
        seen: list[ResolvedText] = []
        stop = asyncio.Event()

        async def read() -> None:
            while not stop.is_set():
                seen.append(await reader.resolve("greet", {"user": "Ada"}, label="production"))
                await asyncio.sleep(0.01)

        reading = asyncio.create_task(read())
        await eventually(lambda: _async(bool(seen) and not seen[-1].stale))
        assert seen[-1] == "v1 Ada" and seen[-1].revision == 1
        assert (await reader.resolve("chat", placeholders={})).messages[0]["content"] == "v1"

        caplog.set_level(logging.WARNING, logger="pgstash")
        await asyncio.to_thread(server.stop)
        await eventually(lambda: _async(seen[-1].stale))
        assert seen[-1] == "v1 Ada" and isinstance(seen[-1], str)
        assert any("unreachable" in record.getMessage() for record in caplog.records)
        chat = await reader.resolve("chat", placeholders={})
        assert isinstance(chat, ChatPrompt) and chat.stale and chat.config == {"m": 1}
        assert (await reader.load("greet", label="production")).stale  # type: ignore[union-attr]

        # nothing read before: the fallback, else the error; a call may opt out
        assert await reader.resolve("never-read", fallback="default text") == "default text"
        assert await strict.load("never-read", fallback=None) is None
        with pytest.raises(DatabaseError) as failure:
            await reader.resolve("never-read")
        assert failure.value.sqlstate is not None and failure.value.sqlstate.startswith("08")
        with pytest.raises(DatabaseError):
            await reader.resolve("greet", {"user": "Ada"}, label="production", stale_ok=False)
        with pytest.raises(DatabaseError):
            await strict.resolve("greet", {"user": "Ada"}, label="production")

        await asyncio.to_thread(server.start)
        back = time.monotonic()
        await eventually(lambda: _async(not seen[-1].stale), within=30.0)
        print(f"fresh values {time.monotonic() - back:.3f} s after the server accepted connections again")
        await writer.define("greet", "v2 {user}", labels=("production",))
        await eventually(lambda: _async(seen[-1] == "v2 Ada" and not seen[-1].stale), within=30.0)
        stop.set()
        await reading


async def _async(value: bool) -> bool:
    return value
