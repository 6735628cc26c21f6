"""Load: 100 concurrent tasks mixing the four stores on a pool of 10, for a fixed count of
operations. Zero errors, every write accounted for by a count afterwards, and the latency
percentiles printed, shown with `pytest -s` (never asserted: speed is measured in bench/)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import defaultdict
from collections.abc import Awaitable
from typing import Any

import attrs

from pgstash import (
    AttributeRequirement,
    HashingEmbedding,
    InstructionsArgumentDeclaration,
    InstructionsDeclaration,
    ModelInput,
    ModelOutput,
    PostgresConfigurationRepository,
    PostgresConnectionPool,
    PostgresInstructionsRepository,
    PostgresModelMemory,
    PostgresVectorIndex,
)
from tests.support.faults import TABLES, counts

TASKS = 100
STEPS = 24  # per task: 2400 operations in all
KINDS = 8
CONFIGS, PROMPTS, MEMORIES = 10, 10, 20


@attrs.frozen
class Chunk:
    text: str
    task: int


def declared(name: str) -> InstructionsDeclaration:
    return InstructionsDeclaration(name, arguments=(InstructionsArgumentDeclaration("name"),))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def test_a_hundred_tasks_on_a_pool_of_ten_lose_nothing(database_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=database_dsn, min_size=10, max_size=10) as postgres:
        configurations = PostgresConfigurationRepository(postgres)
        instructions = PostgresInstructionsRepository(postgres)
        vectors = PostgresVectorIndex(postgres, embedding=HashingEmbedding(64))
        await vectors.create_table(Chunk, dimension=64)
        for n in range(PROMPTS):
            await instructions.define(declared(f"prompt-{n}"), "Hello {name}")
        before = await counts(postgres)
        latencies: dict[str, list[float]] = defaultdict(list)
        writes: dict[str, int] = defaultdict(int)
        errors: list[BaseException] = []

        async def timed(kind: str, call: Awaitable[Any]) -> Any:
            started = time.perf_counter()
            result = await call
            latencies[kind].append(time.perf_counter() - started)
            return result

        async def operate(number: int, step: int) -> None:
            memory = PostgresModelMemory(f"memory-{number % MEMORIES}", postgres=postgres)
            config, prompt = f"config-{number % CONFIGS}", f"prompt-{number % PROMPTS}"
            tag = f"{number}/{step}"
            kind = (number + step) % KINDS
            if kind == 0:
                await timed("config define", configurations.define({"tag": tag}, config))
                writes["configurations"] += 1
            elif kind == 1:
                await timed("config load", configurations.load_raw(config))
            elif kind == 2:
                await timed("prompt define", instructions.define(declared(prompt), f"{tag}: {{name}}"))
                writes["instructions"] += 1
            elif kind == 3:
                resolved = await timed("prompt resolve", instructions.resolve(prompt, {"name": tag}))
                assert resolved.endswith(tag)
            elif kind == 4:
                variables = {"tag": tag} if step % 2 else None
                items = (ModelInput(tag), ModelOutput(tag))
                await timed("remember", memory.remember(*items, variables=variables))
                writes["memories_elements"] += 2
                writes["memories_variables"] += variables is not None
            elif kind == 5:
                await timed("recall", memory.recall(limit=6))
            elif kind == 6:
                chunks = [Chunk(f"chunk {tag} part {part}", number) for part in range(4)]
                await timed("vector index", vectors.index(Chunk, values=chunks, attribute="text"))
                writes["chunk"] += len(chunks)
            else:
                mine = AttributeRequirement.equal("task", number)
                search = vectors.search(Chunk, query=tag, limit=4, requirements=mine)
                found = await timed("vector search", search)
                assert all(chunk.task == number for chunk in found)

        async def task(number: int) -> None:
            for n in range(STEPS):
                try:
                    await operate(number, n)
                except Exception as error:  # counted, then asserted: zero
                    errors.append(error)

        started = time.perf_counter()
        await asyncio.gather(*(task(number) for number in range(TASKS)))
        elapsed = time.perf_counter() - started

        assert errors == []
        after = await counts(postgres, (*TABLES, "chunk"))
        assert after == {
            "configurations": before["configurations"] + writes["configurations"],
            "instructions": before["instructions"] + writes["instructions"],
            "memories": MEMORIES,
            "memories_elements": writes["memories_elements"],
            "memories_variables": writes["memories_variables"],
            "chunk": writes["chunk"],
        }
        # every remember's pair is whole and adjacent: concurrent remembers never interleave
        for n in range(MEMORIES):
            context = (await PostgresModelMemory(f"memory-{n}", postgres=postgres).recall()).context
            pairs = list(zip(context[::2], context[1::2], strict=True))
            assert all(
                isinstance(first, ModelInput)
                and isinstance(second, ModelOutput)
                and first.content == second.content
                for first, second in pairs
            )

        everything = [value for values in latencies.values() for value in values]
        assert len(everything) == TASKS * STEPS
        # Shown with -s (or -rP): printed to the captured output, never in the middle of pytest's.
        print(
            f"\nload: {TASKS} tasks x {STEPS} operations on a pool of 10 in {elapsed:.2f}s "
            f"({len(everything) / elapsed:.0f} ops/s)"
        )
        for kind, values in [*sorted(latencies.items()), ("all", everything)]:
            print(
                f"  {kind:<15} n={len(values):>5}  p50 {percentile(values, 0.5) * 1000:7.2f} ms  "
                f"p99 {percentile(values, 0.99) * 1000:7.2f} ms  "
                f"mean {statistics.fmean(values) * 1000:7.2f} ms"
            )
