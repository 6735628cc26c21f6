-- The command line's own reads and DDL on a vector table ({table}: a validated, quoted name):
-- `pgstash vector get`, `vector drop`, the ids of keyless search results, and the embedding
-- `vector ingest` recorded in meta.

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

-- name: vectors_ids_by_payload(payloads, most)
-- For each payload given (JSON texts, numbered in order), the ids of the first `most` rows
-- storing exactly it, oldest first: pgstash vector search --json names the rows it found that
-- have no key. GIN (jsonb_path_ops) on payload serves the containment (@>) in a nested loop over
-- the few payloads given; the equality keeps only exact rows. A payload no row stores is absent.
-- On the primary, as the other reads here: a row a replica's search found is there unless deleted.
WITH given AS (
    SELECT
        g.n,
        g.payload::JSONB AS payload
    FROM pg_catalog.unnest(:payloads::TEXT[]) WITH ORDINALITY AS g (payload, n)
),

matched AS (
    SELECT
        given.n,
        t.id,
        pg_catalog.row_number() OVER (PARTITION BY given.n ORDER BY t.created, t.id) AS nth
    FROM given
    INNER JOIN {table} AS t ON given.payload <@ t.payload AND given.payload = t.payload
)

SELECT
    n AS position,
    pg_catalog.array_agg(id ORDER BY nth) AS ids
FROM matched
WHERE nth <= :most::BIGINT
GROUP BY n
ORDER BY n;

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
