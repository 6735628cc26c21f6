"""`python -m bench` end to end at the tiny scale: every store's workloads run and land in one table."""

from __future__ import annotations

import pytest
from bench.__main__ import RUNNERS
from bench.common import main


def test_make_bench_prints_one_table_with_every_store(
    template_ready: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main(RUNNERS, ["--scale", "tiny", "--dsn", template_ready])
    out = capsys.readouterr().out
    header, _, table = out.partition("\n\n")
    assert "PostgreSQL" in header and "pgvector" in header and "cores" in header
    assert "no-op reset" in header and "pinned connection" in header
    assert table.startswith("| store | workload | raw asyncpg")
    assert "| ratio (p50) | raw pinned p50 (ms) | ratio vs pinned | note |" in table.splitlines()[0]
    assert all(line.count("|") == 9 for line in table.splitlines()), "every row has the header's columns"
    for store in RUNNERS:
        assert f"| {store} |" in table, f"{store} reported nothing"
