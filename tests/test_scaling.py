"""docs/scaling.md's Citus layout holds for the tables `schema/` creates: every table has a
primary key, and every primary or unique key (and every foreign key) of a distributed table
includes its distribution column, which is what Citus requires of them."""

from __future__ import annotations

import attrs
import pytest

from pgstash import Postgres, PostgresVectorIndex

pytestmark = pytest.mark.scale

# table -> its distribution column under docs/scaling.md; None: a reference or local table
LAYOUT: dict[str, str | None] = {
    "memories": "identifier",
    "memories_elements": "identifier",
    "memories_variables": "identifier",
    "configurations": None,
    "instructions": None,
    "instructions_revisions": None,
    "instructions_labels": None,
    "instructions_label_moves": None,
    "pgstash_migrations": None,
    "scaling_chunk": "id",
}

KEYS = """
SELECT c.relname AS table_name, k.conname AS name, k.contype::TEXT AS kind,
       array_agg(a.attname::TEXT ORDER BY a.attname) AS columns
FROM pg_constraint AS k
JOIN pg_class AS c ON c.oid = k.conrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum = ANY(k.conkey)
WHERE n.nspname = current_schema() AND k.contype IN ('p', 'u', 'f')
GROUP BY c.relname, k.conname, k.contype
"""


@attrs.frozen
class ScalingChunk:
    text: str


async def test_every_key_fits_the_citus_layout(postgres: Postgres) -> None:
    await PostgresVectorIndex().create_table(ScalingChunk, dimension=3)
    tables = {
        row["relname"]
        for row in await postgres.fetch(
            "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
            "AND relkind = 'r'"
        )
    }
    assert tables == set(LAYOUT), "a new table needs a line in docs/scaling.md and in LAYOUT"
    keys = await postgres.fetch(KEYS)
    with_primary_key = {row["table_name"] for row in keys if row["kind"] == "p"}
    assert with_primary_key == set(LAYOUT), f"tables without a primary key: {set(LAYOUT) - with_primary_key}"
    for row in keys:
        column = LAYOUT[row["table_name"]]
        if column is not None:
            assert column in row["columns"], (
                f"{row['table_name']}.{row['name']} ({', '.join(row['columns'])}) does not include "
                f"the distribution column {column}: Citus would refuse it"
            )
