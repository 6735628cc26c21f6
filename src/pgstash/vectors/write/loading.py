"""`build_index` and `loading` (issue 13): the explicit concurrent rebuild of a table's ANN
index, and one transaction for many `index` calls that drops the index first and builds it once
at its end when the load is large next to the table (`bulk.py`, `builds.py`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from pgstash.errors import ConfigurationError
from pgstash.validators import positive_int
from pgstash.vectors.facts import read_facts
from pgstash.vectors.table import VectorTable
from pgstash.vectors.write import builds, bulk

__all__ = ["METHODS", "build_index", "loading"]

METHODS = ("hnsw", "ivfflat", None)


async def build_index(
    table: VectorTable, index: str | None, progress: Callable[[builds.BuildProgress], object] | None
) -> float:
    """`PostgresVectorIndex.build_index` on `table`: the seconds the build took."""
    if index not in METHODS:
        raise ValueError(f'index must be "hnsw", "ivfflat" or None, got {index!r}')
    postgres, name = table.postgres, table.name
    if postgres.in_transaction:
        raise ConfigurationError("build_index builds CONCURRENTLY, which cannot run inside a transaction")
    facts = await table.facts(fresh=True)
    if facts.dimension is None:
        raise ConfigurationError(f'table "{name}" has no fixed dimension: pgvector cannot index it')
    method = index or next(iter(sorted(facts.methods)), "ivfflat" if facts.ivfflat_pending else "hnsw")
    with table.required():
        seconds = await builds.build_index(
            postgres, name, method, facts.dimension, progress, invalid=facts.invalid_indexes
        )
        if bulk.dropped_of(facts.comment):  # a killed bulk load's record: built now
            await bulk.repair(postgres, name, await read_facts(postgres, name))
    table.forget()
    return seconds


@contextlib.asynccontextmanager
async def loading(table: VectorTable, rows: int) -> AsyncIterator[None]:
    """`PostgresVectorIndex.loading` on `table`."""
    positive_int(rows, "rows", 1 << 62, spans=True)
    postgres, name = table.postgres, table.name
    facts = await table.facts(fresh=True)
    pending = facts.ivfflat_pending and not facts.methods
    load = None
    if (facts.methods or pending) and facts.dimension is not None:
        with table.required():
            load = await bulk.plan(postgres, name, rows, facts.dimension, pending)
    try:
        if load is None or not await bulk.drop_indexes(postgres, load):
            async with postgres.transaction():
                yield
        else:
            async with bulk.rebuilt(postgres, load):
                yield
    finally:
        table.forget()
