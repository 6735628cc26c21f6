"""The caches of configurations and instructions: LRU and TTL, invalidation here and in other
processes, transactions, and the listening connection going down and coming back.

`sneak` writes a snapshot behind pgstash's back (no NOTIFY): a load that still returns the old
value proves it came from the cache."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any

import attrs
import pytest

import pgstash.stores.cache
from pgstash import (
    ConfigurationError,
    InstructionsArgumentDeclaration,
    InstructionsDeclaration,
    Postgres,
    PostgresConfigurationRepository,
    PostgresConnectionPool,
    PostgresInstructionsRepository,
)
from pgstash.stores.cache import LRU, MISS, DocumentCache
from pgstash.stores.listener import CHANNEL, Listener
from tests.support.caches import cached_behind_a_sneak, define_in_another_process, drained, eventually, sneak


async def deafen(postgres: Postgres) -> None:
    """Stops NOTIFY delivery to this pool's caches (UNLISTEN), leaving only local invalidation."""
    listener = Listener.of(postgres)
    assert listener._connection is not None
    await listener._connection.remove_listener(CHANNEL, listener._notified)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(pgstash.stores.cache.time, "monotonic", fake)
    return fake


def test_lru_evicts_the_least_recently_used_and_expires_entries(clock: Clock) -> None:
    cache: LRU[str, int] = LRU(limit=2, expiration=10.0)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recently used
    cache.put("c", 3)
    assert cache.get("b") is MISS and cache.get("a") == 1 and cache.get("c") == 3
    clock.now += 9.9
    assert cache.get("a") == 1
    clock.now += 0.2
    assert cache.get("a") is MISS and cache.get("c") is MISS and len(cache) == 0
    nothing: LRU[str, int] = LRU(limit=0, expiration=10.0)
    nothing.put("a", 1)
    assert nothing.get("a") is MISS


async def test_loads_are_served_from_the_cache(postgres: Postgres) -> None:
    repository = PostgresConfigurationRepository(postgres)
    await repository.define({"v": 1}, "app")
    await drained(postgres)
    assert await repository.load_raw("app") == {"v": 1}
    await sneak(postgres, "app", {"v": 2})
    assert await repository.load_raw("app") == {"v": 1}
    assert await PostgresConfigurationRepository(postgres).load_raw("app") == {"v": 2}  # its own cache


async def test_define_and_remove_invalidate_every_repository_here_at_once(postgres: Postgres) -> None:
    reader, writer = PostgresConfigurationRepository(postgres), PostgresConfigurationRepository(postgres)
    await writer.define({"v": 1}, "app")
    assert await reader.load_raw("app") == {"v": 1}
    assert list(await reader.configurations()) == ["app"]
    await deafen(postgres)  # no NOTIFY: what follows is local invalidation alone

    await writer.define({"v": 2}, "app")
    assert await reader.load_raw("app") == {"v": 2}
    await writer.define({"v": 1}, "other")
    assert list(await reader.configurations()) == ["app", "other"]
    await writer.remove("app")
    assert await reader.load_raw("app") is None
    assert list(await reader.configurations()) == ["other"]


async def test_the_cache_keeps_cache_limit_entries_least_recently_used_first(postgres: Postgres) -> None:
    repository = PostgresConfigurationRepository(postgres, cache_limit=2)
    for identifier in "abc":
        await sneak(postgres, identifier, {"v": 1})
    for identifier in "aba":
        await repository.load_raw(identifier)
    await repository.load_raw("c")  # evicts b, the least recently used
    for identifier in "abc":
        await sneak(postgres, identifier, {"v": 2})
    assert await repository.load_raw("c") == {"v": 1}
    assert await repository.load_raw("b") == {"v": 2}  # evicted: read again (and a goes)
    assert await repository.load_raw("c") == {"v": 1}
    assert await repository.load_raw("a") == {"v": 2}


async def test_entries_and_the_listing_expire(postgres: Postgres, clock: Clock) -> None:
    repository = PostgresConfigurationRepository(postgres, cache_expiration=30.0)
    await sneak(postgres, "a", {"v": 1})
    assert await repository.load_raw("a") == {"v": 1}
    assert list(await repository.configurations()) == ["a"]
    await sneak(postgres, "a", {"v": 2})
    await sneak(postgres, "b", {"v": 1})
    clock.now += 29.0
    assert await repository.load_raw("a") == {"v": 1}
    assert list(await repository.configurations()) == ["a"]
    clock.now += 2.0
    assert await repository.load_raw("a") == {"v": 2}
    assert list(await repository.configurations()) == ["a", "b"]


async def test_cache_limit_zero_reads_the_database_every_time(postgres: Postgres) -> None:
    repository = PostgresConfigurationRepository(postgres, cache_limit=0)
    await sneak(postgres, "a", {"v": 1})
    assert await repository.load_raw("a") == {"v": 1}
    assert list(await repository.configurations()) == ["a"]
    await sneak(postgres, "a", {"v": 2})
    await sneak(postgres, "b", {"v": 1})
    assert await repository.load_raw("a") == {"v": 2}
    assert list(await repository.configurations()) == ["a", "b"]


@attrs.frozen
class Frozen:
    v: int
    tags: tuple[str, ...] = ()


@attrs.frozen
class WithList:
    v: int
    tags: list[str] = attrs.Factory(list)


async def test_an_uncached_load_reads_every_time_and_decodes_a_snapshot_text_once(postgres: Postgres) -> None:
    """cache_limit=0: every load reads the database (a sneaked snapshot is seen at once); while
    the text read is the same, its decoded snapshot is reused: an immutable instance is shared
    as a cached snapshot's is, one with a list is made afresh on every load."""
    repository = PostgresConfigurationRepository(postgres, cache_limit=0)
    await sneak(postgres, "a", {"v": 1, "tags": ["x"]})
    first = await repository.load(Frozen, "a")
    assert first == Frozen(1, ("x",))
    assert await repository.load(Frozen, "a") is await repository.load(Frozen, "a") == first
    mutable = await repository.load(WithList, "a")
    assert mutable == WithList(1, ["x"]) and await repository.load(WithList, "a") is not mutable
    await sneak(postgres, "a", {"v": 2})
    assert await repository.load(Frozen, "a") == Frozen(2)
    await sneak(postgres, "a", {"v": "two"})
    with pytest.raises(ConfigurationError, match="does not fit"):
        await repository.load(Frozen, "a")
    with pytest.raises(ConfigurationError, match="does not fit"):
        await repository.load(Frozen, "a")  # a misfit is never remembered


async def test_instructions_are_cached_and_invalidated_alike(postgres: Postgres) -> None:
    reader, writer = PostgresInstructionsRepository(postgres), PostgresInstructionsRepository(postgres)
    declaration = InstructionsDeclaration("hi", arguments=(InstructionsArgumentDeclaration("who"),))
    await writer.define(declaration, "Hi {who}")
    await drained(postgres)
    assert await reader.resolve("hi", {"who": "Ada"}) == "Hi Ada"
    assert [d.name for d in await reader.available_instructions()] == ["hi"]
    await postgres.execute("INSERT INTO instructions (name, content) VALUES ('hi', 'sneaked {who}')")
    assert await reader.resolve("hi", {"who": "Ada"}) == "Hi Ada"  # cached by name
    assert await reader.load("hi") == "Hi {who}"
    await writer.define(InstructionsDeclaration("bye"), "Bye")
    assert [d.name for d in await reader.available_instructions()] == ["bye", "hi"]
    await writer.define(declaration, "Hello {who}")
    assert await reader.resolve("hi", {"who": "Ada"}) == "Hello Ada"
    await writer.remove("hi")
    assert await reader.load("hi") is None


async def test_a_notify_from_any_connection_invalidates(postgres: Postgres) -> None:
    repository = PostgresConfigurationRepository(postgres)
    await repository.define({"v": 1}, "app")
    await repository.load_raw("app")
    await sneak(postgres, "app", {"v": 2})
    await postgres.execute(
        "SELECT pg_notify($1, json_build_object('store', 'configurations', 'key', 'app')::text)", CHANNEL
    )

    async def fresh() -> bool:
        return await repository.load_raw("app") == {"v": 2}

    await eventually(fresh)
    await sneak(postgres, "app", {"v": 3})
    await postgres.execute("SELECT pg_notify($1, 'not json')", CHANNEL)  # unknown: flush everything

    async def flushed() -> bool:
        return await repository.load_raw("app") == {"v": 3}

    await eventually(flushed)


@pytest.mark.process
async def test_a_define_in_another_process_reaches_this_cache_within_a_second(
    postgres: Postgres, database_dsn: str
) -> None:
    repository = PostgresConfigurationRepository(postgres)
    await cached_behind_a_sneak(repository, postgres)
    child = await define_in_another_process(database_dsn)
    assert child.stdout is not None
    line = await asyncio.wait_for(child.stdout.readline(), timeout=60)
    assert line.strip() == b"defined", (line, await child.stderr.read() if child.stderr else b"")

    async def arrived() -> bool:
        return await repository.load_raw("shared") == {"from": "child"}

    await eventually(arrived, within=1.0)
    assert await asyncio.wait_for(child.wait(), timeout=60) == 0


async def test_every_repository_of_a_pool_shares_one_listening_connection(postgres: Postgres) -> None:
    repositories = [PostgresConfigurationRepository(postgres) for _ in range(3)]
    for repository in repositories:
        await repository.load_raw("x")
    await PostgresInstructionsRepository(postgres).load("x")
    listening = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'"
    )
    assert await postgres.fetch_value(listening) == 1
    # behind a transaction pooler (PGSTASH_TEST_POOLER) the listener connects to listen_dsn
    listen_dsn = postgres.lifecycle.pooling.listen_dsn
    async with PostgresConnectionPool.of(dsn=postgres.dsn, listen_dsn=listen_dsn) as other:
        await PostgresConfigurationRepository(other).load_raw("x")
        assert await postgres.fetch_value(listening) == 2  # one per pool
    assert Listener.of(postgres) is Listener.of(postgres)


async def test_a_killed_listener_flushes_the_caches_and_comes_back(
    postgres: Postgres, database_dsn: str
) -> None:
    repository = PostgresConfigurationRepository(postgres)
    await repository.define({"v": 1}, "app")
    assert await repository.load_raw("app") == {"v": 1}
    listener = Listener.of(postgres)
    listener.first_delay = 0.5  # a down period long enough to look at
    pid = listener.pid
    assert pid is not None

    assert await postgres.fetch_value("SELECT pg_terminate_backend($1)", pid)

    async def down() -> bool:
        return not listener.listening

    await eventually(down)
    # while down: nothing cached, every read goes to the database
    await sneak(postgres, "app", {"v": 2})
    assert await repository.load_raw("app") == {"v": 2}
    await sneak(postgres, "app", {"v": 3})
    assert await repository.load_raw("app") == {"v": 3}

    async def up() -> bool:
        return listener.listening

    await eventually(up, within=5.0)
    assert listener.pid not in (None, pid)
    # back: cached again, and invalidated again by NOTIFYs from elsewhere
    assert await repository.load_raw("app") == {"v": 3}
    await sneak(postgres, "app", {"v": 4})
    assert await repository.load_raw("app") == {"v": 3}
    async with PostgresConnectionPool.of(dsn=database_dsn) as elsewhere:
        await PostgresConfigurationRepository(elsewhere).define({"v": 5}, "app")

    async def invalidated() -> bool:
        return await repository.load_raw("app") == {"v": 5}

    await eventually(invalidated)


def outside(coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Runs `coroutine` outside the transaction in scope (a task copies the caller's context)."""
    return asyncio.create_task(coroutine, context=contextvars.Context())


async def test_a_rolled_back_define_leaves_nothing_in_any_cache(postgres: Postgres) -> None:
    repository = PostgresConfigurationRepository(postgres)
    await repository.define({"v": 1}, "app")
    await drained(postgres)
    assert await repository.load_raw("app") == {"v": 1}
    with pytest.raises(RuntimeError):
        async with postgres.transaction():
            await repository.define({"v": "uncommitted"}, "app")
            assert await repository.load_raw("app") == {"v": "uncommitted"}  # its own write
            assert list(await repository.configurations()) == ["app"]
            assert await outside(repository.load_raw("app")) == {"v": 1}  # not committed
            raise RuntimeError("roll back")
    assert await repository.load_raw("app") == {"v": 1}
    assert [snapshot.content for snapshot in await repository.history("app")] == [{"v": 1}]
    await sneak(postgres, "app", {"v": 2})
    assert await repository.load_raw("app") == {"v": 1}  # cached again afterwards


async def test_a_committed_define_is_seen_at_once_even_before_its_notify(postgres: Postgres) -> None:
    repository = PostgresConfigurationRepository(postgres)
    await repository.define({"v": 1}, "app")
    assert await repository.load_raw("app") == {"v": 1}
    await deafen(postgres)
    async with postgres.transaction():
        await repository.define({"v": 2}, "app")
        # a reader outside the transaction still sees the committed value, and must not keep it
        assert await outside(repository.load_raw("app")) == {"v": 1}
        assert await outside(repository.load_raw("app")) == {"v": 1}
    assert await repository.load_raw("app") == {"v": 2}


async def test_a_define_in_a_rolled_back_savepoint_is_not_seen(postgres: Postgres) -> None:
    repository = PostgresConfigurationRepository(postgres)
    await repository.define({"v": 1}, "app")
    await repository.load_raw("app")
    async with postgres.transaction():
        with pytest.raises(RuntimeError):
            async with postgres.transaction():
                await repository.define({"v": "inner"}, "app")
                raise RuntimeError("roll back the savepoint")
        await repository.define({"v": 1}, "other")
    assert await repository.load_raw("app") == {"v": 1}
    assert list(await repository.configurations()) == ["app", "other"]


async def test_a_value_fetched_before_an_invalidation_is_not_stored(postgres: Postgres) -> None:
    class Up:
        listening = True

    cache = DocumentCache("configurations", 8, 60.0, Up())
    ticket = cache.ticket()
    cache.invalidate("a")  # e.g. a NOTIFY arriving while the fetch was on its way
    cache.put("a", b"stale", ticket)
    assert cache.get("a") is MISS
    cache.put("a", b"fresh", cache.ticket())
    assert cache.get("a") == b"fresh"

    async with postgres.transaction(), postgres.connection() as transaction:
        cache.written("a", transaction)
        assert cache.get("a") is MISS and cache.ticket() is None
    assert cache.get("a") is MISS  # the transaction ended: nothing from before it survives
    cache.put("a", b"after", cache.ticket())
    assert cache.get("a") == b"after"

    Up.listening = False
    assert cache.get("a") is MISS and cache.ticket() is None
