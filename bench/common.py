"""Shared benchmark machinery: interleaved timing of raw asyncpg against pgstash, and the table.

Each store module (`bench/documents.py`, `bench/memory.py`, `bench/vectors.py`) exposes
`async def run(dsn: str, scale: Scale) -> list[Result]`; `python -m bench` runs them all on the
embedded server and prints one markdown table. The smoke test runs every module at `Scale.tiny()`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable

import attrs


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
