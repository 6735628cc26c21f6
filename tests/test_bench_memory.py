"""The memory benchmark runs end to end at the tiny scale (its figures are read, not asserted)."""

from __future__ import annotations

import re

from bench.common import Scale
from bench.memory import run

from pgstash import PostgresConnectionPool


async def test_the_memory_benchmark_runs_and_cleans_up(database_dsn: str) -> None:
    results = await run(database_dsn, Scale.tiny())
    assert [result.workload for result in results] == [
        "recall(limit=50) among 2,000 elements in 2 memories",
        "remember(20 items, variables)",
    ]
    assert re.search(r"(meets|misses) the goal <= 1.1x of the raw pool", results[0].note), results[0].note
    for result in results:
        assert result.raw is not None and result.raw.p50 > 0 and result.pgstash.p50 > 0
        assert result.pinned is not None and result.pinned.p50 > 0
        trips = [int(count) for count in re.findall(r"(\d+) (?:\(|in a transaction)", result.note)]
        assert trips == [1, 1], (
            result.note
        )  # measured on the wire: the call alone (a clean connection is not reset)
    async with PostgresConnectionPool.of(dsn=database_dsn) as postgres:
        assert await postgres.fetch_value("SELECT count(*) FROM memories") == 0
        assert await postgres.fetch_value("SELECT count(*) FROM memories_elements") == 0
