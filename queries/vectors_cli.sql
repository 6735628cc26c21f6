-- The command line's own reads and DDL on a vector table ({table}: a validated, quoted name):
-- `pgstash vector get`, `vector drop`, and the embedding `vector ingest` recorded in meta.

-- name: vectors_rows_by_id(ids)
-- The rows with these ids, oldest first (the primary key on id serves it): pgstash vector get.
SELECT
    id,
    payload,
    meta,
    created
FROM {table}
WHERE id = ANY(:ids::UUID[])
ORDER BY created;

-- name: vectors_ingest_meta()^
-- The meta of the newest row: the embedding (and key and vector fields) that pgstash vector
-- ingest recorded there; the B-tree on created serves ORDER BY ... LIMIT.
SELECT meta
FROM {table}
ORDER BY created DESC
LIMIT 1;

-- name: vectors_drop()!
-- Drops a vector table with its indexes and rows: pgstash vector drop.
DROP TABLE {table};
