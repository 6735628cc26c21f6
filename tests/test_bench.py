"""`python -m bench` end to end at the tiny scale: every store's workloads run and land in one table."""

from __future__ import annotations

import attrs
import pytest
from bench.__main__ import RUNNERS
from bench.common import main, raw_asyncpg, record
from bench.roundtrips import RoundTripCounter

from pgstash import Postgres, PostgresConfigurationRepository, PostgresConnectionPool
from tests import pooler


@attrs.frozen
class Settings:
    model: str


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
        if store == "pooler" and pooler.executable() is None:
            continue  # no PgBouncer here: the pooler rows are skipped (said on stderr)
        assert f"| {store} |" in table, f"{store} reported nothing"


async def test_the_raw_baseline_pools_without_a_reset_and_runs_under_pgstashs_settings(
    database_dsn: str,
) -> None:
    """Issue 13's baseline: raw asyncpg's pool with a no-op reset (one round trip per pooled
    call, where asyncpg's default reset adds one), and the session settings pgstash's connections
    carry (here given at connect) on the pool's connections and the pinned one alike."""
    settings = {"hnsw.ef_search": "77", "work_mem": "5MB"}
    async with (
        RoundTripCounter(database_dsn) as counter,
        PostgresConnectionPool.of(dsn=database_dsn, max_size=2, server_settings=settings) as postgres,
        raw_asyncpg(counter.dsn, postgres, max_size=2) as raw,
    ):
        shown = "SELECT current_setting('hnsw.ef_search'), current_setting('work_mem')"
        assert tuple(await raw.pinned.fetchrow(shown)) == ("77", "5MB")
        for warm in (False, True):  # the first run also prepares the statement
            counter.reset()
            async with raw.pool.acquire() as connection:
                assert tuple(await connection.fetchrow(shown)) == ("77", "5MB")
            assert counter.round_trips == 1 or not warm


async def test_a_recorded_call_replays_the_statements_pgstash_sent(postgres: Postgres) -> None:
    """`record` captures what one warm call sent (by kind, with its arguments) and whether it ran
    in a transaction of pgstash's, so that the replay runs the same SQL."""
    uncached = PostgresConfigurationRepository(postgres, cache_limit=0)
    await uncached.define(Settings("m"), "recorded")
    recorded = await record(postgres, lambda: uncached.load(Settings, "recorded"))
    assert [(s.name, s.args) for s in recorded.statements] == [("configurations_newest", ("recorded",))]
    assert not recorded.transaction and recorded.round_trips == 1

    async def twice() -> None:
        async with postgres.transaction():
            await uncached.load(Settings, "recorded")
            await uncached.load(Settings, "recorded")

    recorded = await record(postgres, twice)
    assert recorded.transaction and recorded.round_trips == 4
