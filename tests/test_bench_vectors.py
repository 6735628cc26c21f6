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
        # issue 17 item 7: selective filters at 1% and 0.1%, equality and range, against raw asyncpg
        for name in ("equality filter (1%)", "equality filter (0.1%)", "greater (1%)", "greater (0.1%)"):
            rows = [r for r in results if name in r.workload and f"({count:,})" in r.workload]
            assert len(rows) == 1, name
            assert rows[0].raw is not None and rows[0].pinned is not None, name
            pattern = r"\d+ of [\d,]+ rows match, \d+ returned, recall@10 [0-9.]+ of exact; the exact path"
            assert re.search(pattern, rows[0].note), rows[0].note
        # issue 13: HNSW top-10, plain and filtered (1%), each says whether it is within 1.1x
        for name in ("search HNSW top-10 (", "search HNSW top-10, equality filter (1%)"):
            (row,) = [r for r in results if r.workload.startswith(name) and f"({count:,})" in r.workload]
            assert re.search(r"(meets|misses) the goal <= 1.1x of the raw pool", row.note), row.note
    for result in results:
        assert result.pgstash.p50 > 0 and (result.raw is None or result.raw.p50 > 0)
        if result.workload.startswith("search"):  # replayed by raw asyncpg: pool and pinned connection
            assert result.pinned is not None and result.pinned_ratio is not None
            assert re.match(r"\d+ round trip\(s\) per call", result.note), result.note
    recalls = [float(m.group(1)) for r in results if (m := re.search(r"recall@10 ([0-9.]+)", r.note))]
    assert recalls and all(0.0 <= value <= 1.0 for value in recalls)
    assert markdown(results).count("| vectors |") == len(results)
