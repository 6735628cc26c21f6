"""`index`: values embedded, checked and written by one binary COPY (`copy.py`), keyed rows
replaced (`keys.py`), a batch large next to the table loaded as a bulk load (`bulk.py`), and an
IVFFlat index `create_table` noted built once the table holds enough rows (`tables.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from pgstash.connection import Postgres
from pgstash.sql import names
from pgstash.sql.composer import compose
from pgstash.vectors import documents as chunk_sets
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
    document: Any = None,
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
    named_sets: list[str] | None = None
    if key is not None and document is not None:
        raise ValueError(
            "index takes key= (one row per key) or document= (one chunk set per document), not both"
        )
    if document is not None:  # documents.py: each row's document key, read as a key is
        read_set = keys.key_reader(document, table.key_of())
        stored = [unstructure(item) for item in items]
        named_sets = chunk_sets.document_texts([read_set(item, stored[at]) for at, item in enumerate(items)])
        unstructure = _as_is
    if key is not None:  # payloads first: keys may be read from them (then encoded as they are)
        read = keys.key_reader(key, table.key_of())
        stored = [unstructure(item) for item in items]
        ids = keys.row_ids(name, [read(item, stored[at]) for at, item in enumerate(items)])
        unstructure = _as_is
    postgres = table.postgres
    facts = await table.facts(fresh=True)
    if named_sets is not None:
        chunk_sets.check_table(facts, name)
    vectors = await inputs.vectors_of(
        [select(item) for item in items], facts.dimension, name, table.embedding, table.image_embedding
    )
    rows = copy_stream(
        inputs.as_stored(vectors, facts.precision, "vector"),  # float16 for a halfvec table
        microseconds_since_2000(facts.now),
        metas,
        payloads.payload_fields(stored, unstructure),
        ids,
        None if named_sets is None else chunk_sets.framed(named_sets),
    )
    with table.required():
        write = _writer(postgres, name, rows, ids, named_sets)
        pending = facts.ivfflat_pending and not facts.methods
        if facts.methods or pending:  # a large batch: ANN index built from the data
            if await bulk.ingest(postgres, name, write, len(items), vectors.shape[1], pending):
                if pending:  # the load built the IVFFlat index the remembered facts lack
                    table.forget()
                return len(items)
        else:
            await write()
        await bulk.repair(postgres, name, facts)  # an index a killed bulk load left dropped
    await tables.build_pending_ivfflat(postgres, facts, name)
    return len(items)


def _as_is(payload: Any) -> Any:
    return payload


def _writer(
    postgres: Postgres, name: str, rows: AsyncIterator[bytes], ids: Any, sets: list[str] | None
) -> Callable[[], Awaitable[int]]:
    """The batch's write: its binary COPY, or with keys the keyed lock, DELETE and COPY
    (`keys.replace_rows`), or with documents their chunk sets replaced
    (`documents.replace_documents`); returns the rows copied."""
    if sets is not None:
        named = sorted(set(sets))
        return lambda: chunk_sets.replace_documents(postgres, name, named, rows)
    if ids is not None:
        return lambda: keys.replace_rows(postgres, name, ids, rows)
    copy = attrs.evolve(compose(names.vectors_copy, slots={"table": name}), kind="copy")
    return lambda: postgres.copy(copy, rows)  # aiosql reads COPY as "!"
