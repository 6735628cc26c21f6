-- The vector-table template: what `PostgresVectorIndex.create_table` runs, in one transaction.
-- Not a migration (no NNNN_ prefix): {table}, {embedding_index}, {payload_index} and
-- {created_index} are validated, quoted identifiers and {dimension} a positive integer.
-- Every statement is idempotent.

-- name: vector_table_create()!
-- The seed's five columns; the embedding column carries the table's dimension.
CREATE TABLE IF NOT EXISTS {table} (
    id UUID NOT NULL DEFAULT gen_random_uuid(),
    embedding VECTOR({dimension}) NOT NULL,
    payload JSONB NOT NULL,
    meta JSONB NOT NULL,
    created TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- name: vector_table_hnsw_index()!
-- HNSW on cosine distance: serves ORDER BY embedding <=> query LIMIT k.
CREATE INDEX IF NOT EXISTS {embedding_index}
ON {table} USING hnsw (embedding vector_cosine_ops);

-- name: vector_table_ivfflat_index()!
-- IVFFlat on cosine distance, the seed's 100 lists: serves ORDER BY embedding <=> query LIMIT k.
CREATE INDEX IF NOT EXISTS {embedding_index}
ON {table} USING ivfflat (embedding vector_cosine_ops) WITH (lists = 100);

-- name: vector_table_payload_index()!
-- GIN (jsonb_path_ops) on payload: serves the containment (@>) of equality and contains filters.
CREATE INDEX IF NOT EXISTS {payload_index}
ON {table} USING gin (payload jsonb_path_ops);

-- name: vector_table_created_index()!
-- B-tree on created: serves the newest-first listing (search without a query).
CREATE INDEX IF NOT EXISTS {created_index}
ON {table} (created);
