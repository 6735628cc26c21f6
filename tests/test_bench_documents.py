"""Smoke test of bench/documents.py at Scale.tiny(): every workload runs and reports, and the
benchmark leaves no rows behind. (Speed is reported by the benchmark, never asserted here.)"""

from __future__ import annotations

import re

from bench.common import Scale, markdown
from bench.documents import run

from pgstash import Postgres


async def test_the_documents_benchmark_runs_at_tiny_scale(postgres: Postgres, database_dsn: str) -> None:
    results = await run(database_dsn, Scale.tiny())
    workloads = [result.workload for result in results]
    assert workloads == [
        "cached load, frozen attrs (in-process)",
        "cached load, frozen attrs with lists (in-process)",
        "cached load, dataclass (in-process)",
        "cached resolve (in-process)",
        "uncached load (1 round trip)",
        "Postgres.run of the same statement",
        "uncached resolve (1 round trip)",
    ]
    for result in results:
        assert result.store == "documents" and result.pgstash.p50 > 0
        assert (result.raw is None) == result.workload.startswith("cached")
    assert "calls/s" in results[0].note
    for result in results:
        if result.raw is not None:  # replayed by raw asyncpg through its pool and on one connection
            assert result.pinned is not None and result.note.startswith("1 round trip(s) per call")
    for result in (results[4], results[6]):  # issue 13's goals: uncached load and resolve
        assert re.search(r"(meets|misses) the goal <= 1.1x of the raw pool", result.note), result.note
    assert "| documents | uncached load" in markdown(results)
    assert await postgres.fetch_value("SELECT count(*) FROM configurations") == 0
    assert await postgres.fetch_value("SELECT count(*) FROM instructions") == 0
