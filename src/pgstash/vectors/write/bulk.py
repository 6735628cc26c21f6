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

Both transactions start with the bulk lock (`vectors_bulk_lock`, the table's own SHARE UPDATE
EXCLUSIVE), waited for whatever the caller's `lock_timeout`: a second load waits for the first to
commit before it drops anything. The drop waits at most `DROP_LOCK_TIMEOUT` for a transaction that
holds the table open (searches queue behind it that long), `DROP_ATTEMPTS` times, then the batch
takes the insert path. The drop's transaction records what it dropped in the table's comment
(`DROPPED_COMMENT`); the load's commit clears it. A load that never commits (its client or the
server killed) leaves the record: `repair` (run by the next `index`, `create_table` and
`build_index`) builds those indexes again, and `pgstash status` flags the table meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import attrs
import orjson

from pgstash.connection import Postgres
from pgstash.errors import DatabaseError, PgstashError
from pgstash.jsonvalue import dumps_json
from pgstash.sql import names
from pgstash.sql.composer import compose
from pgstash.sql.templates import Constant, SlotValue
from pgstash.vectors.facts import TableFacts, index_name, read_facts, tables
from pgstash.vectors.write.builds import AnnIndex, BuildProgress, ann_indexes, build_settings, lists_for

__all__ = [
    "DROPPED_COMMENT", "BuildProgress", "Load", "Written", "drop_indexes", "dropped_of", "ingest",
    "lists_for", "plan", "rebuilt", "repair",
]  # fmt: skip

logger = logging.getLogger("pgstash")

BULK_MIN_ROWS = 100  # below this the rebuild's fixed cost (~70 ms) beats inserting the rows
BULK_FACTOR = 3  # rebuild when the table holds fewer than 3x the batch (crossover at 15-40%)
DROP_LOCK_TIMEOUT = "100ms"  # how long searches may queue behind the DROP INDEX's lock
DROP_ATTEMPTS = 5  # drops tried (searches run between them) before the batch goes row by row
DROP_PAUSE = 0.2  # seconds between two attempts, times the attempt's number
DROPPED_COMMENT = "pgstash: ANN index dropped by a bulk load, rebuilt at its commit: "


def dropped_comment(indexes: tuple[AnnIndex, ...]) -> Constant:
    """The table comment that records a bulk load's drop: the indexes' definitions as JSON
    (validated names, allow-listed opclasses and methods, integer options: no quote)."""
    defined = [
        {"name": i.name, "method": i.method, "opclass": i.opclass, "options": dict(i.options)}
        for i in indexes
    ]
    return Constant(DROPPED_COMMENT + dumps_json(defined).decode())


def dropped_of(comment: str | None) -> tuple[AnnIndex, ...]:
    """The indexes a table's comment records as dropped by a load that has not committed."""
    if not comment or not comment.startswith(DROPPED_COMMENT):
        return ()
    try:
        defined = orjson.loads(comment[len(DROPPED_COMMENT) :])
        return tuple(
            AnnIndex(d["name"], d["method"], d["opclass"], {k: int(v) for k, v in d["options"].items()}, True)
            for d in defined
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return ()


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


async def _bulk_lock(postgres: Postgres, table: str) -> None:
    """The bulk lock, waited for without the caller's `lock_timeout` (a load waits for the loads
    before it), which is then set back for the rest of the transaction."""
    before = await postgres.run(names.vectors_lock_wait, lock_timeout="0")
    await postgres.run_statement(compose(names.vectors_bulk_lock, slots={"table": table}))
    await postgres.run(names.vectors_lock_wait, lock_timeout=before)


async def drop_indexes(postgres: Postgres, load: Load) -> bool:
    """The load's first, short transaction: the bulk lock, its indexes dropped (ACCESS EXCLUSIVE
    from the DROP to the commit; searches queue behind it at most `DROP_LOCK_TIMEOUT`) and the
    drop recorded in the table's comment. Tried `DROP_ATTEMPTS` times while a transaction keeps
    the table open (55P03); then False: nothing changed, the batch takes the insert path."""
    if not load.drops:
        return True
    for attempt in range(1, DROP_ATTEMPTS + 1):
        try:
            async with postgres.transaction():
                await _bulk_lock(postgres, load.table)
                await postgres.run(names.vectors_ddl_settings, lock_timeout=DROP_LOCK_TIMEOUT, local=True)
                for index in load.drops:
                    drop = compose(names.vectors_drop_index, slots={"index": index.name})
                    await postgres.run_statement(drop)
                slots: dict[str, SlotValue] = {"table": load.table, "comment": dropped_comment(load.drops)}
                await postgres.run_statement(compose(names.vectors_comment_dropped, slots=slots))
            return True
        except DatabaseError as error:
            if error.sqlstate != "55P03":
                raise
            busy = error
        await asyncio.sleep(DROP_PAUSE * attempt)
    logger.info("vector table %s is busy (%s): the batch goes into its index row by row", load.table, busy)
    return False


@contextlib.asynccontextmanager
async def rebuilt(postgres: Postgres, load: Load) -> AsyncIterator[Written]:
    """The load's transaction, after `drop_indexes`: the bulk lock, the body (which writes its
    rows, adding them to the yielded `Written`), then the build settings, each index built from
    the data, and the table's comment (the drop's record, or create_table's IVFFlat note)
    cleared; commit. On any failure the rows are rolled back and the dropped indexes built again
    (`_restore`) before the error goes on."""
    written = Written()
    try:
        opclass = load.builds[0].opclass if load.builds else "vector_cosine_ops"
        settings = await build_settings(postgres, load.rows + load.batch, load.dimension, opclass=opclass)
        async with postgres.transaction():
            await _bulk_lock(postgres, load.table)
            yield written
            await postgres.run(
                "vectors_build_settings", memory_kb=settings.memory_kb, workers=settings.workers, local=True
            )
            for index in load.builds:
                rows = load.rows + (written.rows or load.batch)  # `loading`'s calls do not count
                build = index.build(load.table, rows, concurrently=False)
                await postgres.run_statement(build)
            await postgres.run_statement(compose(names.vectors_comment_clear, slots={"table": load.table}))
    except BaseException:
        await _restore(postgres, load.table, load.drops)
        raise


async def _restore(postgres: Postgres, table: str, indexes: tuple[AnnIndex, ...]) -> bool:
    """After a failed load: the indexes as they were (`_rebuild`, waiting for the bulk lock as a
    load waits). If that fails (the server is gone), the table stays without them, searched
    exactly, its comment still recording them for `repair`; the load's own error is what is raised."""
    return not indexes or await _rebuild(postgres, table, indexes, repairing=False)


async def repair(postgres: Postgres, table: str, facts: TableFacts) -> bool:
    """Builds again the ANN indexes the table's comment records as dropped by a bulk load that
    never committed, then clears the record (`_rebuild`). Nothing while a load holds the bulk lock
    (its commit clears the record), inside a transaction, or without one. Whether it built."""
    dropped = dropped_of(facts.comment)
    if not dropped or postgres.in_transaction:
        return False
    return await _rebuild(postgres, table, dropped, repairing=True)


async def _rebuild(postgres: Postgres, table: str, indexes: tuple[AnnIndex, ...], *, repairing: bool) -> bool:
    """In one transaction holding the bulk lock (`repairing`: taken only if free, else nothing is
    done; else waited for): the dropped `indexes` built again from the rows and the drop's record
    cleared, if the table, read again under the lock, still records them and has no ANN index
    pgstash could rebuild (a load that committed meanwhile cleared the record, `build_index` built
    one: never two). Built in the transaction, not concurrently: a concurrent build waits for
    every older transaction, and a load waiting for the bulk lock is one, which waits for the
    build's lock in turn (a deadlock, which left the index invalid); here a load waits for the
    commit instead, then writes into the index this built. Writers wait for the build, readers do
    not. An invalid index of the name (a concurrent build cut short) is dropped first, which keeps
    readers out until the commit. A failure once the lock is held is logged, not raised. Whether
    it built."""
    locked = False
    clear = compose(names.vectors_comment_clear, slots={"table": table})
    try:
        async with postgres.transaction():
            if repairing:
                await postgres.run_statement(compose(names.vectors_bulk_lock_nowait, slots={"table": table}))
            else:
                await _bulk_lock(postgres, table)
            locked = True
            now = await read_facts(postgres, table)  # the record and the indexes as they are, under the lock
            if not dropped_of(now.comment):
                return False
            found = await ann_indexes(postgres, table, 1 << 62)
            if any(index.rebuildable for index in found.indexes):
                await postgres.run_statement(clear)
                return False
            if repairing:
                logger.warning(
                    "vector table %s: a bulk load that never committed left it without its ANN index "
                    "(%s); building it again",
                    table,
                    ", ".join(index.name for index in indexes),
                )
            for index in indexes:
                if index.name in now.invalid_indexes:  # a concurrent build of its name was cut short
                    drop = compose(names.vectors_drop_index, slots={"index": index.name})
                    await postgres.run_statement(drop)
                await postgres.run_statement(index.build(table, found.rows, concurrently=False))
            await postgres.run_statement(clear)
    except (PgstashError, OSError) as error:
        if repairing and not locked:
            if isinstance(error, DatabaseError) and error.sqlstate == "55P03":
                return False  # a load (or VACUUM, or a concurrent build) holds the table: not now
            raise
        logger.warning(
            "vector table %s: its ANN index was not rebuilt after a failed load (%s); searches are "
            "exact until the next index(), create_table or build_index rebuilds it",
            table,
            error,
        )
        return False
    tables(postgres).pop(table, None)  # the facts read above lack the index: read them again
    return True


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
