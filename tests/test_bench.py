"""`python -m bench` end to end at the tiny scale, run once for the module: every store's workloads
run and land in one table, and each store reports every workload it promises (their figures are
read, never asserted: speed is only measured, in bench/); the raw baseline and the recorder."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator

import asyncpg
import attrs
import pytest
from bench.__main__ import RUNNERS
from bench.common import Result, Runner, Scale, main, markdown, raw_asyncpg, record
from bench.roundtrips import RoundTripCounter

from pgstash import Postgres, PostgresConfigurationRepository, PostgresConnectionPool
from tests.support import pooler

pytestmark = pytest.mark.scale

# The tables each store's benchmark must leave empty.
CLEANED = {"documents": ("configurations", "instructions"), "memory": ("memories", "memories_elements")}


@attrs.frozen
class Settings:
    model: str


@attrs.frozen
class TinyBench:
    out: str  # what `python -m bench --scale tiny` printed
    results: dict[str, list[Result]]  # each store's results, as its runner returned them
    left: dict[str, dict[str, int]]  # the rows left in CLEANED's tables right after each runner


@pytest.fixture(scope="module")
def tiny(template_ready: str) -> Iterator[TinyBench]:
    """`python -m bench --scale tiny --dsn ...`, once: every runner runs once, on the benchmark's
    own fresh database, and what each returned is kept for the tests of its store."""
    results: dict[str, list[Result]] = {}
    left: dict[str, dict[str, int]] = {}

    def kept(name: str, runner: Runner) -> Runner:
        async def run(dsn: str, scale: Scale) -> list[Result]:
            results[name] = await runner(dsn, scale)
            connection = await asyncpg.connect(dsn)
            try:
                left[name] = {
                    t: await connection.fetchval(f"SELECT count(*) FROM {t}") for t in CLEANED.get(name, ())
                }
            finally:
                await connection.close()
            return results[name]

        return run

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(
            {name: kept(name, runner) for name, runner in RUNNERS.items()},
            ["--scale", "tiny", "--dsn", template_ready],
        )
    yield TinyBench(out.getvalue(), results, left)


def test_make_bench_prints_one_table_with_every_store(tiny: TinyBench) -> None:
    out = tiny.out
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


def test_the_documents_benchmark_runs_at_tiny_scale(tiny: TinyBench) -> None:
    results = tiny.results["documents"]
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
    assert tiny.left["documents"]["configurations"] == 0
    assert tiny.left["documents"]["instructions"] == 0


def test_the_memory_benchmark_runs_and_cleans_up(tiny: TinyBench) -> None:
    results = tiny.results["memory"]
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
    assert tiny.left["memory"]["memories"] == 0
    assert tiny.left["memory"]["memories_elements"] == 0


def test_the_vector_benchmark_runs_at_tiny_scale(tiny: TinyBench) -> None:
    scale = Scale.tiny()
    results = tiny.results["vectors"]
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


def test_the_hybrid_benchmark_runs_at_tiny_scale(tiny: TinyBench) -> None:
    scale = Scale.tiny()
    results = tiny.results["hybrid"]
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
    # hybrid against its floor, timed alternately in the same rounds (no raw side)
    interleaved = [result for result in results if "interleaved" in result.workload]
    assert len(interleaved) == 2 * len(scale.vectors)
    for result in interleaved:
        assert result.raw is None and re.search(r"[0-9.]+x HNSW top-10 \(", result.note), result.note
        assert "goal < 3x" in result.note and "as one statement (text_timeout=None)" in result.note
    for result in results:
        if result in interleaved:
            continue
        if "top-10" in result.workload:  # replayed by raw asyncpg through its pool and on one connection
            assert result.raw is not None and result.pinned is not None, result.workload
        if result.workload.startswith(("text", "hybrid")):
            assert "the goal <= 1.1x of the raw pool" in result.note, result.note
    assert markdown(results).count("| hybrid |") == len(results)


def test_the_split_benchmark_runs_each_layer_against_the_same_raw_replay(tiny: TinyBench) -> None:
    """`bench.split`: the HNSW top-10 search in three layers, each against raw asyncpg replaying
    the statement the search sends (one turn in `make bench`)."""
    results = tiny.results["split"]
    assert [result.workload for result in results] == [
        "HNSW top-10 (500): statement",
        "HNSW top-10 (500): models",
        "HNSW top-10 (500): search",
    ]
    for result in results:
        assert result.raw is not None and result.pinned is not None and result.pgstash.p50 > 0
        assert result.note.startswith("1 turn(s): ") and "gap over raw p50 median" in result.note
