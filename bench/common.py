"""Shared benchmark machinery: interleaved timing of raw asyncpg against pgstash, and the table.

Each store module (`bench/documents.py`, `bench/memory.py`, `bench/vectors.py`,
`bench/hybrid.py`) exposes `async def run(dsn: str, scale: Scale) -> list[Result]`; `python -m
bench` runs them all on the embedded server and prints one markdown table. The smoke tests run
every module at `Scale.tiny()`.

The raw baseline (`versus_raw`): one pgstash call is recorded (the statements it sent, by kind),
then replayed by raw asyncpg two ways, timed interleaved with pgstash itself:
- through an asyncpg pool of the same size with a no-op `reset` (the cheapest pooled call asyncpg
  allows; its default reset is one more round trip per call), the goal's baseline ("ratio");
- on one pinned connection (no acquire, no release): "ratio vs pinned", what any pool costs.
Both raw sides get pgstash's codecs (`register_codecs`) and the session settings pgstash's own
connections carry (for example iterative-scan settings set at connect), so both run the same SQL
under the same settings.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import attrs

import pgstash
from pgstash import Postgres
from pgstash.connection.codecs import register_codecs
from pgstash.sql.statements import Statement


@attrs.frozen
class Scale:
    """How big each workload is. `tiny` is for the smoke test; `full` is what the README reports."""

    name: str
    rounds: int  # timed repetitions per latency workload (each side)
    vectors: tuple[int, ...]  # vector-ingest sizes
    scaling: tuple[int, ...]  # ingest sizes for the linear-scaling table
    memory_elements: int  # stored elements for recall
    dimension: int = 384
    # the rounds of a row read against a goal of 1.1x (HNSW top-10): 300 leave its p50 at +-10%
    call_rounds: int = 2_000

    @classmethod
    def tiny(cls) -> Scale:
        return cls(
            "tiny",
            rounds=5,
            vectors=(500,),
            scaling=(200, 400),
            memory_elements=2_000,
            dimension=16,
            call_rounds=5,
        )

    @classmethod
    def calls(cls) -> Scale:
        """The per-call rows at full rounds, at 20,000 vectors and 100,000 memory elements only:
        the ratios of issue 22 item 7 in minutes instead of an hour."""
        return cls("calls", rounds=300, vectors=(20_000,), scaling=(), memory_elements=100_000)

    @classmethod
    def million(cls) -> Scale:
        """`full`, and the stores that take it (bench/quantize.py) at 1,000,000 rows."""
        return attrs.evolve(cls.full(), name="million")

    @classmethod
    def full(cls) -> Scale:
        return cls(
            "full",
            rounds=300,
            vectors=(20_000, 200_000),
            scaling=(20_000, 100_000, 200_000, 1_000_000),
            memory_elements=1_000_000,
        )


@attrs.frozen
class Stats:
    """Seconds per call; `p5`, the least loaded calls, is what a ratio on a shared machine reads
    best (load only ever adds time)."""

    p50: float
    p95: float
    mean: float
    p5: float

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        ordered = sorted(samples)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        p5 = ordered[round(0.05 * (len(ordered) - 1))]
        return cls(statistics.median(ordered), p95, statistics.fmean(ordered), p5)


@attrs.frozen
class Result:
    """One row of the table. `raw` is None where no raw-asyncpg equivalent exists (a goal such as
    recall or calls per second is then given in `note`); `pinned` is raw asyncpg on one pinned
    connection, where measured."""

    store: str
    workload: str
    raw: Stats | None
    pgstash: Stats
    note: str = ""
    pinned: Stats | None = None

    @property
    def ratio(self) -> float | None:
        return None if self.raw is None else self.pgstash.p50 / self.raw.p50

    @property
    def pinned_ratio(self) -> float | None:
        return None if self.pinned is None else self.pgstash.p50 / self.pinned.p50


Call = Callable[[], Awaitable[object]]


async def alternating(
    calls: Sequence[Call], rounds: int, before: Callable[[int], Awaitable[object]] | None = None
) -> list[Stats]:
    """Runs every call once a round, the order rotated each round (a, b, c; b, c, a; ...) so that
    machine noise hits all alike; `before(i)`, untimed, ahead of each run of call i (emptying a
    table, say). Returns seconds per call for each."""
    samples: list[list[float]] = [[] for _ in calls]
    for round_ in range(rounds):
        for step in range(len(calls)):
            which = (round_ + step) % len(calls)
            if before is not None:
                await before(which)
            started = time.perf_counter()
            await calls[which]()
            samples[which].append(time.perf_counter() - started)
    return [Stats.of(each) for each in samples]


# -- the raw asyncpg baseline: pgstash's statements recorded, then replayed ---------------------


@attrs.frozen
class Recorded:
    """The statements one pgstash call sent, replayable on a raw connection; `transaction`: they
    ran in one transaction of pgstash's (replayed in one, rolled back)."""

    statements: tuple[Statement, ...]
    transaction: bool

    @property
    def round_trips(self) -> int:
        """Statements plus BEGIN and ROLLBACK (pgstash sends no pool reset after its own SQL)."""
        return len(self.statements) + (2 if self.transaction else 0)

    async def replay(self, connection: Any) -> None:
        if not self.transaction:
            for statement in self.statements:
                await _send(connection, statement)
            return
        transaction = connection.transaction()
        await transaction.start()
        try:
            for statement in self.statements:
                await _send(connection, statement)
        finally:
            await transaction.rollback()


async def _send(connection: Any, statement: Statement) -> None:
    """What pgstash's driver runs for `statement`, by its kind (a connection or a pool's proxy)."""
    sql, args = statement.sql, statement.args
    if statement.kind == "execute_many":
        await connection.executemany(sql, args)
        return
    method = {"fetch": "fetch", "fetch_one": "fetchrow", "fetch_value": "fetchval", "execute": "execute"}
    await getattr(connection, method[statement.kind])(sql, *args)


@contextlib.contextmanager
def sent(
    postgres: Postgres, observe: Callable[[Statement], Awaitable[None]] | None = None
) -> Iterator[list[Statement]]:
    """`with sent(postgres) as statements:` the statements pgstash's calls run inside the block
    (`postgres.run` and `postgres.run_statement` both go through `Postgres._run`; the caller's
    own SQL, which does too, is not recorded), in order (`observe` is awaited with each one
    before it runs)."""
    seen: list[Statement] = []
    run = postgres._run

    async def recording(statement: Statement, **options: Any) -> Any:
        if not options.get("caller"):  # the caller's own SQL (fetch, execute) is not pgstash's
            seen.append(statement)
            if observe is not None:
                await observe(statement)
        return await run(statement, **options)

    postgres._run = recording  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        del postgres._run


async def record(postgres: Postgres, call: Call) -> Recorded:
    """The statements a warm `call` sends through `Postgres._run` (run once before, so
    that what pgstash caches between calls is not recorded)."""
    await call()
    inside: list[bool] = []

    async def transaction(_: Statement) -> None:
        inside.append(postgres.in_transaction)

    with sent(postgres, transaction) as seen:
        await call()
    if not seen:
        raise RuntimeError("the call sent no statement through Postgres._run: nothing to replay")
    return Recorded(tuple(seen), any(inside))


# what pgstash's own connections carry beyond the defaults, so the raw side runs under the same
_SETTINGS = Statement(
    "bench_session_settings",
    "fetch",
    "SELECT name, setting FROM pg_settings"
    " WHERE context IN ('user', 'superuser') AND source NOT IN ('default', 'override')"
    " UNION ALL SELECT name, current_setting(name, true) FROM unnest($1::text[]) AS name"
    " WHERE current_setting(name, true) IS NOT NULL",
    (
        [f"hnsw.{name}" for name in ("ef_search", "iterative_scan", "max_scan_tuples", "scan_mem_multiplier")]
        + [f"ivfflat.{name}" for name in ("probes", "iterative_scan", "max_probes")],
    ),
)


async def noop_reset(connection: asyncpg.Connection) -> None:
    """asyncpg pool `reset` that sends nothing (its default sends `RESET ALL` and more)."""


@attrs.frozen
class Raw:
    """Raw asyncpg: a pool of pgstash's size with a no-op reset, and one pinned connection."""

    pool: asyncpg.Pool
    pinned: asyncpg.Connection


@contextlib.asynccontextmanager
async def raw_asyncpg(dsn: str, postgres: Postgres, *, max_size: int) -> AsyncIterator[Raw]:
    """The raw baseline for `postgres` (a pgstash pool of `max_size` on `dsn`): pgstash's codecs
    and session settings on every connection."""
    rows = await postgres.run_statement(_SETTINGS)
    wanted = {row["name"]: row["setting"] for row in rows}

    async def init(connection: asyncpg.Connection) -> None:
        await register_codecs(connection)
        have = await connection.fetch(
            "SELECT name, current_setting(name, true) AS setting FROM unnest($1::text[]) AS name",
            list(wanted),
        )
        for row in have:
            if row["setting"] != wanted[row["name"]]:
                await connection.execute("SELECT set_config($1, $2, false)", row["name"], wanted[row["name"]])

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size, init=init, reset=noop_reset)
    try:
        pinned = await asyncpg.connect(dsn)
        try:
            await init(pinned)
            yield Raw(pool, pinned)
        finally:
            await pinned.close()
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def pgstash_and_raw(dsn: str, *, pool_size: int) -> AsyncIterator[tuple[Postgres, Raw]]:
    """A migrated pgstash pool of `pool_size` on `dsn`, and its raw asyncpg baseline."""
    async with pgstash.PostgresConnectionPool.of(dsn=dsn, max_size=pool_size) as postgres:
        await pgstash.migrate(postgres)
        async with raw_asyncpg(dsn, postgres, max_size=pool_size) as raw:
            yield postgres, raw


def verdict(ratio: float, goal: float) -> str:
    return f"{'meets' if ratio <= goal else 'misses'} the goal <= {goal:g}x of the raw pool"


async def versus_raw(
    postgres: Postgres,
    raw: Raw,
    store: str,
    workload: str,
    call: Call,
    rounds: int,
    note: str = "",
    *,
    goal: float | None = None,
    trips: str | None = None,
) -> Result:
    """pgstash's `call` against its recorded statements replayed by raw asyncpg through the pool
    and on the pinned connection, interleaved. The note says the round trips per call (`trips`
    where counted on the wire, else counted from the recording) and the goal met or missed."""
    recorded = await record(postgres, call)

    async def pooled() -> None:
        async with raw.pool.acquire() as connection:
            await recorded.replay(connection)

    async def pinned() -> None:
        await recorded.replay(raw.pinned)

    calls = (pooled, pinned, call)
    await alternating(calls, 3)
    pool_stats, pinned_stats, our_stats = await alternating(calls, rounds)
    parts = [trips or f"{recorded.round_trips} round trip(s) per call, each side"]
    if goal is not None:
        parts.append(verdict(our_stats.p50 / pool_stats.p50, goal))
    if note:
        parts.append(note)
    return Result(store, workload, pool_stats, our_stats, "; ".join(parts), pinned_stats)


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def _latency(stats: Stats) -> str:
    return f"{milliseconds(stats.p50)} / {milliseconds(stats.p95)}"


HEADER = (
    "| store | workload | raw asyncpg p50 / p95 (ms) | pgstash p50 / p95 (ms) | ratio (p50) "
    "| raw pinned p50 (ms) | ratio vs pinned | note |"
)


def markdown(results: list[Result]) -> str:
    """The README's table: raw asyncpg is its pool with a no-op reset; "pinned" one connection."""
    lines = [HEADER, "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for result in results:
        ours = _latency(result.pgstash)
        raw = "—" if result.raw is None else _latency(result.raw)
        ratio = "—" if result.ratio is None else f"{result.ratio:.2f}x"
        pinned = "—" if result.pinned is None else milliseconds(result.pinned.p50)
        pinned_ratio = "—" if result.pinned_ratio is None else f"{result.pinned_ratio:.2f}x"
        lines.append(
            f"| {result.store} | {result.workload} | {raw} | {ours} | {ratio} | {pinned} | {pinned_ratio} "
            f"| {result.note} |"
        )
    return "\n".join(lines)


Runner = Callable[[str, Scale], Awaitable[list[Result]]]


def machine() -> str:
    """Cores, memory and Python of this machine, for the table's header."""
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/meminfo") as meminfo:
            kib = int(meminfo.readline().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB memory"
    return f"{os.cpu_count()} cores{memory}, {platform.machine()}, Python {platform.python_version()}"


async def _fresh_database(server_dsn: str) -> str:
    """Drops and creates `pgstash_bench` on the server; returns its DSN."""
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute('DROP DATABASE IF EXISTS "pgstash_bench" WITH (FORCE)')
        await admin.execute('CREATE DATABASE "pgstash_bench"')
    finally:
        await admin.close()
    parts = urlsplit(server_dsn)
    return urlunsplit(parts._replace(path="/pgstash_bench"))


async def _versions(dsn: str) -> str:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
        server = await connection.fetchval("SHOW server_version")
        vector = await connection.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    finally:
        await connection.close()
    return f"PostgreSQL {server}, pgvector {vector}"


async def _run_all(runners: dict[str, Runner], server_dsn: str, scale: Scale) -> str:
    results: list[Result] = []
    dsn = await _fresh_database(server_dsn)
    header = (
        f"{datetime.date.today().isoformat()}, {machine()}, {await _versions(dsn)}, scale {scale.name}; "
        "raw asyncpg: its pool (pgstash's size, no-op reset) and one pinned connection"
    )
    for name, runner in runners.items():
        print(f"running {name} …", file=sys.stderr, flush=True)
        results.extend(await runner(dsn, scale))
    return f"{header}\n\n{markdown(results)}"


def main(runners: dict[str, Runner], argv: list[str] | None = None) -> None:
    """`python -m bench [--scale full|tiny] [--dsn DSN] [--only NAME ...]`: runs the workloads on a
    fresh `pgstash_bench` database (of --dsn's server, else of an embedded server in a temporary
    folder, deleted afterwards) and prints the header line and the markdown table."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=main.__doc__)
    parser.add_argument("--scale", choices=("full", "calls", "tiny", "million"), default="full")
    parser.add_argument("--dsn", help="a superuser DSN of the server to use (default: an embedded one)")
    parser.add_argument("--only", nargs="+", choices=sorted(runners), help="run only these stores")
    options = parser.parse_args(argv)
    scales = {"full": Scale.full, "calls": Scale.calls, "tiny": Scale.tiny, "million": Scale.million}
    scale = scales[options.scale]()
    chosen = {name: run for name, run in runners.items() if not options.only or name in options.only}
    if options.dsn:
        print(asyncio.run(_run_all(chosen, options.dsn, scale)))
        return
    folder = tempfile.mkdtemp(prefix="pgstash-bench-")
    try:
        with pgstash.embedded.start(os.path.join(folder, "data")) as server:
            print(asyncio.run(_run_all(chosen, server.dsn, scale)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
