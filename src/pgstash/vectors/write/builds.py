"""ANN index builds (issue 13): the table's HNSW/IVFFlat indexes as the catalog shows them, the
settings one build gets (maintenance_work_mem and parallel workers, within the server's limits),
and `build_index`: an explicit rebuild that blocks neither reads nor writes (`CONCURRENTLY`), with
progress samples from `pg_stat_progress_create_index`. The bulk load (`bulk.py`) builds with the
same templates inside its transaction."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from pgstash.connection import Postgres
from pgstash.errors import PgstashError
from pgstash.sql.catalogue import query
from pgstash.sql.composer import compose
from pgstash.sql.statements import Statement
from pgstash.vectors.facts import index_name
from pgstash.vectors.sessions import session_for_settings

__all__ = [
    "AnnIndex",
    "BuildProgress",
    "BuildSettings",
    "ann_indexes",
    "build_index",
    "build_settings",
    "lists_for",
    "opclass_of",
]

MEMORY_CAP_KB = 1 << 20  # a build raises maintenance_work_mem to at most 1 GiB
PARTICIPANT_KB = 32 * 1024  # PostgreSQL gives each parallel build participant >= 32 MB or fewer workers
GRAPH_OVERHEAD = 200  # bytes per HNSW element besides its value and neighbour lists
HNSW_OPTIONS = {"m": 16, "ef_construction": 64}  # pgvector's defaults
OPCLASSES = ("vector_cosine_ops", "halfvec_cosine_ops")  # the only opclasses a template is given


def lists_for(rows: int) -> int:
    """IVFFlat lists for `rows` rows, pgvector's advice: rows / 1000 up to 1M rows, sqrt(rows) above."""
    return max(1, rows // 1000) if rows <= 1_000_000 else math.isqrt(rows)


def opclass_of(embedding_type: str | None) -> str:
    """The cosine opclass of the embedding column's type (vector or halfvec)."""
    opclass = f"{embedding_type}_cosine_ops"
    if opclass not in OPCLASSES:
        raise ValueError(f"no cosine index for an embedding column of type {embedding_type!r}")
    return opclass


@attrs.frozen(slots=True)
class AnnIndex:
    """An HNSW or IVFFlat index of the table, as `vectors_ann_indexes` reads it."""

    name: str
    method: str
    opclass: str
    options: Mapping[str, int]
    rebuildable: bool  # on embedding, a cosine opclass, valid, no predicate or expression

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> AnnIndex:
        options: dict[str, int] = {}
        for option in row["options"] or ():
            key, _, value = str(option).partition("=")
            if value.isdigit():
                options[key] = int(value)
        return cls(row["index_name"], row["method"], row["opclass"], options, bool(row["rebuildable"]))

    def build(self, table: str, rows: int, *, concurrently: bool, name: str | None = None) -> Statement:
        """The CREATE INDEX that builds this index again (IVFFlat: lists from `rows`)."""
        if self.opclass not in OPCLASSES:
            raise ValueError(f"pgstash builds cosine indexes only ({OPCLASSES}), not {self.opclass!r}")
        suffix = "_concurrently" if concurrently else ""
        slots: dict[str, str | int] = {"table": table, "index": name or self.name, "opclass": self.opclass}
        if self.method == "hnsw":
            for option, default in HNSW_OPTIONS.items():
                slots[option] = self.options.get(option, default)
            return compose(query(f"vectors_build_hnsw{suffix}"), slots=slots)
        slots["lists"] = lists_for(rows)
        return compose(query(f"vectors_build_ivfflat{suffix}"), slots=slots)


@attrs.frozen(slots=True)
class BuildSettings:
    """One build's maintenance_work_mem (kB) and parallel maintenance workers."""

    memory_kb: int
    workers: int


def graph_kb(rows: int, dimension: int, m: int = HNSW_OPTIONS["m"], value_bytes: int = 4) -> int:
    """An HNSW graph in memory while it is built: value + 32 m + 200 bytes per row (measured:
    16 MB held 7,453 rows of 384 float32 dimensions at m = 16), a quarter more for margin."""
    element = value_bytes * dimension + 8 + 32 * m + GRAPH_OVERHEAD
    return math.ceil(rows * element * 1.25 / 1024)


async def build_settings(
    postgres: Postgres, rows: int, dimension: int, workers: int | None = None, opclass: str = OPCLASSES[0]
) -> BuildSettings:
    """Workers: the server's max_parallel_maintenance_workers unless given, never above
    max_parallel_workers nor max_worker_processes - 1. Memory: enough for the graph and 32 MB per
    participant (halfvec values take half a vector's bytes), never below the server's
    maintenance_work_mem nor above `MEMORY_CAP_KB` (a parallel build takes it all as one shared
    memory segment)."""
    limits = await postgres.run("vectors_build_limits")
    wanted = limits["max_parallel_maintenance_workers"] if workers is None else workers
    chosen = max(0, min(wanted, limits["max_parallel_workers"], limits["max_worker_processes"] - 1))
    value_bytes = 2 if opclass == "halfvec_cosine_ops" else 4
    need = max(graph_kb(rows, dimension, value_bytes=value_bytes), PARTICIPANT_KB * (chosen + 1))
    return BuildSettings(max(limits["maintenance_work_mem_kb"], min(need, MEMORY_CAP_KB)), chosen)


@attrs.frozen(slots=True)
class TableIndexes:
    """`vectors_ann_indexes`: the table's ANN indexes, its rows counted up to `most`, and the
    cosine opclass of its embedding column's type."""

    indexes: tuple[AnnIndex, ...]
    rows: int
    opclass: str


async def ann_indexes(postgres: Postgres, table: str, most: int) -> TableIndexes:
    """The table's HNSW/IVFFlat indexes and its row count up to `most`, in one statement."""
    rows = await postgres.run_statement(
        compose(query("vectors_ann_indexes"), slots={"table": table}, table_name=table, most=most)
    )
    found = tuple(AnnIndex.of(row) for row in rows if row["index_name"] is not None)
    return TableIndexes(found, int(rows[0]["row_count"]), opclass_of(rows[0]["embedding_type"]))


@attrs.frozen(slots=True)
class BuildProgress:
    """One sample of pg_stat_progress_create_index for the table: the phase, heap blocks scanned
    (HNSW's "loading tuples" counts them), tuples done, and the table's row count."""

    phase: str
    blocks_done: int
    blocks_total: int
    tuples_done: int
    rows: int


async def _watch(
    postgres: Postgres, table: str, rows: int, report: Callable[[BuildProgress], object], every: float
) -> None:
    while True:
        row = await postgres.run("vectors_build_progress", table_name=table)
        if row is not None:
            report(
                BuildProgress(row["phase"], row["blocks_done"], row["blocks_total"], row["tuples_done"], rows)
            )
        await asyncio.sleep(every)


async def build_index(
    postgres: Postgres,
    table: str,
    method: str,
    dimension: int,
    progress: Callable[[BuildProgress], object] | None = None,
    every: float = 0.5,
    invalid: frozenset[str] = frozenset(),
) -> float:
    """(Re)builds the table's ANN index on embedding without blocking reads or writes: REINDEX
    INDEX CONCURRENTLY when it stays as it is, else a new index built CONCURRENTLY (IVFFlat lists
    from today's row count) that then replaces the old one. `progress` gets samples of
    pg_stat_progress_create_index, read on another connection every `every` seconds. Waits for
    transactions that hold the table open. Returns the seconds it took. An `invalid` index of
    the target's name (a concurrent build cut short, by create_table's lock_timeout say) counts
    as the old one, and a leftover `*_embedding_new` goes first: one ANN index at the end."""
    started = time.perf_counter()
    found = await ann_indexes(postgres, table, 1 << 62)
    rows = found.rows
    fresh = index_name(table, "embedding_new")
    ours = [index for index in found.indexes if index.rebuildable and index.name != fresh]
    old = ours[0] if ours else None
    name = old.name if old is not None else index_name(table, "embedding_idx")
    opclass = old.opclass if old is not None else found.opclass
    target = AnnIndex(name, method, opclass, dict(old.options) if old and old.method == method else {}, True)
    settings = await build_settings(postgres, rows, dimension, opclass=opclass)
    watcher = asyncio.create_task(_watch(postgres, table, rows, progress, every)) if progress else None
    try:
        async with session_for_settings(postgres) as session:  # the connection is reset on release
            if session:
                await postgres.run(
                    "vectors_build_settings",
                    memory_kb=settings.memory_kb,
                    workers=settings.workers,
                    local=False,
                )
            drop = query("vectors_drop_index_concurrently")
            present = {index.name for index in found.indexes} | invalid
            for leftover in sorted(present & {fresh} | invalid & {name}):
                await postgres.run_statement(compose(drop, slots={"index": leftover}))
            unchanged = old is not None and old.method == method
            if unchanged and method == "ivfflat":
                unchanged = old is not None and old.options.get("lists") == lists_for(rows)
            if unchanged:
                reindex = compose(query("vectors_reindex_concurrently"), slots={"embedding_index": name})
                await postgres.run_statement(reindex)
            else:
                await postgres.run_statement(target.build(table, rows, concurrently=True, name=fresh))
                if old is not None:
                    await postgres.run_statement(compose(drop, slots={"index": old.name}))
                await postgres.run_statement(
                    compose(query("vectors_rename_index"), slots={"index": fresh, "new_name": name})
                )
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, PgstashError):
                await watcher
    return time.perf_counter() - started
