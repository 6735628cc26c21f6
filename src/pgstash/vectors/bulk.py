"""Bulk ingest into tables with an ANN index (issue 13).

Inserting a row into an HNSW graph costs a graph search: 141-490 rows/s at 20,000 x 384 on the
2-core test machine, where building the graph from the data ran 1,100-2,100 rows/s; IVFFlat
trains its lists on the rows present when it is built. So `index` of a batch that is large next
to the table (at least `BULK_MIN_ROWS` rows, and the table holds fewer than `BULK_FACTOR` times as
many before the call, replaced keyed rows included: the measured crossover is in docs/queries.md)
takes the table's ANN indexes off in a short transaction of its own, then in one transaction
COPYs the batch (with `key=`: after deleting the rows of its keys) and builds them again from the
data, with maintenance_work_mem and parallel workers raised for that build only. Searches never
wait for the build: until the commit they see the table as it was, searched exactly; then the new
rows and the new index together. Writes to the table wait for the commit. A smaller batch, a call
inside the caller's transaction, or a table with an ANN index pgstash did not shape goes into the
existing indexes row by row. `loading` is the same load for a caller's many batches (the CLI's
`vector ingest`): one transaction, the indexes built once at its end.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import attrs

from pgstash.connection import Postgres
from pgstash.errors import DatabaseError, PgstashError
from pgstash.sql.catalogue import query
from pgstash.sql.composer import compose
from pgstash.vectors.builds import AnnIndex, BuildProgress, ann_indexes, build_settings, lists_for
from pgstash.vectors.planning import index_name

__all__ = ["BuildProgress", "Load", "Written", "drop_indexes", "ingest", "lists_for", "plan", "rebuilt"]

logger = logging.getLogger("pgstash")

BULK_MIN_ROWS = 100  # below this the rebuild's fixed cost (~70 ms) beats inserting the rows
BULK_FACTOR = 3  # rebuild when the table holds fewer than 3x the batch (crossover at 15-40%)
DROP_LOCK_TIMEOUT = "2s"  # how long searches may queue behind the DROP INDEX's lock


@attrs.frozen(slots=True)
class Load:
    """A bulk load's plan: the ANN indexes it drops first, those it builds at the end, the rows
    the table held before it (counted up to `BULK_FACTOR` x the batch) and the batch's size."""

    table: str
    dimension: int
    drops: tuple[AnnIndex, ...]
    builds: tuple[AnnIndex, ...]
    rows: int
    batch: int


@attrs.define
class Written:
    """What the load's body wrote: the rows copied (IVFFlat's lists are chosen from them)."""

    rows: int = 0


async def plan(
    postgres: Postgres, table: str, batch: int, dimension: int, pending_ivfflat: bool = False
) -> Load | None:
    """A bulk load when `batch` rows are large next to the table, else None (the insert path).
    With `pending_ivfflat` (no ANN index yet, create_table noted IVFFlat) the load builds that one."""
    if batch < BULK_MIN_ROWS or postgres.in_transaction:
        return None
    found = await ann_indexes(postgres, table, BULK_FACTOR * batch)
    if found.rows >= BULK_FACTOR * batch:
        return None
    if pending_ivfflat and not found.indexes:
        noted = AnnIndex(index_name(table, "embedding_idx"), "ivfflat", found.opclass, {}, True)
        return Load(table, dimension, (), (noted,), found.rows, batch)
    if not found.indexes or not all(index.rebuildable for index in found.indexes):
        return None
    return Load(table, dimension, found.indexes, found.indexes, found.rows, batch)


async def drop_indexes(postgres: Postgres, load: Load) -> bool:
    """The load's first, short transaction: its indexes dropped (ACCESS EXCLUSIVE from the DROP to
    the commit; searches queue behind it at most `DROP_LOCK_TIMEOUT`). False when a transaction
    keeps the table open that long (55P03): nothing changed, the batch takes the insert path."""
    if not load.drops:
        return True
    try:
        async with postgres.transaction():
            await postgres.run("vectors_ddl_settings", lock_timeout=DROP_LOCK_TIMEOUT, local=True)
            for index in load.drops:
                drop = compose(query("vectors_drop_index"), slots={"index": index.name})
                await postgres.run_statement(drop)
    except DatabaseError as error:
        if error.sqlstate != "55P03":
            raise
        logger.info(
            "vector table %s is busy (%s): the batch goes into its index row by row", load.table, error
        )
        return False
    return True


@contextlib.asynccontextmanager
async def rebuilt(postgres: Postgres, load: Load) -> AsyncIterator[Written]:
    """The load's transaction, after `drop_indexes`: the bulk lock (`vectors_bulk_lock`), the
    body (which writes its rows, adding them to the yielded `Written`), then the build settings
    and each index built from the data; commit. On any failure the rows are rolled back and the
    dropped indexes built again concurrently before the error goes on."""
    written = Written()
    try:
        opclass = load.builds[0].opclass if load.builds else "vector_cosine_ops"
        settings = await build_settings(postgres, load.rows + load.batch, load.dimension, opclass=opclass)
        async with postgres.transaction():
            await postgres.run("vectors_bulk_lock", table_name=load.table)
            if not load.drops:  # create_table's IVFFlat note: this load builds it
                clear = compose(query("vectors_comment_clear"), slots={"table": load.table})
                await postgres.run_statement(clear)
            yield written
            await postgres.run(
                "vectors_build_settings", memory_kb=settings.memory_kb, workers=settings.workers, local=True
            )
            for index in load.builds:
                rows = load.rows + (written.rows or load.batch)  # `loading`'s calls do not count
                build = index.build(load.table, rows, concurrently=False)
                await postgres.run_statement(build)
    except BaseException:
        await _restore(postgres, load)
        raise


async def _restore(postgres: Postgres, load: Load) -> None:
    """After a failed bulk load (none of its rows written): the indexes as they were, built
    concurrently on a fresh connection. If that fails too (the server is gone), the table stays
    without them, searched exactly, until `build_index`; the load's own error is what is raised."""
    try:
        for index in load.drops:
            await postgres.run_statement(index.build(load.table, load.rows, concurrently=True))
    except (PgstashError, OSError) as error:
        logger.warning(
            "vector table %s: its ANN index was not rebuilt after a failed load (%s); searches are "
            "exact until build_index runs",
            load.table,
            error,
        )


async def ingest(
    postgres: Postgres,
    table: str,
    write: Callable[[], Awaitable[int]],
    batch: int,
    dimension: int,
    pending_ivfflat: bool = False,
) -> bool:
    """Writes one `index` call's batch with `write()` (its COPY, with `key=` after the keyed
    lock and DELETE, returning the rows copied): into the existing indexes, or as a bulk load
    whose transaction holds the write and the index builds. Returns whether it built them."""
    load = await plan(postgres, table, batch, dimension, pending_ivfflat)
    if load is None or not await drop_indexes(postgres, load):
        await write()
        return False
    async with rebuilt(postgres, load) as written:
        written.rows += await write()
    return True
