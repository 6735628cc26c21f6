-- The vector-table template: what `PostgresVectorIndex.create_table` runs, each step only when the
-- catalog (vectors_table_facts) shows it missing. Not a migration (no NNNN_ prefix): {table},
-- {primary_key}, {embedding_index}, {payload_index} and {created_index} are validated, quoted
-- identifiers and {dimension} a positive integer. {vector_type} and {opclass} come from an
-- allow-list of the precision (pgstash.vectors.tables.PRECISIONS), quoted like identifiers:
-- "vector" and "vector_cosine_ops" (float32), "halfvec" and "halfvec_cosine_ops" (float16).
-- On a table that already holds rows, the indexes are built by the *_concurrently variants,
-- outside a transaction.

-- name: vector_table_create()!
-- The seed's five columns, id the primary key; the embedding column carries the table's dimension
-- and precision (vector: 4 bytes a component, halfvec: 2).
CREATE TABLE IF NOT EXISTS {table} (
    id UUID NOT NULL DEFAULT pg_catalog.gen_random_uuid(),
    embedding {vector_type}({dimension}) NOT NULL,
    payload JSONB NOT NULL,
    meta JSONB NOT NULL,
    created TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    CONSTRAINT {primary_key} PRIMARY KEY (id)
);

-- name: vector_table_storage()!
-- Keeps vectors inline in the heap (MAIN: out of line only when a row cannot fit a page), not in
-- TOAST (pgvector's default, EXTERNAL): a scan then reads one page per row, not two. Rows written
-- before move inline when the table is rewritten (VACUUM FULL, pg_repack).
ALTER TABLE {table} ALTER COLUMN embedding SET STORAGE MAIN;

-- name: vector_table_primary_key()!
-- A table made before pgstash added the key (or by hand from the seed): id becomes its primary
-- key (replication and delete need one), using the unique index built just before.
ALTER TABLE {table} ADD CONSTRAINT {primary_key} PRIMARY KEY USING INDEX {primary_key};

-- name: vector_table_primary_key_index()!
-- The unique index on id the primary key is made from (in create_table's transaction).
CREATE UNIQUE INDEX IF NOT EXISTS {primary_key} ON {table} (id);

-- name: vector_table_primary_key_index_concurrently()!
-- The same, on a table holding rows: built without blocking writes, outside a transaction.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {primary_key} ON {table} (id);

-- name: vector_table_comment_ivfflat()!
-- Remembers that the table's embedding index is IVFFlat, built once the table holds enough rows
-- to train its lists (index() or a later create_table builds it).
COMMENT ON TABLE {table} IS 'pgstash: index=ivfflat';

-- name: vector_table_drop_invalid_index()!
-- An index a failed concurrent build left invalid (unused by queries, in the way of IF NOT EXISTS).
DROP INDEX IF EXISTS {invalid_index};

-- name: vector_table_hnsw_index()!
-- HNSW on cosine distance: serves ORDER BY embedding <=> query LIMIT k.
CREATE INDEX IF NOT EXISTS {embedding_index}
ON {table} USING hnsw (embedding {opclass});

-- name: vector_table_hnsw_index_concurrently()!
-- The same, on a table holding rows: built without blocking writes, outside a transaction.
CREATE INDEX CONCURRENTLY IF NOT EXISTS {embedding_index}
ON {table} USING hnsw (embedding {opclass});

-- name: vector_table_ivfflat_index()!
-- IVFFlat on cosine distance, the seed's 100 lists, trained on the rows present: serves
-- ORDER BY embedding <=> query LIMIT k.
CREATE INDEX IF NOT EXISTS {embedding_index}
ON {table} USING ivfflat (embedding {opclass}) WITH (lists = 100);

-- name: vector_table_ivfflat_index_concurrently()!
-- The same, on a table holding rows: built without blocking writes, outside a transaction.
CREATE INDEX CONCURRENTLY IF NOT EXISTS {embedding_index}
ON {table} USING ivfflat (embedding {opclass}) WITH (lists = 100);

-- name: vector_table_payload_index()!
-- GIN (jsonb_path_ops) on payload: serves the containment (@>) of equality and contains filters.
CREATE INDEX IF NOT EXISTS {payload_index}
ON {table} USING gin (payload jsonb_path_ops);

-- name: vector_table_payload_index_concurrently()!
-- The same, on a table holding rows: built without blocking writes, outside a transaction.
CREATE INDEX CONCURRENTLY IF NOT EXISTS {payload_index}
ON {table} USING gin (payload jsonb_path_ops);

-- name: vector_table_created_index()!
-- B-tree on created: serves the newest-first listing (search without a query).
CREATE INDEX IF NOT EXISTS {created_index}
ON {table} (created);

-- name: vector_table_created_index_concurrently()!
-- The same, on a table holding rows: built without blocking writes, outside a transaction.
CREATE INDEX CONCURRENTLY IF NOT EXISTS {created_index}
ON {table} (created);

-- name: vector_table_text_column()!
-- The text column (create_table(..., text=...)): a tsvector the server computes from one payload
-- field when a row is written. {language} (a text search configuration the server has) and
-- {text_path} (the field's key path, a text[] constant) are string constants of validated name
-- characters: DDL cannot take parameters. STORED: PostgreSQL 18's default, VIRTUAL, cannot be
-- indexed. On a table holding rows, ADD COLUMN rewrites it and rebuilds every index (HNSW too)
-- under an ACCESS EXCLUSIVE lock: reads and writes wait until it is done.
-- toast_tuple_target = 4096: a row of up to 4 kB stays whole in the heap (the default, 2 kB, moved
-- the tsvector of a 384-dimension row with its payload to TOAST: a text search then read every
-- matching row's tsvector through the TOAST index, 0.35 ms of a 1.6 ms two-word search over
-- 200,000 rows; docs/benchmarks.md). Longer rows are TOASTed as before. It holds for rows written
-- from then on, and for every row here, as ADD COLUMN rewrites them; a table given its text
-- column before keeps its rows where they are until ALTER TABLE ... SET (toast_tuple_target =
-- 4096) and a rewrite (VACUUM FULL, pg_repack; README "Hybrid search").
ALTER TABLE {table}
SET (toast_tuple_target = 4096),
ADD COLUMN IF NOT EXISTS text_vector TSVECTOR
GENERATED ALWAYS AS (
    pg_catalog.to_tsvector({language}::REGCONFIG, payload #>> {text_path}::TEXT[])
) STORED;

-- name: vector_table_text_index()!
-- GIN on the text column: serves the @@ match of text and hybrid search. Its pending list (rows
-- written since the last merge, read in full by every search and counted by the planner, which
-- turns to a sequential scan when it is large) is merged whenever it passes 256 kB, not the
-- default 4 MB: about 5% more ingest time, and searches stay on the index after an ingest.
CREATE INDEX IF NOT EXISTS {text_index}
ON {table} USING gin (text_vector) WITH (gin_pending_list_limit = 256);

-- name: vector_table_text_index_concurrently()!
-- The same, on a table holding rows: built without blocking writes, outside a transaction.
CREATE INDEX CONCURRENTLY IF NOT EXISTS {text_index}
ON {table} USING gin (text_vector) WITH (gin_pending_list_limit = 256);

-- Indexed payload fields (create_table(..., indexed={path: type})): one stored generated column
-- per field, named field_<keys joined by __>, holding the field's value when it is of the
-- declared JSON type and NULL otherwise (missing, JSON null, another type), so that a comparison
-- on the column matches exactly the rows the JSONB filter matches; and a B-tree on it that
-- serves equal/greater/less requirements on the path. {field_path} is the path as a text[]
-- constant of validated keys (DDL cannot take parameters). On a table holding rows, ADD COLUMN
-- rewrites it (ACCESS EXCLUSIVE, as the text column does); the B-tree is then built CONCURRENTLY.

-- name: vector_table_field_number()!
-- A number field (int or float): NUMERIC, which compares as JSON numbers do (1 = 1.0).
ALTER TABLE {table}
ADD COLUMN IF NOT EXISTS {field_column} NUMERIC
GENERATED ALWAYS AS (
    CASE
        WHEN pg_catalog.jsonb_typeof(payload #> {field_path}::TEXT[]) = 'number'
            THEN (payload #>> {field_path}::TEXT[])::NUMERIC
    END
) STORED;

-- name: vector_table_field_text()!
-- A string field: TEXT in the "C" collation, which orders by code point as the JSONB filters do.
ALTER TABLE {table}
ADD COLUMN IF NOT EXISTS {field_column} TEXT COLLATE "C"
GENERATED ALWAYS AS (
    CASE
        WHEN pg_catalog.jsonb_typeof(payload #> {field_path}::TEXT[]) = 'string'
            THEN payload #>> {field_path}::TEXT[]
    END
) STORED;

-- name: vector_table_field_boolean()!
-- A boolean field.
ALTER TABLE {table}
ADD COLUMN IF NOT EXISTS {field_column} BOOLEAN
GENERATED ALWAYS AS (
    CASE
        WHEN pg_catalog.jsonb_typeof(payload #> {field_path}::TEXT[]) = 'boolean'
            THEN (payload #>> {field_path}::TEXT[])::BOOLEAN
    END
) STORED;

-- name: vector_table_field_timestamptz()!
-- A datetime field (an ISO 8601 string): the instant, by pgstash_timestamptz (schema/0011), so
-- that comparisons are by time, not by text.
ALTER TABLE {table}
ADD COLUMN IF NOT EXISTS {field_column} TIMESTAMPTZ
GENERATED ALWAYS AS (
    CASE
        WHEN pg_catalog.jsonb_typeof(payload #> {field_path}::TEXT[]) = 'string'
            THEN pgstash_timestamptz(payload #>> {field_path}::TEXT[])
    END
) STORED;

-- name: vector_table_field_index()!
-- B-tree on an indexed field's column: serves equal, greater, less and their _or_equal forms.
CREATE INDEX IF NOT EXISTS {field_index}
ON {table} ({field_column});

-- name: vector_table_field_index_concurrently()!
-- The same, on a table holding rows: built without blocking writes, outside a transaction.
CREATE INDEX CONCURRENTLY IF NOT EXISTS {field_index}
ON {table} ({field_column});

-- name: vector_table_document_column()!
-- Documents as chunk sets (index(..., document=...)): each row's document key (its JSON text),
-- NULL for rows written without one. Nullable without a default: adding it rewrites nothing.
ALTER TABLE {table} ADD COLUMN IF NOT EXISTS document TEXT;

-- name: vector_table_document_index()!
-- B-tree on the document key of the rows that have one: serves the DELETE of a document's chunk
-- set when it is written again, delete(documents=...) and get(documents=...).
CREATE INDEX IF NOT EXISTS {document_index}
ON {table} (document) WHERE document IS NOT NULL;

-- name: vector_table_document_index_concurrently()!
-- The same, on a table holding rows: built without blocking writes, outside a transaction.
CREATE INDEX CONCURRENTLY IF NOT EXISTS {document_index}
ON {table} (document) WHERE document IS NOT NULL;

-- name: vector_table_binary_index()!
-- Binary quantization (create_table(..., quantize="binary")): HNSW over each embedding's signs,
-- one bit a dimension, by Hamming distance (bit_hamming_ops): serves the shortlist of
-- vectors_search_binary, which re-ranks it exactly by cosine. {dimension} sizes the bit string
-- (the search's expression must match the index's: binary_quantize(embedding)::BIT(dimension)).
CREATE INDEX IF NOT EXISTS {binary_index}
ON {table} USING hnsw ((binary_quantize(embedding)::BIT({dimension})) bit_hamming_ops);

-- name: vector_table_binary_index_concurrently()!
-- The same, on a table holding rows: built without blocking writes, outside a transaction.
CREATE INDEX CONCURRENTLY IF NOT EXISTS {binary_index}
ON {table} USING hnsw ((binary_quantize(embedding)::BIT({dimension})) bit_hamming_ops);
