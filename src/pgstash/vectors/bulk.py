"""Bulk ingest into tables with an ANN index, and explicit index builds (issue 13).

Inserting a row into an HNSW graph costs a graph search: 141-490 rows/s at 20,000 x 384 on the
2-core test machine, where building the graph from the data ran 1,100-2,100 rows/s; IVFFlat
trains its lists on the rows present when it is built. So `index` of a batch that is large next
to the table (at least `BULK_MIN_ROWS` rows, and the table holds fewer than `BULK_FACTOR` times as
many: the measured crossover is in docs/queries.md) takes the table's ANN indexes off in a short
transaction of its own, then in one transaction COPYs the batch and builds them again from the
data, with maintenance_work_mem and parallel workers raised for that build only. Searches never
wait for the build: until the commit they see the table as it was, searched exactly; then the new
rows and the new index together. Writes to the table wait for the commit. A smaller batch, a call
inside the caller's transaction, or a table with an ANN index pgstash did not shape goes into the
existing indexes row by row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterable, Callable, Mapping
from typing import Any

import attrs

from pgstash.composer import compose
from pgstash.connection import Postgres
from pgstash.errors import DatabaseError, PgstashError
from pgstash.queries import query
from pgstash.statements import Statement
from pgstash.vectors.planning import index_name

__all__ = ["BuildProgress", "BuildSettings", "build_index", "build_settings", "ingest", "lists_for"]

logger = logging.getLogger("pgstash")

BULK_MIN_ROWS = 100  # below this the rebuild's fixed cost (~70 ms) beats inserting the rows
BULK_FACTOR = 3  # rebuild when the table holds fewer than 3x the batch (crossover at 15-40%)
DROP_LOCK_TIMEOUT = "2s"  # how long searches may queue behind the DROP INDEX's lock
MEMORY_CAP_KB = 1 << 20  # a build raises maintenance_work_mem to at most 1 GiB
PARTICIPANT_KB = 32 * 1024  # PostgreSQL gives each parallel build participant >= 32 MB or fewer workers
GRAPH_OVERHEAD = 200  # bytes per HNSW element besides its value and neighbour lists
HNSW_OPTIONS = {"m": 16, "ef_construction": 64}  # pgvector's defaults
OPCLASSES = ("vector_cosine_ops", "halfvec_cosine_ops")


def lists_for(rows: int) -> int:
    """IVFFlat lists for `rows` rows, pgvector's advice: rows / 1000 up to 1M rows, sqrt(rows) above."""
    return max(1, rows // 1000) if rows <= 1_000_000 else math.isqrt(rows)


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
    postgres: Postgres, rows: int, dimension: int, workers: int | None = None
) -> BuildSettings:
    """Workers: the server's max_parallel_maintenance_workers unless given, never above
    max_parallel_workers nor max_worker_processes - 1. Memory: enough for the graph and 32 MB per
    participant, never below the server's maintenance_work_mem nor above `MEMORY_CAP_KB` (a
    parallel build takes it all as one shared memory segment)."""
    limits = await postgres.run("vectors_build_limits")
    wanted = limits["max_parallel_maintenance_workers"] if workers is None else workers
    chosen = max(0, min(wanted, limits["max_parallel_workers"], limits["max_worker_processes"] - 1))
    need = max(graph_kb(rows, dimension), PARTICIPANT_KB * (chosen + 1))
    return BuildSettings(max(limits["maintenance_work_mem_kb"], min(need, MEMORY_CAP_KB)), chosen)


async def ann_indexes(postgres: Postgres, table: str, most: int) -> tuple[list[AnnIndex], int]:
    """The table's HNSW/IVFFlat indexes and its row count up to `most`, in one statement."""
    rows = await postgres.run_statement(
        compose(query("vectors_ann_indexes"), slots={"table": table}, table_name=table, most=most)
    )
    found = [AnnIndex.of(row) for row in rows if row["index_name"] is not None]
    return found, int(rows[0]["row_count"]) if rows else 0


async def ingest(
    postgres: Postgres,
    table: str,
    copy: Statement,
    source: AsyncIterable[bytes],
    batch: int,
    dimension: int,
    pending_ivfflat: bool = False,
) -> bool:
    """COPYs the batch: into the existing indexes, or (a bulk load, see the module) with the ANN
    indexes built again from the data in the same transaction; with `pending_ivfflat` (the table
    has no ANN index yet and create_table noted IVFFlat) a bulk load builds that one. Returns
    whether it built the indexes."""
    if batch < BULK_MIN_ROWS or postgres.in_transaction:
        await postgres.copy(copy, source)
        return False
    indexes, rows = await ann_indexes(postgres, table, BULK_FACTOR * batch)
    if pending_ivfflat and not indexes:
        noted = AnnIndex(index_name(table, "embedding_idx"), "ivfflat", OPCLASSES[0], {}, True)
        return await _load(postgres, table, copy, source, [], [noted], rows, batch, dimension)
    if not indexes or rows >= BULK_FACTOR * batch or not all(index.rebuildable for index in indexes):
        await postgres.copy(copy, source)
        return False
    return await _load(postgres, table, copy, source, indexes, indexes, rows, batch, dimension)


async def _load(
    postgres: Postgres,
    table: str,
    copy: Statement,
    source: AsyncIterable[bytes],
    indexes: list[AnnIndex],
    builds: list[AnnIndex],
    rows: int,
    batch: int,
    dimension: int,
) -> bool:
    """The bulk load: `indexes` dropped in a short transaction, then the COPY and `builds` in
    one transaction (see the module)."""
    if rows >= BULK_FACTOR * batch:
        await postgres.copy(copy, source)
        return False
    settings = await build_settings(postgres, rows + batch, dimension)
    failure: BaseException | None = None
    async with postgres.session():
        try:
            async with postgres.transaction():  # ACCESS EXCLUSIVE only from the DROP to the commit
                await postgres.run("vectors_ddl_settings", lock_timeout=DROP_LOCK_TIMEOUT, local=True)
                for index in indexes:
                    await postgres.run_statement(
                        compose(query("vectors_drop_index"), slots={"index": index.name})
                    )
        except DatabaseError as error:
            if error.sqlstate != "55P03":
                raise
            logger.info(
                "vector table %s is busy (%s): the batch goes into its index row by row", table, error
            )
            await postgres.copy(copy, source)
            return False
        try:
            async with postgres.transaction():
                copied = await postgres.copy(copy, source)
                await postgres.run(
                    "vectors_build_settings",
                    memory_kb=settings.memory_kb,
                    workers=settings.workers,
                    local=True,
                )
                for index in builds:
                    await postgres.run_statement(index.build(table, rows + copied, concurrently=False))
                if not indexes:  # create_table's note is done with
                    await postgres.run_statement(
                        compose(query("vectors_comment_clear"), slots={"table": table})
                    )
        except BaseException as error:
            failure = error
    if failure is not None:
        await _restore(postgres, table, indexes, rows)
        raise failure
    return True


async def _restore(postgres: Postgres, table: str, indexes: list[AnnIndex], rows: int) -> None:
    """After a failed bulk load (none of its rows written): the indexes as they were, built
    concurrently on a fresh connection. If that fails too (the server is gone), the table stays
    without them, searched exactly, until `build_index`; the load's own error is what is raised."""
    try:
        for index in indexes:
            await postgres.run_statement(index.build(table, rows, concurrently=True))
    except (PgstashError, OSError) as error:
        logger.warning(
            "vector table %s: its ANN index was not rebuilt after a failed load (%s); searches are "
            "exact until build_index runs",
            table,
            error,
        )


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
) -> float:
    """(Re)builds the table's ANN index on embedding without blocking reads or writes: REINDEX
    INDEX CONCURRENTLY when it stays as it is, else a new index built CONCURRENTLY (IVFFlat lists
    from today's row count) that then replaces the old one. `progress` gets samples of
    pg_stat_progress_create_index, read on another connection every `every` seconds. Waits for
    transactions that hold the table open. Returns the seconds it took."""
    started = time.perf_counter()
    indexes, rows = await ann_indexes(postgres, table, 1 << 62)
    ours = [index for index in indexes if index.rebuildable]
    old = ours[0] if ours else None
    name = old.name if old is not None else index_name(table, "embedding_idx")
    opclass = old.opclass if old is not None else OPCLASSES[0]
    target = AnnIndex(name, method, opclass, dict(old.options) if old and old.method == method else {}, True)
    settings = await build_settings(postgres, rows, dimension)
    watcher = asyncio.create_task(_watch(postgres, table, rows, progress, every)) if progress else None
    try:
        async with postgres.session():  # session settings: the connection is reset on release
            await postgres.run(
                "vectors_build_settings", memory_kb=settings.memory_kb, workers=settings.workers, local=False
            )
            unchanged = old is not None and old.method == method
            if unchanged and method == "ivfflat":
                unchanged = old is not None and old.options.get("lists") == lists_for(rows)
            if unchanged:
                await postgres.run_statement(
                    compose(query("vectors_reindex_concurrently"), slots={"index": name})
                )
            else:
                fresh = index_name(table, "embedding_new")
                drop = query("vectors_drop_index_concurrently")
                await postgres.run_statement(compose(drop, slots={"index": fresh}))
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
