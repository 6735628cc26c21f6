"""Model memory against raw asyncpg running the same statements, interleaved.

- recall(limit=50) of one memory among `scale.memory_elements` stored elements (1,000 per
  memory), against raw asyncpg replaying the statement pgstash sent (through its pool with a
  no-op reset, and on one pinned connection: `bench.common.versus_raw`) with the same codecs: the
  difference is pgstash's call path plus turning 50 JSON objects into elements (goal: within 1.1x).
- remember of 20 items (and a variables snapshot), against raw asyncpg replaying the same
  pipeline (`executemany`) with its ready-made JSON: the difference is pgstash's call path plus
  converting and checking the items.
- round trips of both, counted on the wire by a proxy (bench/roundtrips.py).

    python -m bench.memory [--scale tiny|full] [--dsn DSN]   # default: the embedded server in ./.pgstash
"""

from __future__ import annotations

import contextlib
import uuid

import attrs

from bench.common import Result, Scale, main, pgstash_and_raw, versus_raw
from bench.roundtrips import RoundTripCounter
from pgstash import ModelInput, ModelOutput, PostgresConnectionPool, PostgresModelMemory, ToolRequest

PER_MEMORY = 1_000
RECALL_LIMIT = 50
REMEMBER_ITEMS = 20
POOL_SIZE = 10  # PostgresConnectionPool.of's default
STORE = "memory"

# One INSERT ... SELECT: in each memory inputs and outputs alternate, of realistic size, 1 µs apart.
LOAD_MEMORIES = """
INSERT INTO memories (identifier)
SELECT $1 || m FROM generate_series(1, $2::int) AS m
"""
LOAD_ELEMENTS = """
INSERT INTO memories_elements (identifier, content, created)
SELECT
    $1 || (i % $2::int + 1),
    CASE WHEN (i / $2::int) % 2 = 0
        THEN jsonb_build_object(
            'type', 'model_input', 'content', 'Question ' || i || ': ' || repeat('ask ', 30),
            'tool_responses', '[]'::jsonb, 'meta', jsonb_build_object('user', 'u' || i % 97))
        ELSE jsonb_build_object(
            'type', 'model_output', 'content', 'Answer ' || i || ': ' || repeat('say ', 40),
            'tool_requests', '[]'::jsonb, 'meta', jsonb_build_object('model', 'm-1', 'tokens', i % 500))
    END,
    now() - ($3::int - i) * interval '1 microsecond'
FROM generate_series(1, $3::int) AS i
"""
CLEAN = "DELETE FROM memories WHERE starts_with(identifier, $1)"


def _items() -> list[ModelInput | ModelOutput]:
    items: list[ModelInput | ModelOutput] = []
    for n in range(REMEMBER_ITEMS // 2):
        items.append(ModelInput(f"Question {n}: " + "ask " * 30, meta={"user": "u1"}))
        items.append(
            ModelOutput(
                f"Answer {n}: " + "say " * 40,
                tool_requests=(ToolRequest(f"call-{n}", "search", {"q": f"topic {n}"}),),
                meta={"model": "m-1", "tokens": n},
            )
        )
    return items


async def round_trips(dsn: str, identifier: str) -> dict[str, int]:
    """Round trips on the wire of a warm remember(20 items) and recall(limit=50), outside and
    inside a transaction (outside, asyncpg's pool adds its reset query on release)."""
    items = _items()
    counted: dict[str, int] = {}
    async with (
        RoundTripCounter(dsn) as counter,
        PostgresConnectionPool.of(dsn=counter.dsn, min_size=1, max_size=1) as postgres,
    ):
        memory = PostgresModelMemory(identifier, postgres=postgres)
        await memory.remember(*items, variables={"warm": True})
        await memory.recall(limit=RECALL_LIMIT)
        for inside in (False, True):
            async with postgres.transaction() if inside else contextlib.nullcontext():
                counter.reset()
                await memory.remember(*items, variables={"n": 1})
                counted[f"remember{' in transaction' if inside else ''}"] = counter.round_trips
                counter.reset()
                await memory.recall(limit=RECALL_LIMIT)
                counted[f"recall{' in transaction' if inside else ''}"] = counter.round_trips
    return counted


async def run(dsn: str, scale: Scale) -> list[Result]:
    prefix = f"bench-memory-{uuid.uuid4().hex[:8]}-"
    memories = max(1, scale.memory_elements // PER_MEMORY)
    target = f"{prefix}{memories // 2 + 1}"
    writes = f"{prefix}writes"
    stored = f"{scale.memory_elements:,} elements in {memories:,} memories"
    async with pgstash_and_raw(dsn, pool_size=POOL_SIZE) as (postgres, raw):
        try:
            await postgres.execute(LOAD_MEMORIES, prefix, memories)
            await postgres.execute(LOAD_ELEMENTS, prefix, memories, scale.memory_elements)
            await postgres.execute("ANALYZE memories, memories_elements, memories_variables")
            memory = PostgresModelMemory(target, postgres=postgres)
            assert len((await memory.recall(limit=RECALL_LIMIT)).context) == RECALL_LIMIT
            items = _items()
            writer = PostgresModelMemory(writes, postgres=postgres)
            trips = await round_trips(dsn, f"{prefix}wire")
            recall = await versus_raw(
                postgres,
                raw,
                STORE,
                f"recall(limit={RECALL_LIMIT}) among {stored}",
                lambda: memory.recall(limit=RECALL_LIMIT),
                scale.rounds,
                goal=1.1,
                trips=f"round trips: {trips['recall']} (no pool reset), {trips['recall in transaction']} "
                "in a transaction",
            )
            remember = await versus_raw(
                postgres,
                raw,
                STORE,
                f"remember({REMEMBER_ITEMS} items, variables)",
                lambda: writer.remember(*items, variables={"turn": 1}),
                scale.rounds,
                "goal at most 2 round trips",
                trips=f"round trips: {trips['remember']} (no pool reset), "
                f"{trips['remember in transaction']} in a transaction",
            )
        finally:
            await postgres.execute(CLEAN, prefix)
    fast = "meets" if recall.pgstash.p50 < 0.002 else "misses"
    return [attrs.evolve(recall, note=f"{recall.note}; {fast} the goal under 2 ms"), remember]


if __name__ == "__main__":
    main({"memory": run})
