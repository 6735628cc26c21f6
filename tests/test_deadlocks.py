"""The deadlock rule of docs/queries.md: writers inside a caller's transaction hold each key's lock
until commit, so two transactions writing the same keys in opposite orders deadlock (40P01),
and writers that take their keys in one fixed order never do."""

from __future__ import annotations

import asyncio

from pgstash import (
    DatabaseError,
    ModelInput,
    Postgres,
    PostgresConfigurationRepository,
    PostgresInstructionsRepository,
    PostgresModelMemory,
)


async def test_opposite_orders_deadlock(postgres: Postgres) -> None:
    """The control: each transaction holds its first key and waits for the other's."""
    configurations = PostgresConfigurationRepository(postgres)
    holding = [asyncio.Event(), asyncio.Event()]

    async def writer(first: str, second: str, mine: asyncio.Event, theirs: asyncio.Event) -> None:
        async with postgres.transaction():
            await configurations.define({"by": first}, first)
            mine.set()
            await theirs.wait()
            await configurations.define({"by": first}, second)

    results = await asyncio.gather(
        writer("a", "b", holding[0], holding[1]),
        writer("b", "a", holding[1], holding[0]),
        return_exceptions=True,
    )
    failures = [result for result in results if isinstance(result, DatabaseError)]
    assert [failure.sqlstate for failure in failures] == ["40P01"], results


async def test_writers_that_take_keys_in_one_order_never_deadlock(postgres: Postgres) -> None:
    configurations = PostgresConfigurationRepository(postgres)
    instructions = PostgresInstructionsRepository(postgres)
    keys = ["k1", "k2", "k3"]

    async def writer(worker: int) -> None:
        for turn in range(5):
            wanted = keys[worker % 3 :] + keys[: worker % 3]  # each worker wants them in its own order
            async with postgres.transaction():
                for key in sorted(wanted):  # the rule: one fixed order, by store then by key
                    await configurations.define({"worker": worker, "turn": turn}, key)
                for key in sorted(wanted):
                    await instructions.define(key, f"worker {worker} turn {turn}")
                for key in sorted(wanted):
                    await PostgresModelMemory(key, postgres=postgres).remember(ModelInput(f"{worker}/{turn}"))
                await asyncio.sleep(0)

    await asyncio.gather(*(writer(worker) for worker in range(6)))
    for key in keys:
        assert len(await configurations.history(key)) == 30
        assert len(await instructions.history(key)) == 30
        assert len((await PostgresModelMemory(key, postgres=postgres).recall()).context) == 30
