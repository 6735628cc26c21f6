"""Retention: `prune` on the versioned stores (never a key's newest version) and
`PostgresModelMemory.forget_idle` (never a memory a `remember` in flight writes to), from Python
and from `pgstash prune`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pgstash import (
    ModelInput,
    ModelOutput,
    Postgres,
    PostgresConfigurationRepository,
    PostgresConnectionPool,
    PostgresInstructionsRepository,
    PostgresModelMemory,
)
from tests.support.cli import pgstash

STORES = [PostgresConfigurationRepository, PostgresInstructionsRepository]
Store = PostgresConfigurationRepository | PostgresInstructionsRepository


async def define(store: Store, key: str, version: int) -> None:
    if isinstance(store, PostgresConfigurationRepository):
        await store.define({"version": version}, key)
    else:
        await store.define(key, f"version {version}")


def version(revision: Any) -> int:
    content = revision.content
    return int(content["version"] if isinstance(content, dict) else content.split()[-1])


async def versions(store: Store, key: str) -> list[int]:
    return [version(revision) for revision in await store.history(key)]


async def filled(postgres: Postgres, kind: type[Store], count: int = 5) -> Store:
    store = kind(postgres)
    for key in ("a", "b"):
        for number in range(count):
            await define(store, key, number)
    await define(store, "single", 0)
    return store


@pytest.mark.parametrize("kind", STORES)
async def test_prune_keep_leaves_each_keys_newest_versions(postgres: Postgres, kind: type[Store]) -> None:
    store = await filled(postgres, kind)
    assert await store.prune(keep=2) == 6  # 3 of a, 3 of b, none of single
    assert await versions(store, "a") == [4, 3]
    assert await versions(store, "b") == [4, 3]
    assert await versions(store, "single") == [0]
    assert await store.prune(keep=2) == 0
    assert await store.prune(keep=1) == 2
    assert await versions(store, "a") == [4]


@pytest.mark.parametrize("kind", STORES)
async def test_prune_older_than_never_deletes_a_keys_newest(postgres: Postgres, kind: type[Store]) -> None:
    store = await filled(postgres, kind)
    assert await store.prune(older_than=timedelta(days=1)) == 0
    middle = (await store.history("a"))[2].created  # versions 0 and 1 are older
    assert await store.prune(older_than=middle) == 2  # b was written after a: none of b's is older
    assert await versions(store, "a") == [4, 3, 2]
    assert await versions(store, "b") == [4, 3, 2, 1, 0]
    await define(store, "later", 0)
    assert await store.prune(older_than=datetime(9999, 1, 1, tzinfo=UTC)) == 2 + 4
    assert [await versions(store, key) for key in ("a", "b", "single", "later")] == [[4], [4], [0], [0]]


@pytest.mark.parametrize("kind", STORES)
async def test_prune_with_both_deletes_versions_beyond_keep_and_older(
    postgres: Postgres, kind: type[Store]
) -> None:
    store = await filled(postgres, kind)
    cut = (await store.history("a"))[1].created  # a's 0, 1, 2 are older than this
    assert await store.prune(keep=4, older_than=cut) == 1  # a's 0 only: beyond 4 newest and older
    assert await versions(store, "a") == [4, 3, 2, 1]
    assert await versions(store, "b") == [4, 3, 2, 1, 0]


async def test_prune_does_not_change_what_load_returns_nor_the_caches(postgres: Postgres) -> None:
    configurations = await filled(postgres, PostgresConfigurationRepository)
    assert await configurations.load_raw("a") == {"version": 4}  # cached now
    await configurations.prune(keep=1)
    assert await configurations.load_raw("a") == {"version": 4}
    assert list(await configurations.configurations()) == ["a", "b", "single"]


async def test_prune_joins_the_transaction_in_scope(postgres: Postgres) -> None:
    store = await filled(postgres, PostgresConfigurationRepository)
    with pytest.raises(RuntimeError):
        async with postgres.transaction():
            assert await store.prune(keep=1) == 8
            raise RuntimeError("roll back")
    assert await versions(store, "a") == [4, 3, 2, 1, 0]


BAD_PRUNES: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({}, TypeError, "keep=, older_than= or both"),
    ({"keep": 0}, ValueError, "keep must be a positive int"),
    ({"keep": -1}, ValueError, "keep must be a positive int"),
    ({"keep": True}, ValueError, "keep must be a positive int"),
    ({"keep": "2"}, ValueError, "keep must be a positive int"),
    ({"keep": 2**63}, ValueError, "keep must be at most"),
    ({"older_than": datetime(2020, 1, 1)}, ValueError, "timezone-aware"),
    ({"older_than": timedelta(0)}, ValueError, "positive timedelta"),
    ({"older_than": timedelta(days=-1)}, ValueError, "positive timedelta"),
    ({"older_than": timedelta.max}, ValueError, "before the year 1"),
    ({"older_than": 3600}, TypeError, "timedelta"),
    ({"keep": 1, "older_than": "7d"}, TypeError, "timedelta"),
]


@pytest.mark.parametrize(
    ("arguments", "error", "words"), BAD_PRUNES, ids=[str(case[0]) for case in BAD_PRUNES]
)
async def test_bad_prune_arguments_are_refused_before_anything_is_deleted(
    postgres: Postgres, arguments: dict[str, Any], error: type[Exception], words: str
) -> None:
    for kind in STORES:
        store = await filled(postgres, kind, count=2) if kind is STORES[0] else kind(postgres)
        with pytest.raises(error, match=words):
            await store.prune(**arguments)
    assert len(await STORES[0](postgres).history("a")) == 2


async def now(postgres: Postgres) -> datetime:
    moment: datetime = await postgres.fetch_value("SELECT clock_timestamp()")
    return moment


async def test_forget_idle_forgets_only_memories_with_nothing_remembered_since(postgres: Postgres) -> None:
    idle, variables_only, empty = (
        PostgresModelMemory(name, postgres=postgres) for name in ("idle", "vars", "e")
    )
    await idle.remember(ModelInput("hello"), ModelOutput("hi"))
    await variables_only.maintenance(variables={"turn": 1})
    await empty.maintenance()
    since = await now(postgres)
    active = PostgresModelMemory("active", postgres=postgres)
    await active.remember(ModelInput("still here"))
    await variables_only.maintenance(variables={"turn": 2})  # a variables snapshot is activity too
    assert await PostgresModelMemory.forget_idle(timedelta(days=1), postgres=postgres) == 0
    assert await PostgresModelMemory.forget_idle(since, postgres=postgres) == 2  # idle and e
    assert (await idle.recall()).context == ()
    assert [element.content for element in (await active.recall()).context] == ["still here"]
    assert (await variables_only.recall()).variables == {"turn": 2}
    count = await postgres.fetch_value("SELECT count(*) FROM memories_elements WHERE identifier = 'idle'")
    assert count == 0
    assert await PostgresModelMemory.forget_idle(since, postgres=postgres) == 0


async def test_forget_idle_uses_the_current_pool_and_refuses_bad_ages(postgres: Postgres) -> None:
    await PostgresModelMemory("m", postgres=postgres).remember(ModelInput("x"))
    for bad, error in ((timedelta(0), ValueError), (datetime(2020, 1, 1), ValueError), ("1d", TypeError)):
        with pytest.raises(error):
            await PostgresModelMemory.forget_idle(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="postgres must be"):
        await PostgresModelMemory.forget_idle(timedelta(days=1), postgres="dsn")  # type: ignore[arg-type]
    assert await PostgresModelMemory.forget_idle(datetime(9999, 1, 1, tzinfo=UTC)) == 1


async def test_forget_idle_keeps_a_memory_a_remember_in_flight_writes_to(database_dsn: str) -> None:
    """The remember holds the memory's row lock when forget_idle starts; forget_idle waits for it,
    and once it commits sees the memory is no longer idle (the second, lock-then-read run)."""
    async with PostgresConnectionPool.of(dsn=database_dsn) as postgres:
        memory = PostgresModelMemory("busy", postgres=postgres)
        await memory.remember(ModelInput("long ago"))
        since = await now(postgres)
        remembering, release = asyncio.Event(), asyncio.Event()

        async def remember_slowly() -> None:
            async with postgres.transaction():
                await memory.remember(ModelInput("just now"))
                remembering.set()
                await release.wait()

        writer = asyncio.create_task(remember_slowly())
        await remembering.wait()
        forgetting = asyncio.create_task(PostgresModelMemory.forget_idle(since, postgres=postgres))
        for _ in range(200):
            waiting = await postgres.fetch_value(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if waiting:
                break
            await asyncio.sleep(0.01)
        assert waiting == 1 and not forgetting.done()
        release.set()
        await writer
        assert await forgetting == 0
        assert [element.content for element in (await memory.recall()).context] == ["long ago", "just now"]


@pytest.mark.process
def test_pgstash_prune_prints_counts(database_dsn: str) -> None:
    async def fill() -> None:
        async with PostgresConnectionPool.of(dsn=database_dsn) as postgres:
            await filled(postgres, PostgresConfigurationRepository, count=3)
            await filled(postgres, PostgresInstructionsRepository, count=2)
            await PostgresModelMemory("old", postgres=postgres).remember(ModelInput("x"))

    asyncio.run(fill())
    pruned = pgstash("prune", "configurations", "--keep", "2", "--dsn", database_dsn)
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.startswith("pruned 2 configurations versions")
    pruned = pgstash("--dsn", database_dsn, "prune", "instructions", "--older-than", "1d")
    assert (pruned.returncode, pruned.stdout.split()[:2]) == (0, ["pruned", "0"]), pruned.stderr
    forgot = pgstash("prune", "memories", "--idle", "1w", "--dsn", database_dsn)
    assert (forgot.returncode, forgot.stdout.split()[:2]) == (0, ["forgot", "0"]), forgot.stderr


@pytest.mark.process
@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["configurations"], "--keep N, --older-than AGE or both"),
        (["instructions", "--keep", "2", "--idle", "1d"], "no --idle"),
        (["memories"], "takes --idle AGE"),
        (["memories", "--idle", "1d", "--keep", "1"], "takes --idle AGE"),
        (["configurations", "--keep", "0"], "must be at least 1"),
        (["configurations", "--older-than", "7 days"], "not a duration"),
        (["memories", "--idle", "0s"], "longer than zero"),
        (["sessions", "--keep", "1"], "invalid choice"),
    ],
)
def test_pgstash_prune_refuses_bad_options_before_connecting(arguments: list[str], words: str) -> None:
    result = pgstash("prune", *arguments, "--dsn", "postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 2 and words in result.stderr, result.stderr
