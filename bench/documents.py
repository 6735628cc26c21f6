"""Configurations and instructions: cached loads per second, and uncached loads against raw
asyncpg running the same statement.

    .venv/bin/python -m bench.documents [--scale full|tiny] [--dsn DSN]

Without `--dsn` it runs on the embedded server in ./.pgstash. Workloads:
- cached `load` / `resolve`: calls per second in one process (goal: above 200,000 for `load` of a
  frozen class whose fields are all immutable, which is structured once per cached snapshot and
  shared); a frozen class with a list field, and a dataclass, are structured on every call (a
  caller may change them: docs/reliability.md, "Caches");
- uncached `load` / `resolve` (`cache_limit=0`): one round trip each, timed interleaved with raw
  asyncpg running the same named statement on its own pool (goal: within 1.1x); and that statement
  through `Postgres.run` alone, the part of the gap that is not the store's.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Any

import asyncpg
import attrs

import pgstash
from bench.common import Result, Scale, Stats, interleaved, main, raw_jsonb
from pgstash import (
    InstructionsArgumentDeclaration,
    InstructionsDeclaration,
    PostgresConfigurationRepository,
    PostgresConnectionPool,
    PostgresInstructionsRepository,
)
from pgstash.queries import query

STORE = "documents"
CALLS_PER_BATCH = 1_000


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
    async with PostgresConnectionPool.of(dsn=dsn) as postgres:
        await pgstash.migrate(postgres)
        configurations = PostgresConfigurationRepository(postgres)
        instructions = PostgresInstructionsRepository(postgres)
        raw = await asyncpg.create_pool(dsn, min_size=1, max_size=10, init=raw_jsonb)
        try:
            await configurations.define(SETTINGS, identifier)
            await instructions.define(prompt, PROMPT_CONTENT)
            assert await configurations.load(ModelSettings, identifier) == SETTINGS

            async def cached_load() -> Any:
                return await configurations.load(ModelSettings, identifier)

            stats, per_second = await _calls_per_second(cached_load, scale.rounds)
            note = f"{per_second:,.0f} calls/s (goal > 200,000; shared: nothing in it can change)"
            results.append(Result(STORE, "cached load, frozen attrs (in-process)", None, stats, note))

            async def cached_load_lists() -> Any:
                return await configurations.load(ListSettings, identifier)

            stats, per_second = await _calls_per_second(cached_load_lists, scale.rounds)
            note = f"{per_second:,.0f} calls/s (structured per call: its lists could be changed)"
            workload = "cached load, frozen attrs with lists (in-process)"
            results.append(Result(STORE, workload, None, stats, note))

            async def cached_load_mutable() -> Any:
                return await configurations.load(MutableSettings, identifier)

            stats, per_second = await _calls_per_second(cached_load_mutable, scale.rounds)
            note = f"{per_second:,.0f} calls/s (structured per call: not frozen)"
            results.append(Result(STORE, "cached load, dataclass (in-process)", None, stats, note))

            async def cached_resolve() -> Any:
                return await instructions.resolve(name, arguments)

            stats, per_second = await _calls_per_second(cached_resolve, scale.rounds)
            note = f"{per_second:,.0f} calls/s"
            results.append(Result(STORE, "cached resolve (in-process)", None, stats, note))

            uncached_configurations = PostgresConfigurationRepository(postgres, cache_limit=0)
            newest = query("configurations_newest").sql

            async def raw_load() -> Any:
                async with raw.acquire() as connection:
                    return await connection.fetchval(newest, identifier)

            async def uncached_load() -> Any:
                return await uncached_configurations.load(ModelSettings, identifier)

            raw_stats, our_stats = await interleaved(raw_load, uncached_load, scale.rounds)
            note = "goal: within 1.1x of raw"
            results.append(Result(STORE, "uncached load (1 round trip)", raw_stats, our_stats, note))

            async def named_query() -> Any:
                return await postgres.run("configurations_newest", identifier=identifier)

            raw_stats, our_stats = await interleaved(raw_load, named_query, scale.rounds)
            note = "the floor under load: the same statement through Postgres.run, no store"
            results.append(Result(STORE, "Postgres.run of the same statement", raw_stats, our_stats, note))

            uncached_instructions = PostgresInstructionsRepository(postgres, cache_limit=0)
            newest_revision = query("instructions_newest").sql

            async def raw_resolve() -> Any:
                async with raw.acquire() as connection:
                    row = await connection.fetchrow(newest_revision, name)
                return row["content"].format_map({"tone": "", **arguments})  # what resolve returns

            async def uncached_resolve() -> Any:
                return await uncached_instructions.resolve(name, arguments)

            raw_stats, our_stats = await interleaved(raw_resolve, uncached_resolve, scale.rounds)
            results.append(Result(STORE, "uncached resolve (1 round trip)", raw_stats, our_stats))
        finally:
            await raw.close()
            await configurations.remove(identifier)
            await instructions.remove(name)
    return results


if __name__ == "__main__":
    main({STORE: run})
