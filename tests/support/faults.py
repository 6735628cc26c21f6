"""Helpers that break things on purpose, on the real server: backends stalled inside a write
and terminated there, connections killed behind the pool's back, row counts to prove nothing
was half-written."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from pgstash import Postgres

STALL = "stall-here"
"""A row whose text holds this marker makes its INSERT (or COPY) sleep until terminated."""

# Every table a store writes; a failed call must leave each count as it was.
TABLES = ("configurations", "instructions", "memories", "memories_elements", "memories_variables")
# every table migrate creates: the stores' and schema/0010's (instructions labels, issue 27)
MIGRATED_TABLES = (*TABLES, "instructions_label_moves", "instructions_labels", "instructions_revisions")


async def stall_inserts(postgres: Postgres, table: str) -> None:
    """A trigger on `table` that sleeps inside the writer's transaction when a row carries
    `STALL` (the rows before it in the same statement are already inserted)."""
    await postgres.execute(
        f"""
        CREATE OR REPLACE FUNCTION reliability_stall() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF strpos(row_to_json(NEW)::text, '{STALL}') > 0 THEN
                PERFORM pg_sleep(60);
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER reliability_stall BEFORE INSERT ON "{table}"
        FOR EACH ROW EXECUTE FUNCTION reliability_stall();
        """
    )


async def stalled_backend(postgres: Postgres, within: float = 10.0) -> int:
    """The pid of the backend sleeping in `reliability_stall` (polls until there is one)."""
    started = time.monotonic()
    while True:
        pid = await postgres.fetch_value(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event = 'PgSleep' AND pid <> pg_backend_pid() LIMIT 1"
        )
        if pid is not None:
            return int(pid)
        if time.monotonic() - started > within:
            raise AssertionError(f"no backend stalled within {within}s")
        await asyncio.sleep(0.01)


async def terminate(postgres: Postgres, pid: int) -> None:
    """Terminates the backend and waits until it has exited."""
    assert await postgres.fetch_value("SELECT pg_terminate_backend($1, 5000)", pid)


async def killed_midway(postgres: Postgres, call: Awaitable[Any]) -> BaseException:
    """Runs `call` until its backend stalls, terminates that backend, and returns what `call`
    raised (it must raise)."""
    task = asyncio.ensure_future(call)
    try:
        await terminate(postgres, await stalled_backend(postgres))
    except BaseException:
        task.cancel()
        raise
    try:
        await asyncio.wait_for(task, timeout=30)
    except Exception as error:
        return error
    raise AssertionError("the call succeeded although its backend was terminated")


def terminate_unnoticed(dsn: str, pids: list[int]) -> None:
    """Terminates the backends from another thread while this event loop is blocked, so that the
    pool's connections cannot notice before their next use: the silent-death case."""

    async def kill() -> None:
        admin = await asyncpg.connect(dsn)
        try:
            for pid in pids:
                assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
        finally:
            await admin.close()

    failures: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(kill())
        except BaseException as error:
            failures.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failures:
        raise failures[0]


def pool_pids(postgres: Postgres) -> list[int]:
    """The backend pids of the pool's open connections (the listener's is not among them)."""
    holders = postgres._pool._holders  # type: ignore[attr-defined]
    return [
        holder._con.get_server_pid()
        for holder in holders
        if holder._con is not None and not holder._con.is_closed()
    ]


async def counts(postgres: Postgres, tables: tuple[str, ...] = TABLES) -> dict[str, int]:
    """Rows per table."""
    return {table: await postgres.fetch_value(f'SELECT count(*) FROM "{table}"') for table in tables}


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    """Polls `check` (an exception counts as not yet) until it holds; fails after `within` s."""
    started = time.monotonic()
    last: BaseException | None = None
    while True:
        try:
            if await check():
                return
        except Exception as error:
            last = error
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within}s (last error: {last!r})")
        await asyncio.sleep(0.05)
