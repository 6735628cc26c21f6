"""PREPAREs named queries against a real database inside a rolled-back transaction."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping

from pgstash import Postgres
from pgstash.queries import Query

# A binary COPY stream of no rows: its header and trailer.
EMPTY_BINARY_COPY = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0) + struct.pack(">h", -1)

# Slot values for template queries; each names a table the preparation creates first.
TEMPLATE_SLOTS: dict[str, Mapping[str, str]] = {}

# Statements run (inside the rolled-back transaction) before preparing template queries.
TEMPLATE_SETUP: list[str] = []


async def prepare_all(postgres: Postgres, queries: Iterable[Query]) -> int:
    """PREPAREs each query (templates rendered with `TEMPLATE_SLOTS`) and rolls everything back.
    A query naming a missing table or column raises `DatabaseError` with its name."""
    count = 0
    async with postgres.connection() as connection:
        transaction = connection.transaction()
        await transaction.start()
        try:
            for statement in TEMPLATE_SETUP:
                await connection.execute(statement)
            for named in queries:
                sql = postgres.render(named, TEMPLATE_SLOTS[named.name]) if named.is_template else named.sql
                with postgres.errors(named.name):
                    if sql.lstrip().upper().startswith("COPY"):  # COPY cannot be prepared: run it empty
                        await connection._copy_in(sql, memoryview(EMPTY_BINARY_COPY), None)  # type: ignore[attr-defined]
                    else:
                        await connection.prepare(sql)
                count += 1
        finally:
            await transaction.rollback()
    return count


# The vector index (queries/vectors.sql, queries/filters.sql): every template names one table of the
# seed's shape.
TEMPLATE_SETUP.append(
    "CREATE TABLE vector_sample (id UUID NOT NULL DEFAULT gen_random_uuid(), embedding VECTOR(3) NOT NULL, "
    "payload JSONB NOT NULL, meta JSONB NOT NULL, created TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP)"
)
TEMPLATE_SLOTS.update(
    {
        name: {"table": "vector_sample"}
        for name in (
            "vectors_search",
            "vectors_newest",
            "vectors_delete",
            "vectors_copy",
            "filter_everything",
            "filter_equal",
            "filter_not_equal",
            "filter_greater",
            "filter_greater_or_equal",
            "filter_less",
            "filter_less_or_equal",
            "filter_contained_in",
            "filter_contains",
            "filter_contains_any",
            "filter_text_match",
            "filter_exists",
            "filter_and",
            "filter_or",
            "filter_not",
        )
    }
)
