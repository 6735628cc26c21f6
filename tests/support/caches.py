"""Helpers for tests of the document caches."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pgstash import Postgres, PostgresConfigurationRepository
from pgstash.stores.cache import DocumentCache
from pgstash.stores.listener import CHANNEL, Listener


async def sneak(postgres: Postgres, identifier: str, content: dict[str, Any]) -> None:
    """Stores a snapshot behind pgstash's back (no NOTIFY): a load that still returns the old
    value proves it came from the cache."""
    await postgres.execute(
        "INSERT INTO configurations (identifier, content, created) VALUES ($1, $2, clock_timestamp())",
        identifier,
        content,
    )


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 1.0) -> float:
    """Polls `check` until it holds; fails after `within` seconds. Returns the seconds it took."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within}s")
        await asyncio.sleep(0.005)
    return time.monotonic() - started


async def drained(postgres: Postgres) -> None:
    """Waits until the pool's listener has handled every NOTIFY committed so far (a define's own
    NOTIFY comes back to its process and evicts the key once more, a little later): it sends a
    marker, and NOTIFYs arrive in commit order."""
    listener = Listener.of(postgres)
    marker = DocumentCache("test-marker", 1, 60.0, listener)
    await listener.subscribe(marker)
    before = marker.generation
    await postgres.execute(
        "SELECT pg_notify($1, json_build_object('store', 'test-marker', 'key', 'x')::text)", CHANNEL
    )

    async def arrived() -> bool:
        return marker.generation > before

    await eventually(arrived, within=5.0)


async def cached_behind_a_sneak(repository: PostgresConfigurationRepository, postgres: Postgres) -> None:
    """`shared` defined as {"from": "parent"} through `repository` (its own NOTIFY drained), then a
    snapshot sneaked behind the cache's back: the load still returns the parent's, so the cache
    is in use, and only a NOTIFY can make it read the table again."""
    await repository.define({"from": "parent"}, "shared")
    await drained(postgres)
    assert await repository.load_raw("shared") == {"from": "parent"}
    await sneak(postgres, "shared", {"from": "sneaked"})
    assert await repository.load_raw("shared") == {"from": "parent"}


async def define_in_another_process(dsn: str, pooler: str | None = None) -> asyncio.subprocess.Process:
    """Another Python process that defines `shared` as {"from": "child"} on a pool of its own on
    `dsn` (`pooler=` given), prints "defined" once committed, and exits 0; its stdout and stderr
    are pipes."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import asyncio, sys\n"
        "from pgstash import PostgresConfigurationRepository, PostgresConnectionPool\n"
        "async def main():\n"
        "    async with PostgresConnectionPool.of(dsn=sys.argv[1], pooler=sys.argv[2] or None):\n"
        "        await PostgresConfigurationRepository().define({'from': 'child'}, 'shared')\n"
        "        print('defined', flush=True)\n"
        "asyncio.run(main())\n",
        dsn,
        pooler or "",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
