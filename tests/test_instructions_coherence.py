"""Label moves and caches (issue 27 item 2): a move made in another process reaches this
process's cache through NOTIFY, a removed label is never served from any cache, two processes
moving one label at once (exactly one wins), and the fence: a read that fetched before a move is
never cached after it. The lag's p99 is measured in bench/labels.py, not asserted here."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

from pgstash import Postgres, PostgresConnectionPool, PostgresInstructionsRepository
from pgstash.errors import LabelNotFoundError
from tests.support.caches import drained, eventually

CHILD = """
import asyncio, sys
from pgstash import PostgresConnectionPool, PostgresInstructionsRepository
from pgstash.errors import LabelConflictError

async def main():
    async with PostgresConnectionPool.of(dsn=sys.argv[1]) as postgres:
        repository = PostgresInstructionsRepository(postgres)
        await postgres.fetch_value("SELECT 1")
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        try:
            {action}
            print("won", flush=True)
        except LabelConflictError:
            print("conflict", flush=True)

asyncio.run(main())
"""


async def child(dsn: str, action: str) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD.replace("{action}", action),
        dsn,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
    assert line.strip() == b"ready", (line, await process.stderr.read() if process.stderr else b"")
    return process


async def go(process: asyncio.subprocess.Process) -> str:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(b"go\n")
    await process.stdin.drain()
    line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
    assert await asyncio.wait_for(process.wait(), timeout=60) == 0
    return line.decode().strip()


async def sneak_label(postgres: Postgres, name: str, label: str, revision: int) -> None:
    """Moves a label behind pgstash's back (no NOTIFY): a read that still returns the old value
    proves it came from the cache."""
    await postgres.execute(
        "UPDATE instructions_labels SET revision = $3 WHERE name = $1 AND label = $2", name, label, revision
    )


@pytest.mark.process
async def test_a_label_move_in_another_process_reaches_this_cache(
    postgres: Postgres, database_dsn: str
) -> None:
    repository = PostgresInstructionsRepository(postgres)
    for text in ("v1", "v2", "v3"):
        await repository.define("greet", text)
    await repository.move_label("greet", "production", to=1, expected=None)
    await drained(postgres)
    assert await repository.load("greet", label="production") == "v1"
    await sneak_label(postgres, "greet", "production", 3)
    assert await repository.load("greet", label="production") == "v1"  # the cache is in use
    await sneak_label(postgres, "greet", "production", 1)

    mover = await child(database_dsn, 'await repository.move_label("greet", "production", to=2, expected=1)')
    assert await go(mover) == "won"

    async def arrived() -> bool:
        return await repository.load("greet", label="production") == "v2"

    await eventually(arrived, within=5.0)


@pytest.mark.process
async def test_a_removed_label_is_never_served_from_any_cache(postgres: Postgres, database_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=database_dsn) as other:
        here = PostgresInstructionsRepository(postgres)
        there = PostgresInstructionsRepository(other, default_label="production")
        await here.define("greet", "v1", labels=("production",))
        await drained(postgres)
        await drained(other)
        assert await here.resolve("greet", label="production") == "v1"
        assert await there.resolve("greet") == "v1"

        remover = await child(database_dsn, 'await repository.remove_label("greet", "production")')
        assert await go(remover) == "won"

        async def gone(repository: PostgresInstructionsRepository, **label: Any) -> bool:
            try:
                await repository.resolve("greet", **label)
            except LabelNotFoundError:
                return True
            return False

        await eventually(lambda: gone(here, label="production"), within=5.0)
        await eventually(lambda: gone(there), within=5.0)
        for _ in range(20):  # and never again, from either cache
            assert await gone(here, label="production") and await gone(there)
        assert await here.resolve("greet") == "v1"  # latest is still there


@pytest.mark.process
async def test_two_processes_moving_one_label_at_once_exactly_one_wins(
    postgres: Postgres, database_dsn: str
) -> None:
    repository = PostgresInstructionsRepository(postgres)
    for text in ("v1", "v2", "v3"):
        await repository.define("greet", text)
    await repository.move_label("greet", "production", to=1, expected=None)
    movers = [
        await child(database_dsn, f'await repository.move_label("greet", "production", to={to}, expected=1)')
        for to in (2, 3)
    ]
    outcomes = await asyncio.gather(*(go(mover) for mover in movers))
    assert sorted(outcomes) == ["conflict", "won"]
    winner = (2, 3)[outcomes.index("won")]
    assert (await repository.labels("greet"))["production"] == winner
    moves = await repository.label_history("greet", "production")
    assert [(move.from_revision, move.to_revision) for move in moves] == [(1, winner), (None, 1)]


async def test_a_read_fetched_before_a_move_is_never_cached_after_it(
    postgres: Postgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader, writer = PostgresInstructionsRepository(postgres), PostgresInstructionsRepository(postgres)
    await reader.define("greet", "v1", labels=("production",))
    await reader.define("greet", "v2")
    await drained(postgres)
    fetched, release = asyncio.Event(), asyncio.Event()
    run = Postgres.run

    async def slow(self: Postgres, name: Any, /, **values: Any) -> Any:
        result = await run(self, name, **values)
        named = getattr(name, "name", name)  # a constant of pgstash.sql.names, or a string
        if named == "instructions_labelled" and not release.is_set():
            fetched.set()
            await release.wait()  # the old row is in hand; the move happens now
        return result

    monkeypatch.setattr(Postgres, "run", slow)
    read = asyncio.create_task(reader.load("greet", label="production"))
    await asyncio.wait_for(fetched.wait(), timeout=60)  # never forever: fails if the read never came
    await writer.move_label("greet", "production", to=2, expected=1)
    release.set()
    assert await read == "v1"  # it started before the move
    assert await reader.load("greet", label="production") == "v2"  # but was not cached
