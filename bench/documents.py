"""Configurations and instructions: cached loads per second, and uncached loads against raw
asyncpg running the same statement.

    .venv/bin/python -m bench.documents [--scale full|tiny] [--dsn DSN]

Without `--dsn` it runs on the embedded server in ./.pgstash. Workloads:
- cached `load` / `resolve`: calls per second in one process (goal: above 200,000 for `load` of a
  frozen class whose fields are all immutable, which is structured once per cached snapshot and
  shared); a frozen class with a list field, and a dataclass, are structured on every call (a
  caller may change them: docs/reliability.md, "Caches");
- uncached `load` / `resolve` (`cache_limit=0`): one round trip each, timed interleaved with raw
  asyncpg replaying the statement pgstash sent through its own pool with a no-op reset (goal:
  within 1.1x) and on one pinned connection (`bench.common.versus_raw`); and that statement through
  `Postgres.run` alone, the part of the gap that is not the store's.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

import attrs

from bench.common import Result, Scale, Stats, main, pgstash_and_raw, versus_raw
from pgstash import (
    InstructionsArgumentDeclaration,
    InstructionsDeclaration,
    PostgresConfigurationRepository,
    PostgresInstructionsRepository,
)
from pgstash.sql import names

STORE = "documents"
CALLS_PER_BATCH = 1_000
POOL_SIZE = 10  # PostgresConnectionPool.of's default
GOAL = 1.1  # issue 13: uncached load and resolve within 1.1x of raw asyncpg's pool


@attrs.frozen
class ModelSettings:
    """Frozen, every field immutable: one shared instance per cached snapshot."""

    model: str
    temperature: float
    max_tokens: int
    stop: tuple[str, ...] = ()
    tools: frozenset[str] = frozenset()


@attrs.frozen
class ListSettings:
    """Frozen, but its lists can be changed by a caller: structured per call."""

    model: str
    temperature: float
    max_tokens: int
    stop: list[str] = attrs.Factory(list)
    tools: list[str] = attrs.Factory(list)


@dataclasses.dataclass
class MutableSettings:
    model: str
    temperature: float
    max_tokens: int
    stop: tuple[str, ...] = ()
    tools: list[str] = dataclasses.field(default_factory=list)


SETTINGS = ModelSettings("small-2024", 0.3, 512, ("\n\n", "END"), frozenset({"search", "code"}))
PROMPT = InstructionsDeclaration(
    "bench-prompt",
    arguments=(
        InstructionsArgumentDeclaration("user"),
        InstructionsArgumentDeclaration("tone", required=False),
    ),
)
PROMPT_CONTENT = "You are a helpful assistant. Greet {user} in a {tone} tone and answer briefly."


async def _calls_per_second(call: Any, rounds: int) -> tuple[Stats, float]:
    """Times `rounds` batches of CALLS_PER_BATCH awaited calls: seconds per call per batch, and
    calls per second overall."""
    for _ in range(CALLS_PER_BATCH):
        await call()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(CALLS_PER_BATCH):
            await call()
        samples.append((time.perf_counter() - started) / CALLS_PER_BATCH)
    return Stats.of(samples), 1.0 / (sum(samples) / len(samples))


async def run(dsn: str, scale: Scale) -> list[Result]:
    tag = uuid.uuid4().hex[:8]
    identifier, name = f"bench-settings-{tag}", f"bench-prompt-{tag}"
    prompt = attrs.evolve(PROMPT, name=name)
    arguments = {"user": "Ada"}
    results: list[Result] = []
    async with pgstash_and_raw(dsn, pool_size=POOL_SIZE) as (postgres, raw):
        configurations = PostgresConfigurationRepository(postgres)
        instructions = PostgresInstructionsRepository(postgres)
        try:
            await configurations.define(SETTINGS, identifier)
            await instructions.define(prompt, PROMPT_CONTENT)
            assert await configurations.load(ModelSettings, identifier) == SETTINGS

            cached: list[tuple[str, Any, str]] = [
                (
                    "cached load, frozen attrs",
                    ModelSettings,
                    "goal > 200,000; shared: nothing in it can change",
                ),
                (
                    "cached load, frozen attrs with lists",
                    ListSettings,
                    "structured per call: its lists could be changed",
                ),
                ("cached load, dataclass", MutableSettings, "structured per call: not frozen"),
            ]
            for workload, cls, why in cached:
                stats, per_second = await _calls_per_second(
                    lambda cls=cls: configurations.load(cls, identifier), scale.rounds
                )
                note = f"{per_second:,.0f} calls/s ({why})"
                results.append(Result(STORE, f"{workload} (in-process)", None, stats, note))

            stats, per_second = await _calls_per_second(
                lambda: instructions.resolve(name, arguments), scale.rounds
            )
            results.append(
                Result(STORE, "cached resolve (in-process)", None, stats, f"{per_second:,.0f} calls/s")
            )

            uncached_configurations = PostgresConfigurationRepository(postgres, cache_limit=0)
            uncached_instructions = PostgresInstructionsRepository(postgres, cache_limit=0)
            uncached: list[tuple[str, Any, str, float | None]] = [
                (
                    "uncached load (1 round trip)",
                    lambda: uncached_configurations.load(ModelSettings, identifier),
                    "",
                    GOAL,
                ),
                (
                    "Postgres.run of the same statement",
                    lambda: postgres.run(names.configurations_newest, identifier=identifier),
                    "the floor under load: the same statement through Postgres.run, no store",
                    None,
                ),
                (
                    "uncached resolve (1 round trip)",
                    lambda: uncached_instructions.resolve(name, arguments),
                    "",
                    GOAL,
                ),
            ]
            for workload, call, note, goal in uncached:
                results.append(
                    await versus_raw(postgres, raw, STORE, workload, call, scale.rounds, note, goal=goal)
                )
        finally:
            await configurations.remove(identifier)
            await instructions.remove(name)
    return results


if __name__ == "__main__":
    main({STORE: run})
