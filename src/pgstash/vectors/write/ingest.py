"""`index`: values embedded, checked and written by one binary COPY (`copy.py`), keyed rows
replaced (`keys.py`), a batch large next to the table loaded as a bulk load (`bulk.py`), and an
IVFFlat index `create_table` noted built once the table holds enough rows (`tables.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from pgstash.connection import Postgres
from pgstash.sql.catalogue import query as named_query
from pgstash.sql.composer import compose
from pgstash.vectors import inputs, payloads
from pgstash.vectors.table import VectorTable
from pgstash.vectors.write import bulk, keys, tables
from pgstash.vectors.write.copy import copy_stream, microseconds_since_2000

__all__ = ["ingest"]


async def ingest(
    table: VectorTable,
    values: Iterable[Any],
    attribute: Any,
    meta: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
    key: Any,
) -> int:
    """`PostgresVectorIndex.index` on `table`: every check before anything is written, then the
    rows written; the number of rows written."""
    model, name, converter = table.model, table.name, table.converter
    items = list(values)
    if not items:
        return 0
    for item in items:
        if not isinstance(item, model):
            raise TypeError(f"index({model.__name__}) got a {type(item).__name__} value")
    metas = payloads.metas(meta, len(items))
    select = inputs.selector(model, attribute)
    payloads.check_round_trip(converter, model, items[0], name)
    stored: Sequence[Any] = items
    unstructure: Callable[[Any], Any] = converter.unstructure
    ids = None
    if key is not None:  # payloads first: keys may be read from them (then encoded as they are)
        read = keys.key_reader(key, table.key_of())
        stored = [unstructure(item) for item in items]
        ids = keys.row_ids(name, [read(item, stored[at]) for at, item in enumerate(items)])
        unstructure = _as_is
    postgres = table.postgres
    facts = await table.facts(fresh=True)
    vectors = await inputs.vectors_of(
        [select(item) for item in items], facts.dimension, name, table.embedding, table.image_embedding
    )
    rows = copy_stream(
        inputs.as_stored(vectors, facts.precision, "vector"),  # float16 for a halfvec table
        microseconds_since_2000(facts.now),
        metas,
        payloads.payload_fields(stored, unstructure),
        ids,
    )
    with table.required():
        write = _writer(postgres, name, rows, ids)
        pending = facts.ivfflat_pending and not facts.methods
        if facts.methods or pending:  # a large batch: ANN index built from the data
            if await bulk.ingest(postgres, name, write, len(items), vectors.shape[1], pending):
                return len(items)
        else:
            await write()
        await bulk.repair(postgres, name, facts)  # an index a killed bulk load left dropped
    await tables.build_pending_ivfflat(postgres, facts, name)
    return len(items)


def _as_is(payload: Any) -> Any:
    return payload


def _writer(
    postgres: Postgres, name: str, rows: AsyncIterator[bytes], ids: Any
) -> Callable[[], Awaitable[int]]:
    """The batch's write: its binary COPY, or with keys the keyed lock, DELETE and COPY
    (`keys.replace_rows`); returns the rows copied."""
    if ids is not None:
        return lambda: keys.replace_rows(postgres, name, ids, rows)
    copy = attrs.evolve(compose(named_query("vectors_copy"), slots={"table": name}), kind="copy")
    return lambda: postgres.copy(copy, rows)  # aiosql reads COPY as "!"
