"""Shared benchmark machinery: interleaved timing of raw asyncpg against pgstash, and the table.

Each store module (`bench/documents.py`, `bench/memory.py`, `bench/vectors.py`) exposes
`async def run(dsn: str, scale: Scale) -> list[Result]`; `python -m bench` runs them all on the
embedded server and prints one markdown table. The smoke test runs every module at `Scale.tiny()`.
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
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import attrs
import orjson

import pgstash


@attrs.frozen
class Scale:
    """How big each workload is. `tiny` is for the smoke test; `full` is what the README reports."""

    name: str
    rounds: int  # timed repetitions per latency workload (each side)
    vectors: tuple[int, ...]  # vector-ingest sizes
    scaling: tuple[int, ...]  # ingest sizes for the linear-scaling table
    memory_elements: int  # stored elements for recall
    dimension: int = 384

    @classmethod
    def tiny(cls) -> Scale:
        return cls("tiny", rounds=5, vectors=(500,), scaling=(200, 400), memory_elements=2_000, dimension=16)

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
    p50: float
    p95: float
    mean: float

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        ordered = sorted(samples)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        return cls(statistics.median(ordered), p95, statistics.fmean(ordered))


@attrs.frozen
class Result:
    """One row of the table. `raw` is None where no raw-asyncpg equivalent exists (a goal such as
    recall or calls per second is then given in `note`)."""

    store: str
    workload: str
    raw: Stats | None
    pgstash: Stats
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return None if self.raw is None else self.pgstash.p50 / self.raw.p50


async def interleaved(
    raw: Callable[[], Awaitable[object]],
    ours: Callable[[], Awaitable[object]],
    rounds: int,
    warmup: int = 3,
) -> tuple[Stats, Stats]:
    """Times `raw` and `ours` alternately (raw, ours, raw, ours, ...) so that machine noise hits
    both alike; returns seconds per call for each."""
    for _ in range(warmup):
        await raw()
        await ours()
    raw_samples: list[float] = []
    our_samples: list[float] = []
    for index in range(rounds):
        pair = ((raw, raw_samples), (ours, our_samples))
        for call, samples in pair if index % 2 == 0 else reversed(pair):
            started = time.perf_counter()
            await call()
            samples.append(time.perf_counter() - started)
    return Stats.of(raw_samples), Stats.of(our_samples)


def milliseconds(seconds: float) -> str:
    return f"{seconds * 1000:.3f}"


def _latency(stats: Stats) -> str:
    return f"{milliseconds(stats.p50)} / {milliseconds(stats.p95)}"


def markdown(results: list[Result]) -> str:
    lines = [
        "| store | workload | raw asyncpg p50 / p95 (ms) | pgstash p50 / p95 (ms) | ratio (p50) | note |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        ours = _latency(result.pgstash)
        raw = "—" if result.raw is None else _latency(result.raw)
        ratio = "—" if result.ratio is None else f"{result.ratio:.2f}x"
        lines.append(f"| {result.store} | {result.workload} | {raw} | {ours} | {ratio} | {result.note} |")
    return "\n".join(lines)


async def raw_jsonb(connection: asyncpg.Connection) -> None:
    """Pool `init` of the raw-asyncpg side: what a careful asyncpg user registers, binary jsonb
    through orjson, so both sides decode the same values."""
    await connection.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=lambda value: b"\x01" + orjson.dumps(value),
        decoder=lambda data: orjson.loads(data[1:]),
        format="binary",
    )


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
    header = f"{datetime.date.today().isoformat()}, {machine()}, {await _versions(dsn)}, scale {scale.name}"
    for name, runner in runners.items():
        print(f"running {name} …", file=sys.stderr, flush=True)
        results.extend(await runner(dsn, scale))
    return f"{header}\n\n{markdown(results)}"


def main(runners: dict[str, Runner], argv: list[str] | None = None) -> None:
    """`python -m bench [--scale full|tiny] [--dsn DSN] [--only NAME ...]`: runs the workloads on a
    fresh `pgstash_bench` database (of --dsn's server, else of an embedded server in a temporary
    folder, deleted afterwards) and prints the header line and the markdown table."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=main.__doc__)
    parser.add_argument("--scale", choices=("full", "tiny"), default="full")
    parser.add_argument("--dsn", help="a superuser DSN of the server to use (default: an embedded one)")
    parser.add_argument("--only", nargs="+", choices=sorted(runners), help="run only these stores")
    options = parser.parse_args(argv)
    scale = Scale.full() if options.scale == "full" else Scale.tiny()
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
