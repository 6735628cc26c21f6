"""The vector benchmark runs end to end at Scale.tiny() and reports every workload (no timing
assertions: speed is only measured, in bench/)."""

from __future__ import annotations

import re

from bench.common import Scale, markdown
from bench.vectors import run


async def test_the_vector_benchmark_runs_at_tiny_scale(database_dsn: str) -> None:
    scale = Scale.tiny()
    results = await run(database_dsn, scale)
    workloads = [result.workload for result in results]
    for count in sorted(set(scale.vectors) | set(scale.scaling)):
        assert f"ingest {count:,} rows" in workloads
    for count in scale.vectors:
        for name in ("search exact top-10", "search HNSW top-10", "exact top-10", "HNSW recall@10"):
            assert any(workload.startswith(name) and f"({count:,})" in workload for workload in workloads)
    for result in results:
        assert result.pgstash.p50 > 0 and (result.raw is None or result.raw.p50 > 0)
    recalls = [float(m.group(1)) for r in results if (m := re.search(r"recall@10 ([0-9.]+)", r.note))]
    assert recalls and all(0.0 <= value <= 1.0 for value in recalls)
    assert markdown(results).count("| vectors |") == len(results)
