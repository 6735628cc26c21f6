"""The hybrid benchmark runs end to end at Scale.tiny() and reports every workload (no timing
assertions: speed is only measured, in bench/)."""

from __future__ import annotations

from bench.common import Scale, markdown
from bench.hybrid import run


async def test_the_hybrid_benchmark_runs_at_tiny_scale(database_dsn: str) -> None:
    scale = Scale.tiny()
    results = await run(database_dsn, scale)
    workloads = [result.workload for result in results]
    for count in scale.vectors:
        size = f"({count:,})"
        for name in (
            "ingest by key, into an empty table",
            f"ingest by key, replacing all {count:,}",
            "search HNSW top-10",
            "text top-10, rare identifier",
            "hybrid top-10, rare identifier",
            "text top-10, two words",
            "hybrid top-10, two words",
        ):
            assert any(workload.startswith(name) and size in workload for workload in workloads), name
    for result in results:
        assert result.pgstash.p50 > 0 and (result.raw is None or result.raw.p50 > 0)
    assert all("goal" in result.note for result in results if "ingest" in result.workload)
    for result in results:
        if "top-10" in result.workload:  # replayed by raw asyncpg through its pool and on one connection
            assert result.raw is not None and result.pinned is not None, result.workload
        if result.workload.startswith(("text", "hybrid")):
            assert "the goal <= 1.1x of the raw pool" in result.note, result.note
    assert markdown(results).count("| hybrid |") == len(results)
