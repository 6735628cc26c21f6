"""Smoke test of bench/labels.py at Scale.tiny(): every workload runs and reports, and the
benchmark leaves no rows behind. (Speed is reported by the benchmark, never asserted here.)"""

from __future__ import annotations

from bench.common import Scale, markdown
from bench.labels import run

from pgstash import Postgres


async def test_the_labels_benchmark_runs_at_tiny_scale(postgres: Postgres, database_dsn: str) -> None:
    results = await run(database_dsn, Scale.tiny())
    assert [result.workload for result in results] == [
        'cached resolve(label="production") (in-process)',
        'uncached resolve(label="production") (1 round trip)',
        "label move -> another process's cache",
    ]
    assert "calls/s" in results[0].note
    assert results[1].raw is not None and results[1].note.startswith("1 round trip(s) per call")
    assert "20 moves: p50" in results[2].note and "the goal p99 < 10 ms" in results[2].note
    assert "| labels | label move" in markdown(results)
    for table in (
        "instructions",
        "instructions_revisions",
        "instructions_labels",
        "instructions_label_moves",
    ):
        assert await postgres.fetch_value(f"SELECT count(*) FROM {table}") == 0, table
