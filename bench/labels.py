"""Instructions labels (issue 27): `resolve(label=)` cached and uncached, and how long a label
move takes to reach another process's cache.

    .venv/bin/python -m bench.labels [--scale full|tiny] [--dsn DSN]

Workloads:
- cached `resolve(name, label="production")`: calls per second in one process;
- uncached (`cache_limit=0`): one round trip each, timed interleaved with raw asyncpg replaying
  the statement pgstash sent (`bench.common.versus_raw`; goal: within 1.1x, as `resolve`);
- label move -> another process: a reader process holds `production` in its cache and, on
  every invalidation its listener receives, resolves it again; this process moves the label
  back and forth with `move_label` and notes the time each move returned (its commit
  acknowledged); the lag is from then to the reader's `resolve` returning the new text (and,
  reported beside it, to the reader's cache evicting the name)
  (CLOCK_MONOTONIC, one clock for both processes; negative when the NOTIFY beat the commit's
  acknowledgement). Goal: p99 under 10 ms.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from typing import Any

from bench.common import Result, Scale, Stats, main, pgstash_and_raw, versus_raw
from pgstash import PostgresConnectionPool, PostgresInstructionsRepository

STORE = "labels"
CALLS_PER_BATCH = 1_000
POOL_SIZE = 10
GOAL = 1.1
LAG_GOAL = 0.010  # seconds, p99

READER = """
import asyncio, sys, time
from pgstash import PostgresConnectionPool, PostgresInstructionsRepository
from pgstash.stores.cache import DocumentCache
from pgstash.stores.listener import Listener

class Signal(DocumentCache):
    # told of every invalidation of the instructions store on this pool, as the caches are
    def invalidate(self, key):
        super().invalidate(key)
        global evicted
        evicted = time.monotonic()
        arrived.set()

async def main():
    global arrived
    arrived = asyncio.Event()
    async with PostgresConnectionPool.of(dsn=sys.argv[1]) as postgres:
        repository = PostgresInstructionsRepository(postgres)
        name = sys.argv[2]
        last = await repository.resolve(name, label="production")
        listener = Listener.of(postgres)
        signal = Signal("instructions", 1, 60.0, listener)
        await listener.subscribe(signal)
        print("ready", last, flush=True)
        stop = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline))
        while not stop.done():
            waiting = asyncio.ensure_future(arrived.wait())
            await asyncio.wait({waiting, stop}, return_when=asyncio.FIRST_COMPLETED)
            arrived.clear()
            text = await repository.resolve(name, label="production")  # the reload
            if text != last:
                print(text, repr(evicted), repr(time.monotonic()), flush=True)
                last = text

asyncio.run(main())
"""


async def _calls_per_second(call: Any, rounds: int) -> tuple[Stats, float]:
    for _ in range(CALLS_PER_BATCH):
        await call()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(CALLS_PER_BATCH):
            await call()
        samples.append((time.perf_counter() - started) / CALLS_PER_BATCH)
    return Stats.of(samples), 1.0 / (sum(samples) / len(samples))


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def move_lag(dsn: str, name: str, moves: int) -> tuple[list[float], list[float]]:
    """Seconds from each `move_label` returning here to the reader process's cache evicting the
    name (its listener got the NOTIFY), and to its reload returning the new text."""
    reader = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        READER,
        dsn,
        name,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert reader.stdin is not None and reader.stdout is not None
    lags: list[float] = []
    evictions: list[float] = []
    try:
        line = await asyncio.wait_for(reader.stdout.readline(), timeout=60)
        if not line.startswith(b"ready"):
            raise RuntimeError(f"the reader did not start: {line!r} {await reader.stderr.read()!r}")  # type: ignore[union-attr]
        async with PostgresConnectionPool.of(dsn=dsn, min_size=1, max_size=2) as postgres:
            repository = PostgresInstructionsRepository(postgres)
            at = 1
            for _ in range(moves):
                to = 2 if at == 1 else 1
                await asyncio.sleep(0.02)  # the reader settles on its cached value
                await repository.move_label(name, "production", to=to, expected=at)
                moved = time.monotonic()
                seen = await asyncio.wait_for(reader.stdout.readline(), timeout=30)
                text, evicted, stamp = seen.decode().split()
                assert text == f"revision-{to}", seen
                evictions.append(float(evicted) - moved)
                lags.append(float(stamp) - moved)
                at = to
    finally:
        reader.stdin.write(b"stop\n")
        await reader.stdin.drain()
        await asyncio.wait_for(reader.wait(), timeout=60)
    return evictions, lags


async def run(dsn: str, scale: Scale) -> list[Result]:
    name = f"bench-labels-{uuid.uuid4().hex[:8]}"
    results: list[Result] = []
    async with pgstash_and_raw(dsn, pool_size=POOL_SIZE) as (postgres, raw):
        repository = PostgresInstructionsRepository(postgres)
        try:
            await repository.define(name, "revision-1", labels=("production",))
            await repository.define(name, "revision-2")
            stats, per_second = await _calls_per_second(
                lambda: repository.resolve(name, label="production"), scale.rounds
            )
            results.append(
                Result(
                    STORE,
                    'cached resolve(label="production") (in-process)',
                    None,
                    stats,
                    f"{per_second:,.0f} calls/s",
                )
            )
            uncached = PostgresInstructionsRepository(postgres, cache_limit=0)
            results.append(
                await versus_raw(
                    postgres,
                    raw,
                    STORE,
                    'uncached resolve(label="production") (1 round trip)',
                    lambda: uncached.resolve(name, label="production"),
                    scale.rounds,
                    goal=GOAL,
                )
            )
            evictions, lags = await move_lag(dsn, name, max(20, scale.rounds))
            p99 = percentile(lags, 0.99)
            verdict = "meets" if p99 < LAG_GOAL else "misses"
            note = (
                f"{len(lags)} moves: p50 {statistics.median(lags) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, "
                f"max {max(lags) * 1000:.2f} ms; {verdict} the goal p99 < 10 ms; of which the NOTIFY "
                f"to the eviction: p50 {statistics.median(evictions) * 1000:.2f} ms, p99 "
                f"{percentile(evictions, 0.99) * 1000:.2f} ms (the rest is the reload's round trip)"
            )
            results.append(Result(STORE, "label move -> another process's cache", None, Stats.of(lags), note))
        finally:
            await repository.remove(name)
    return results


if __name__ == "__main__":
    main({STORE: run})
