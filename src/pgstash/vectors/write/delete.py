"""`delete`: rows by requirements, by keys or all of them; and after a bulk delete, the
nearest-neighbour index rebuilt and the table vacuumed, so that searches keep their usual speed.

An HNSW graph keeps linking deleted rows until VACUUM cleans it, and VACUUM's index phase on HNSW
is slow (issue 17: over 28 minutes after deleting 89% of 200,000 rows). Meanwhile a scan spends
its `ef_search` candidates on dead rows: a plain top-10 came back with 4 rows on average, so every
search fell back to an exact scan of the whole heap, dead rows included (20,000 x 128 here: p50
1.5 ms -> 37 ms). `REINDEX INDEX CONCURRENTLY` builds the graph from the rows left (2.5 s there)
and `VACUUM (ANALYZE)` then reclaims the heap (0.5 s). Both run outside a transaction, on their
own pinned connection; inside a caller's transaction nothing runs and a warning recommends them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

from pgstash.connection import Postgres
from pgstash.errors import DatabaseError
from pgstash.sql.catalogue import query
from pgstash.sql.composer import compose
from pgstash.vectors.facts import TableFacts, index_name
from pgstash.vectors.filters import AttributeRequirement
from pgstash.vectors.gate import custom_plans
from pgstash.vectors.sessions import session_for_settings
from pgstash.vectors.table import VectorTable
from pgstash.vectors.write.keys import delete_keys

__all__ = ["BULK_DELETE_SHARE", "after_delete", "delete"]

logger = logging.getLogger("pgstash")

BULK_DELETE_SHARE = 0.25  # a delete removing more than this share of the rows rebuilds the index:
# measured on 20,000 x 128 (README, "Bulk deletes"): a top-40 scan finds 29 rows after 25% deleted,
# a top-10 comes back short past 75%; the rebuild costs in proportion to the rows left.
REBUILD_LOCK_TIMEOUT = "10s"  # how long the rebuild waits for its lock before giving up (55P03)


async def delete(
    table: VectorTable,
    requirements: AttributeRequirement | None,
    everything: bool,
    keys: Iterable[str | int] | None,
) -> int:
    """`PostgresVectorIndex.delete` on `table`: how many rows it deleted."""
    if keys is not None:
        if requirements is not None or everything:
            raise ValueError("pass one of keys, requirements or everything=True to delete")
        with table.required():
            return await delete_keys(table.postgres, table.name, keys)
    if requirements is None and everything is not True:
        raise ValueError("delete needs requirements, or everything=True to delete every row")
    if requirements is not None and everything:
        raise ValueError("pass either requirements or everything=True to delete, not both")
    where = await table.where(requirements)
    postgres = table.postgres
    statement = compose(
        query("vectors_delete"),
        slots={"table": table.name},
        fragments={"requirements": custom_plans(where, requirements is not None)},
    )
    with table.required():
        status: str = await postgres.run_statement(statement)
    deleted = int(status.rsplit(" ", 1)[-1])
    await after_delete(postgres, await table.facts(), table.name, deleted)
    return deleted


async def is_bulk(postgres: Postgres, name: str, deleted: int) -> bool:
    """Whether `deleted` rows were more than `BULK_DELETE_SHARE` of the table before the delete:
    the rows left are counted, up to the number that would make the share smaller."""
    enough = math.ceil(deleted * (1 - BULK_DELETE_SHARE) / BULK_DELETE_SHARE)
    left: int = await postgres.run_statement(
        compose(query("vectors_table_rows"), slots={"table": name}, enough=enough)
    )
    return left < enough


async def after_delete(postgres: Postgres, facts: TableFacts, name: str, deleted: int) -> None:
    """Rebuilds the table's nearest-neighbour index and vacuums the table when the delete was a
    bulk one (see the module). A failure (no privilege: the owner or `MAINTAIN` may rebuild; a
    lock not granted in time) is logged: the rows are deleted either way."""
    embedding_index = index_name(name, "embedding_idx")
    if not facts.methods or embedding_index not in facts.indexes:
        return
    if not await is_bulk(postgres, name, deleted):
        return
    if postgres.in_transaction:
        logger.warning(
            "vector table %s: %d rows deleted inside a transaction; after it commits, run "
            "REINDEX INDEX CONCURRENTLY %s; VACUUM (ANALYZE) %s; (searches come back short and "
            "fall back to exact scans until then)",
            name, deleted, embedding_index, name,
        )  # fmt: skip
        return
    async with session_for_settings(postgres) as settings:
        if settings:
            await postgres.run("vectors_ddl_settings", lock_timeout=REBUILD_LOCK_TIMEOUT, local=False)
        try:
            slot = {"embedding_index": embedding_index}
            reindex = compose(query("vectors_reindex_concurrently"), slots=slot)
            await postgres.run_statement(reindex)
            await postgres.run_statement(compose(query("vectors_vacuum"), slots={"table": name}))
        except DatabaseError as error:
            logger.warning(
                "vector table %s: index not rebuilt after deleting %d rows (%s); searches may come "
                "back short and fall back to exact scans until its owner runs REINDEX INDEX "
                "CONCURRENTLY %s and VACUUM (ANALYZE) %s",
                name, deleted, error, embedding_index, name,
            )  # fmt: skip
        finally:
            if settings:
                await postgres.run("vectors_ddl_reset")
