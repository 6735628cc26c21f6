"""Model memory against raw asyncpg running the same statements, interleaved.

- recall(limit=50) of one memory among `scale.memory_elements` stored elements (1,000 per
  memory), against `pool.fetchrow` of the same SQL with an orjson jsonb codec: the difference is
  pgstash's call path plus turning 50 JSON objects into elements.
- remember of 20 items (and a variables snapshot), against `pool.executemany` of the same
  two-run pipeline with ready-made JSON: the difference is pgstash's call path plus converting
  and checking the items.
- round trips of both, counted on the wire by a proxy (bench/roundtrips.py).

    python -m bench.memory [--scale tiny|full] [--dsn DSN]   # default: the embedded server in ./.pgstash
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import asyncpg

import pgstash
from bench.common import Result, Scale, interleaved, main, raw_jsonb
from bench.roundtrips import RoundTripCounter
from pgstash import ModelInput, ModelOutput, PostgresConnectionPool, PostgresModelMemory, ToolRequest
from pgstash.memory import element_json
from pgstash.queries import query

PER_MEMORY = 1_000
RECALL_LIMIT = 50
REMEMBER_ITEMS = 20

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
    raw_pool: Any = None
    async with PostgresConnectionPool.of(dsn=dsn) as postgres:
        await pgstash.migrate(postgres)
        try:
            await postgres.execute(LOAD_MEMORIES, prefix, memories)
            await postgres.execute(LOAD_ELEMENTS, prefix, memories, scale.memory_elements)
            await postgres.execute("ANALYZE memories, memories_elements, memories_variables")
            raw_pool = await asyncpg.create_pool(dsn, min_size=1, max_size=10, init=raw_jsonb)
            memory = PostgresModelMemory(target, postgres=postgres)
            recall_sql = query("memory_recall").sql
            assert len((await memory.recall(limit=RECALL_LIMIT)).context) == RECALL_LIMIT

            raw_recall, our_recall = await interleaved(
                lambda: raw_pool.fetchrow(recall_sql, target, RECALL_LIMIT),
                lambda: memory.recall(limit=RECALL_LIMIT),
                scale.rounds,
            )

            items = _items()
            writer = PostgresModelMemory(writes, postgres=postgres)
            remember_sql = query("memory_remember").sql
            ready = [element_json(item) for item in items]
            pipeline = [(writes, [], None), (writes, ready, {"turn": 1})]
            raw_remember, our_remember = await interleaved(
                lambda: raw_pool.executemany(remember_sql, pipeline),
                lambda: writer.remember(*items, variables={"turn": 1}),
                scale.rounds,
            )
            trips = await round_trips(dsn, f"{prefix}wire")
        finally:
            if raw_pool is not None:
                await raw_pool.close()
            await postgres.execute(CLEAN, prefix)

    stored = f"{scale.memory_elements:,} elements in {memories:,} memories"
    return [
        Result(
            "memory",
            f"recall(limit={RECALL_LIMIT}) among {stored}",
            raw_recall,
            our_recall,
            f"round trips: {trips['recall']} (no pool reset), {trips['recall in transaction']} in a "
            "transaction; goal within 1.1x and under 2 ms",
        ),
        Result(
            "memory",
            f"remember({REMEMBER_ITEMS} items, variables)",
            raw_remember,
            our_remember,
            f"round trips: {trips['remember']} (no pool reset), {trips['remember in transaction']} "
            "in a transaction; goal at most 2",
        ),
    ]


if __name__ == "__main__":
    main({"memory": run})
