"""PREPAREs named queries against a real database inside a rolled-back transaction.

Statements with splice points are composed first (`statements_of`): identifier slots from
`TEMPLATE_SLOTS`, fragment points with `filter_everything`. Every fragment is composed into every
statement that has a `{requirements}` point, its own points filled the same way, so each fragment
is prepared inside each statement that receives it. Values are NULL: PREPARE needs only types,
and every parameter is cast in the SQL text.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping

from pgstash import Postgres
from pgstash.sql.catalogue import Query, catalogue
from pgstash.sql.composer import Fragment, compose, fragment
from pgstash.sql.statements import Statement
from pgstash.sql.templates import Constant

# A binary COPY stream of no rows: its header and trailer.
EMPTY_BINARY_COPY = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0) + struct.pack(">h", -1)

# Slot values for template statements; each names a table the preparation creates first.
TEMPLATE_SLOTS: dict[str, Mapping[str, str | int | Constant]] = {}

# Statements run (inside the rolled-back transaction) before preparing template statements.
TEMPLATE_SETUP: list[str] = []

# More slot values for some template statements, each prepared too: the same SQL on a table of
# another shape (a float16 vector table: PostgreSQL infers the query vector's type from the column).
TEMPLATE_VARIANTS: dict[str, list[Mapping[str, str | int]]] = {}


# Slot values for fragments: an indexed payload field's column (columns.py), which the sample
# vector tables have.
FRAGMENT_SLOTS: dict[str, str] = {"field_column": "field_year", "field_type": "numeric"}


def sample_fragment(named: Query) -> Fragment:
    """The fragment with NULL values, `FRAGMENT_SLOTS` at its slots and `filter_everything` at
    each of its other splice points."""
    everything = fragment("filter_everything")
    slots = {point: FRAGMENT_SLOTS[point] for point in named.splice_points if point in FRAGMENT_SLOTS}
    return fragment(
        named,
        slots=slots,
        fragments={point: everything for point in named.splice_points if point not in slots},
        **dict.fromkeys(named.parameters),
    )


def fragment_hosts() -> list[Query]:
    """The statements that receive fragments: those with a `{requirements}` splice point."""
    return sorted(
        (
            host
            for host in catalogue().values()
            if host.kind != "fragment" and "requirements" in host.splice_points
        ),
        key=lambda host: host.name,
    )


def composed(named: Query, fragments: Mapping[str, Fragment] | None = None) -> Statement:
    """The template statement composed with `TEMPLATE_SLOTS`, `fragments` at their points (else
    `filter_everything`) and NULL values."""
    slots = TEMPLATE_SLOTS.get(named.name, {})
    given = fragments or {}
    everything = fragment("filter_everything")
    points = {point: given.get(point, everything) for point in named.splice_points if point not in slots}
    return compose(named, slots=slots, fragments=points, **dict.fromkeys(named.parameters))


def statements_of(named: Query) -> list[Statement]:
    """What PREPARE checks for one query: the statement itself (composed if it has splice
    points), or for a fragment, each statement with a `{requirements}` point holding it."""
    if named.kind == "fragment":
        spliced = sample_fragment(named)
        return [composed(host, {"requirements": spliced}) for host in fragment_hosts()]
    if named.is_template:
        variants = [
            compose(
                named,
                slots=slots,
                fragments={
                    point: fragment("filter_everything")
                    for point in named.splice_points
                    if point not in slots
                },
                **dict.fromkeys(named.parameters),
            )
            for slots in TEMPLATE_VARIANTS.get(named.name, [])
        ]
        return [composed(named), *variants]
    return [named.bind(**dict.fromkeys(named.parameters))]


async def prepare_all(postgres: Postgres, queries: Iterable[Query]) -> int:
    """PREPAREs each query (see `statements_of`) and rolls everything back; returns how many
    statements it prepared. A query naming a missing table or column raises `DatabaseError` with
    its name."""
    count = 0
    async with postgres.connection() as connection:
        transaction = connection.transaction()
        await transaction.start()
        try:
            for statement in TEMPLATE_SETUP:
                await connection.execute(statement)
            for named in queries:
                for statement in statements_of(named):
                    with postgres.errors(named.name):
                        if statement.sql.lstrip().upper().startswith("COPY"):  # not preparable: run it empty
                            await connection._copy_in(  # type: ignore[attr-defined]
                                statement.sql, memoryview(EMPTY_BINARY_COPY), None
                            )
                        else:
                            await connection.prepare(statement.sql)
                    count += 1
        finally:
            await transaction.rollback()
    return count


# The vector index (queries/vectors.sql): every template names one table of the seed's shape.
TEMPLATE_SETUP.append(
    "CREATE TABLE vector_sample (id UUID NOT NULL DEFAULT gen_random_uuid(), embedding VECTOR(3) NOT NULL, "
    "payload JSONB NOT NULL, meta JSONB NOT NULL, created TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP)"
)
TEMPLATE_SLOTS.update(
    {
        name: {"table": "vector_sample"}
        for name in (
            "vectors_search",
            "vectors_search_exact",
            "vectors_search_relaxed",
            "vectors_newest",
            "vectors_delete",
            "vectors_table_rows",
            "vectors_copy",
            "vectors_text_search",
            "vectors_hybrid",
            "vectors_delete_ids",
            "vectors_copy_keyed",
            "vectors_rows_by_id",
            "vectors_ids_by_payload",
            "vectors_ingest_meta",
        )
    }
)

# precision="float16": the same statements on a halfvec table, its query vector's type inferred.
TEMPLATE_SETUP.append(
    "CREATE TABLE vector_sample_half (id UUID NOT NULL DEFAULT gen_random_uuid(), "
    "embedding HALFVEC(3) NOT NULL, payload JSONB NOT NULL, meta JSONB NOT NULL, "
    "created TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP)"
)
TEMPLATE_VARIANTS.update(
    {
        name: [{"table": "vector_sample_half"}]
        for name in ("vectors_search", "vectors_copy", "vectors_copy_keyed", "vectors_hybrid")
    }
)

# A bulk delete's maintenance (queries/vectors.sql): parsed only, as PREPARE does.
TEMPLATE_SLOTS["vectors_reindex_concurrently"] = {"embedding_index": "vector_sample_embedding_idx"}
TEMPLATE_SLOTS["vectors_vacuum"] = {"table": "vector_sample"}

# Bulk loads and index builds (queries/vectors_build.sql): the same table, its index names, the
# cosine opclass and build options (DDL is parsed, never run, here).
_BUILD = {"table": "vector_sample", "index": "vector_sample_embedding_idx", "opclass": "vector_cosine_ops"}
TEMPLATE_SLOTS.update(
    {
        "vectors_ann_indexes": {"table": "vector_sample"},
        "vectors_comment_clear": {"table": "vector_sample"},
        "vectors_drop": {"table": "vector_sample"},
        "vectors_bulk_lock": {"table": "vector_sample"},
        "vectors_bulk_lock_nowait": {"table": "vector_sample"},
        "vectors_keys_lock": {"table": "vector_sample"},
        "vectors_comment_dropped": {"table": "vector_sample", "comment": Constant("pgstash")},
        "vectors_drop_index": {"index": "vector_sample_embedding_idx"},
        "vectors_drop_index_concurrently": {"index": "vector_sample_embedding_idx"},
        "vectors_rename_index": {
            "index": "vector_sample_embedding_new",
            "new_name": "vector_sample_embedding_idx",
        },
        "vectors_build_hnsw": {**_BUILD, "m": 16, "ef_construction": 64},
        "vectors_build_hnsw_concurrently": {**_BUILD, "m": 16, "ef_construction": 64},
        "vectors_build_ivfflat": {**_BUILD, "lists": 1},
        "vectors_build_ivfflat_concurrently": {**_BUILD, "lists": 1},
    }
)

# pgstash status (queries/status.sql): the exact count of one listed table.
TEMPLATE_SLOTS["status_count"] = {"table": "configurations"}

# Full text (queries/vectors_text.sql): the text column create_table(..., text="body") adds.
TEMPLATE_SETUP += [
    f"ALTER TABLE {table} ADD COLUMN text_vector TSVECTOR GENERATED ALWAYS AS "
    "(to_tsvector('english'::REGCONFIG, payload #>> '{body}'::TEXT[])) STORED"
    for table in ("vector_sample", "vector_sample_half")
]

# Indexed payload fields (create_table(..., indexed={"year": int})): the column their fragments read.
TEMPLATE_SETUP += [
    f"ALTER TABLE {table} ADD COLUMN field_year NUMERIC GENERATED ALWAYS AS "
    "(CASE WHEN jsonb_typeof(payload #> '{year}'::TEXT[]) = 'number' "
    "THEN (payload #>> '{year}'::TEXT[])::NUMERIC END) STORED"
    for table in ("vector_sample", "vector_sample_half")
]

# Issue 26 (queries/vectors_reads.sql, vectors_binary.sql, the documents of vectors_text.sql): the
# same tables, with the document column create_table(..., documents=True) adds.
TEMPLATE_SETUP += [
    f"ALTER TABLE {table} ADD COLUMN document TEXT" for table in ("vector_sample", "vector_sample_half")
]
TEMPLATE_SLOTS.update(
    {
        name: {"table": "vector_sample"}
        for name in ("vectors_get_ids", "vectors_page", "vectors_delete_documents", "vectors_copy_documents")
    }
)
TEMPLATE_SLOTS["vectors_search_binary"] = {"table": "vector_sample", "dimension": 3, "vector_type": "vector"}
TEMPLATE_VARIANTS["vectors_search_binary"] = [
    {"table": "vector_sample_half", "dimension": 3, "vector_type": "halfvec"}
]
