"""`PostgresVectorIndex.build_index` and `PostgresVectorIndex.loading` (issue 13): the explicit
concurrent rebuild of a table's ANN index, and one transaction for many `index` calls that drops
the index first and builds it once at its end when the load is large next to the table
(`bulk.py`, `builds.py`). A base class of `PostgresVectorIndex`, which supplies the pool and the
missing-table error."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from pgstash.connection import Postgres
from pgstash.errors import ConfigurationError, SchemaMissingError
from pgstash.vectors import builds, bulk, inputs, planning
from pgstash.vectors.inputs import table_name

__all__ = ["IndexBuilds"]

_METHODS = ("hnsw", "ivfflat", None)


class IndexBuilds:
    """The index-building methods of `PostgresVectorIndex`."""

    __slots__ = ()
    converter: Any  # the index's cattrs converter (PostgresVectorIndex.converter)

    def _postgres(self) -> Postgres:
        raise NotImplementedError

    @staticmethod
    def _missing(name: str, model: type) -> SchemaMissingError:
        raise NotImplementedError

    def _requires_table(self, name: str, model: type) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    async def build_index(
        self,
        model: type,
        *,
        index: str | None = None,
        table: str | None = None,
        progress: Callable[[builds.BuildProgress], object] | None = None,
    ) -> float:
        """Builds the table's ANN index on `embedding` again from its rows, without blocking reads
        or writes (`CONCURRENTLY`): `index` "hnsw" or "ivfflat" (default: the method it has, else
        the one `create_table` noted, else HNSW); IVFFlat gets lists from today's row count.
        `progress` receives `pg_stat_progress_create_index` samples while it runs. Returns the
        seconds it took."""
        inputs.check_model(model, self.converter)
        name = table_name(model, table)
        if index not in _METHODS:
            raise ValueError(f'index must be "hnsw", "ivfflat" or None, got {index!r}')
        postgres = self._postgres()
        if postgres.in_transaction:
            raise ConfigurationError("build_index builds CONCURRENTLY, which cannot run inside a transaction")
        facts = await planning.table_facts(postgres, name, lambda: self._missing(name, model), fresh=True)
        if facts.dimension is None:
            raise ConfigurationError(f'table "{name}" has no fixed dimension: pgvector cannot index it')
        method = index or next(iter(sorted(facts.methods)), "ivfflat" if facts.ivfflat_pending else "hnsw")
        with self._requires_table(name, model):
            seconds = await builds.build_index(
                postgres, name, method, facts.dimension, progress, invalid=facts.invalid_indexes
            )
            if bulk.dropped_of(facts.comment):  # a killed bulk load's record: built now
                await bulk.repair(postgres, name, await planning.read_facts(postgres, name))
        planning.tables(postgres).pop(name, None)
        return seconds

    @contextlib.asynccontextmanager
    async def loading(self, model: type, *, rows: int, table: str | None = None) -> AsyncIterator[None]:
        """One transaction for the `index` calls inside it (a load fed in batches): all their
        rows are written, or none. When `rows` (how many the load expects) is large next to the
        table, by `index`'s own rule, the table's HNSW/IVFFlat index is dropped first, in a short
        transaction of its own, the batches are copied into the table without it, and it is built
        from the data once, at the end of the transaction (a failed load puts it back). Meanwhile
        searches see the table as it was, searched exactly. Otherwise the rows go into the
        existing index. Inside a caller's transaction: a savepoint, no index dropped."""
        inputs.check_model(model, self.converter)
        name = table_name(model, table)
        inputs.positive(rows, "rows", 1 << 62)
        postgres = self._postgres()
        facts = await planning.table_facts(postgres, name, lambda: self._missing(name, model), fresh=True)
        pending = facts.ivfflat_pending and not facts.methods
        load = None
        if (facts.methods or pending) and facts.dimension is not None:
            with self._requires_table(name, model):
                load = await bulk.plan(postgres, name, rows, facts.dimension, pending)
        try:
            if load is None or not await bulk.drop_indexes(postgres, load):
                async with postgres.transaction():
                    yield
            else:
                async with bulk.rebuilt(postgres, load):
                    yield
        finally:
            planning.tables(postgres).pop(name, None)
