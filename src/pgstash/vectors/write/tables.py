"""`create_table`'s DDL: the template steps (schema/templates/vector_table.sql) the catalog shows
missing, and nothing when the table already has everything (no lock taken).

A new or empty table gets its steps in one transaction, under an advisory lock and a
`lock_timeout`; a table that already holds rows gets its indexes built `CONCURRENTLY`, outside a
transaction, so ingest and delete go on meanwhile. IVFFlat trains its lists on the rows present
when it is built, so on a table with fewer than `IVFFLAT_MIN_ROWS` rows it is noted in the table's
comment and built by the first `index` that brings the table to that many rows (or by
`create_table` again). The text column (`text=`) is a stored generated column: added to a table
holding rows, `ALTER TABLE ... ADD COLUMN` rewrites the table and every index, reads and writes
waiting meanwhile (no concurrent form exists); its GIN index is then built `CONCURRENTLY`.
The precision (`PRECISIONS`) picks the embedding column's type and its indexes' operator class:
`vector` / `vector_cosine_ops` (float32) or `halfvec` / `halfvec_cosine_ops` (float16).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any

import attrs

from pgstash.connection import Postgres
from pgstash.errors import ConfigurationError, DatabaseError, DimensionMismatchError
from pgstash.sql.catalogue import Query, load_catalogue, query
from pgstash.sql.composer import compose
from pgstash.sql.resources import resource_dir
from pgstash.sql.templates import SlotValue
from pgstash.validators import positive_int
from pgstash.vectors.columns import IndexedField, check_existing, existing_fields, indexed_fields
from pgstash.vectors.facts import (
    PRECISIONS,
    Precision,
    TableFacts,
    check_precision,
    index_name,
    read_facts,
    tables,
)
from pgstash.vectors.inputs import MAX_DIMENSION
from pgstash.vectors.quantize import check_quantize
from pgstash.vectors.sessions import session_for_settings
from pgstash.vectors.table import VectorTable
from pgstash.vectors.text_column import TextColumn, check_language, text_column
from pgstash.vectors.write.bulk import DROPPED_COMMENT, dropped_of, repair

__all__ = ["DDL_LOCK_TIMEOUT", "IVFFLAT_MIN_ROWS", "build_pending_ivfflat", "create", "create_table"]

logger = logging.getLogger("pgstash")

DDL_LOCK_TIMEOUT = "10s"  # how long create_table's DDL waits for a table lock before failing (55P03)
IVFFLAT_LISTS = 100  # the seed's lists (vector_table_ivfflat_index)
IVFFLAT_MIN_ROWS = 50 * IVFFLAT_LISTS  # rows to train the lists on: 50 per list
INDEX_METHODS = ("hnsw", "ivfflat", None)  # create_table(index=...)


@functools.cache
def _templates() -> Mapping[str, Query]:
    return load_catalogue(resource_dir("schema") / "templates", name_statements=True)


@attrs.frozen(slots=True)
class _Names:
    """The identifiers a table's DDL fills its slots with."""

    table: str
    dimension: int
    text: TextColumn | None = None
    precision: Precision = PRECISIONS["float32"]
    fields: tuple[IndexedField, ...] = ()
    quantize: str | None = None  # "binary": HNSW over the signs instead of the floats (quantize.py)
    documents: bool = False  # the document column and its index (documents.py)

    def slots(self, **more: SlotValue) -> dict[str, SlotValue]:
        return {
            **(self.text.slots(self.table) if self.text is not None else {}),
            "table": self.table,
            "dimension": self.dimension,
            "vector_type": self.precision.vector_type,
            "opclass": self.precision.opclass,
            "primary_key": index_name(self.table, "pkey"),
            "embedding_index": index_name(self.table, "embedding_idx"),
            "payload_index": index_name(self.table, "payload_idx"),
            "created_index": index_name(self.table, "created_idx"),
            "document_index": index_name(self.table, "document_idx"),
            "binary_index": index_name(self.table, "binary_idx"),
            **more,
        }


Step = tuple[str, "str | IndexedField"]  # (template, invalid index to drop, "" or the field)


def _missing_steps(facts: TableFacts, names: _Names, index: str | None, rows: int) -> list[Step]:
    """(template, invalid index to drop, "" or the indexed field) for every piece the catalog
    shows missing."""
    slots = names.slots()
    steps: list[Step] = [
        ("vector_table_drop_invalid_index", invalid) for invalid in sorted(facts.invalid_indexes)
    ]
    if facts.storage not in ("m", "p"):
        steps.append(("vector_table_storage", ""))
    if not facts.primary_key:
        if slots["primary_key"] not in facts.indexes:
            steps.append(("vector_table_primary_key_index", ""))
        steps.append(("vector_table_primary_key", ""))
    if names.text is not None:
        if not names.text.check_existing(facts, names.table):
            steps.append(("vector_table_text_column", ""))  # on a table holding rows: a rewrite
        if slots["text_index"] not in facts.indexes:
            steps.append(("vector_table_text_index", ""))
    # no second ANN index on embedding, and none while a bulk load's drop is recorded (the load,
    # or the repair before create_table's steps, builds it)
    if (
        index is not None
        and slots["embedding_index"] not in facts.indexes
        and not facts.methods
        and not (facts.comment or "").startswith(DROPPED_COMMENT)
    ):
        if index == "hnsw":
            steps.append(("vector_table_hnsw_index", ""))
        elif rows >= IVFFLAT_MIN_ROWS:
            steps.append(("vector_table_ivfflat_index", ""))
        elif not facts.ivfflat_pending:
            steps.append(("vector_table_comment_ivfflat", ""))
    for step, slot in (
        ("vector_table_payload_index", "payload_index"),
        ("vector_table_created_index", "created_index"),
    ):
        if slots[slot] not in facts.indexes:
            steps.append((step, ""))
    if names.quantize == "binary" and slots["binary_index"] not in facts.indexes:
        steps.append(("vector_table_binary_index", ""))
    if names.documents and slots["document_index"] not in facts.indexes:  # documents.py
        steps += [("vector_table_document_column", ""), ("vector_table_document_index", "")]
    present = existing_fields(facts)
    for field in names.fields:
        if field.path not in present:
            steps.append((field.kind.template, field))  # on a table holding rows: a rewrite
        if field.slots(names.table)["field_index"] not in facts.indexes:
            steps.append(("vector_table_field_index", field))
    return steps


async def _ddl(
    postgres: Postgres, names: _Names, step: str, invalid: str | IndexedField, concurrently: bool
) -> None:
    name = f"{step}_concurrently" if concurrently and f"{step}_concurrently" in _templates() else step
    named = _templates()[name]
    if isinstance(invalid, IndexedField):
        slots = names.slots(**invalid.slots(names.table))
    else:
        slots = names.slots(invalid_index=invalid)
    await postgres.run_statement(compose(named, slots={point: slots[point] for point in named.splice_points}))


async def _rows(postgres: Postgres, name: str, enough: int) -> int:
    """The table's rows, counted up to `enough`."""
    count: int = await postgres.run_statement(
        compose(query("vectors_table_rows"), slots={"table": name}, enough=enough)
    )
    return count


def _check_dimension(facts: TableFacts, name: str, dimension: int, precision: Precision) -> None:
    if facts.present and facts.storage is None:
        raise ConfigurationError(
            f'table "{name}" exists and has no embedding column, so it is not a vector table: '
            "pass table= to name another"
        )
    if facts.present and facts.dimension not in (dimension, None):
        raise DimensionMismatchError(facts.dimension, dimension, f'table "{name}" already exists')
    if facts.present and facts.precision not in (precision.name, None):
        raise ConfigurationError(
            f'table "{name}" already exists with precision="{facts.precision}" '
            f"({PRECISIONS[facts.precision].vector_type}), not {precision.name!r}: pass "
            f'precision="{facts.precision}", or table= to name another'
        )


async def create(
    table: VectorTable,
    dimension: int,
    index: str | None,
    distance: str,
    text: Any,
    language: str,
    precision: str,
    indexed: Any = None,
    quantize: str | None = None,
    documents: bool = False,
) -> None:
    """`PostgresVectorIndex.create_table` on `table`: the arguments checked, then `create_table`."""
    positive_int(dimension, "dimension", MAX_DIMENSION, spans=True)
    if index not in INDEX_METHODS:
        raise ValueError(f'index must be "hnsw", "ivfflat" or None, got {index!r}')
    quantized = check_quantize(quantize, dimension, index)
    stored = check_precision(precision, dimension, None if quantized else index)
    if distance != "cosine":
        raise ValueError(
            f"distance {distance!r} is not supported: pgstash scores and ranks by cosine "
            "similarity, which only a cosine index serves; use distance='cosine'"
        )
    try:
        column = None if text is None else text_column(text, language, table.key_of())
        fields = indexed_fields(indexed, table.model, table.key_of())
        ann = None if quantized else index  # a binary index instead of the float one
        await create_table(
            table.postgres, table.name, dimension, ann, column, stored, fields, quantized, documents
        )
    except DatabaseError as error:
        if error.sqlstate == "42704" and "vector" in str(error):
            raise ConfigurationError(
                "this database has no pgvector extension: run `pgstash migrate` "
                "(or `await pgstash.migrate(postgres)`), which installs it"
            ) from error
        raise


async def create_table(
    postgres: Postgres,
    name: str,
    dimension: int,
    index: str | None,
    text: TextColumn | None = None,
    precision: Precision = PRECISIONS["float32"],
    fields: tuple[IndexedField, ...] = (),
    quantize: str | None = None,
    documents: bool = False,
) -> None:
    """Makes the table and what `index` and `text` ask for, each missing piece only (see the
    module); the text column's configuration must be one the server has. An existing table of
    another precision raises `ConfigurationError`."""
    names = _Names(name, dimension, text, precision, fields, quantize, documents)
    if text is not None:
        check_language(text.language, await postgres.run("vectors_text_languages"))
    facts = await read_facts(postgres, name)
    _check_dimension(facts, name, dimension, precision)
    check_existing(fields, facts, name)
    if dropped_of(facts.comment) and await repair(postgres, name, facts):
        facts = await read_facts(postgres, name)  # first the index a killed bulk load dropped
    if facts.present:
        rows = await _rows(postgres, name, IVFFLAT_MIN_ROWS) if _missing_steps(facts, names, index, 0) else 0
        steps = _missing_steps(facts, names, index, rows)
        if not steps:
            return
        if rows and not postgres.in_transaction:
            await _concurrently(postgres, names, steps)
            tables(postgres).pop(name, None)
            return
    async with postgres.transaction():
        await postgres.run("vectors_table_lock", table_name=name)
        await postgres.run("vectors_ddl_settings", lock_timeout=DDL_LOCK_TIMEOUT, local=True)
        if not facts.present:
            await _ddl(postgres, names, "vector_table_create", "", False)
        facts = await read_facts(postgres, name)  # under the lock: what another caller made counts
        _check_dimension(facts, name, dimension, precision)
        rows = await _rows(postgres, name, IVFFLAT_MIN_ROWS) if index == "ivfflat" else 0
        for step, invalid in _missing_steps(facts, names, index, rows):
            await _ddl(postgres, names, step, invalid, False)
    tables(postgres).pop(name, None)


async def _concurrently(postgres: Postgres, names: _Names, steps: list[Step]) -> None:
    """The steps on a table holding rows: indexes built CONCURRENTLY (outside a transaction, on
    one pinned connection), each lock wait bounded by `lock_timeout` (behind a transaction pooler
    without a session to pin, `postgres.lifecycle.pooling.sessions` False: the server's lock_timeout)."""
    async with session_for_settings(postgres) as settings:
        if settings:
            await postgres.run("vectors_ddl_settings", lock_timeout=DDL_LOCK_TIMEOUT, local=False)
        try:
            for step, invalid in steps:
                await _ddl(postgres, names, step, invalid, True)
        finally:
            if settings:
                await postgres.run("vectors_ddl_reset")


async def build_pending_ivfflat(postgres: Postgres, facts: TableFacts, name: str) -> None:
    """After an `index`: builds the IVFFlat index `create_table` noted, once the table holds
    `IVFFLAT_MIN_ROWS` rows. A role that may not build it (not the table's owner) or a lock it
    cannot get leaves the table searchable exactly; the owner's next `create_table` builds it."""
    if not facts.ivfflat_pending or "ivfflat" in facts.methods or facts.dimension is None:
        return
    if await _rows(postgres, name, IVFFLAT_MIN_ROWS) < IVFFLAT_MIN_ROWS:
        return
    names = _Names(name, facts.dimension, precision=PRECISIONS[facts.precision or "float32"])
    try:
        if postgres.in_transaction:
            async with postgres.transaction():  # a savepoint: a failure keeps the caller's rows
                await postgres.run("vectors_ddl_settings", lock_timeout=DDL_LOCK_TIMEOUT, local=True)
                await _ddl(postgres, names, "vector_table_ivfflat_index", "", False)
        else:
            await _concurrently(postgres, names, [("vector_table_ivfflat_index", "")])
    except DatabaseError as error:
        logger.warning("vector table %s: IVFFlat index not built (%s); searches stay exact", name, error)
    tables(postgres).pop(name, None)
