-- The vector index: one table per model, named by a {table} slot (a validated, quoted
-- identifier). {requirements} is where the payload filter goes: fragments from queries/filters.sql,
-- spliced in parentheses by pgstash.composer. Words in braces are splice points, :words parameters.

-- name: vectors_table_facts(table_name)^
-- The table's embedding dimension and cosine ANN index methods, pgvector's version, the clock.
SELECT
    c.oid IS NOT NULL AS present,
    (
        SELECT a.atttypmod FROM pg_attribute AS a
        WHERE a.attrelid = c.oid AND a.attname = 'embedding' AND NOT a.attisdropped
    ) AS dimension,
    (
        SELECT coalesce(array_agg(DISTINCT am.amname::TEXT), '{}')
        FROM pg_index AS i
        INNER JOIN pg_class AS ic ON i.indexrelid = ic.oid
        INNER JOIN pg_am AS am ON ic.relam = am.oid
        INNER JOIN pg_opclass AS oc ON i.indclass[0] = oc.oid
        INNER JOIN pg_attribute AS a ON i.indrelid = a.attrelid AND i.indkey[0] = a.attnum
        WHERE
            i.indrelid = c.oid
            AND a.attname = 'embedding'
            AND oc.opcname = 'vector_cosine_ops'
            AND i.indisvalid
            AND i.indpred IS NULL
    ) AS methods,
    (
        SELECT e.extversion FROM pg_extension AS e
        WHERE e.extname = 'vector'
    ) AS vector_version,
    clock_timestamp() AS now
FROM (SELECT to_regclass(quote_ident(:table_name))::OID AS oid) AS c;

-- name: vectors_table_lock(table_name)$
-- Serialises create_table calls on one table name until the transaction ends (advisory lock).
SELECT pg_advisory_xact_lock(hashtextextended('pgstash.vectors.' || :table_name, 0));

-- name: vectors_scan_settings(iterative, exact, ef_search, probes)$
-- Scopes one search's index scan settings to its transaction (set_config local): iterative scans,
-- an exact plan (no index scans), hnsw.ef_search and ivfflat.probes when given.
SELECT concat_ws(
    ', ',
    CASE
        WHEN :iterative::BOOLEAN
            THEN set_config('hnsw.iterative_scan', 'strict_order', TRUE)
    END,
    CASE
        WHEN :iterative::BOOLEAN
            THEN set_config('ivfflat.iterative_scan', 'relaxed_order', TRUE)
    END,
    CASE WHEN :exact::BOOLEAN THEN set_config('enable_indexscan', 'off', TRUE) END,
    CASE
        WHEN :ef_search::INTEGER IS NOT NULL
            THEN set_config('hnsw.ef_search', :ef_search::INTEGER::TEXT, TRUE)
    END,
    CASE
        WHEN :probes::INTEGER IS NOT NULL
            THEN set_config('ivfflat.probes', :probes::INTEGER::TEXT, TRUE)
    END
);

-- name: vectors_search(query_vector, candidates, max_distance, with_embeddings)
-- The rows meeting the requirements nearest to the query by cosine distance, within max_distance,
-- and how many candidates the scan found; HNSW/IVFFlat on embedding serve the ORDER BY ... LIMIT.
WITH nearest AS MATERIALIZED (
    SELECT
        payload,
        embedding,
        embedding <=> :query_vector::VECTOR AS distance
    FROM {table}
    WHERE {requirements}
    ORDER BY embedding <=> :query_vector::VECTOR
    LIMIT :candidates
)

SELECT
    within.payload,
    scanned.found,
    1 - within.distance AS score,
    CASE WHEN :with_embeddings::BOOLEAN THEN within.embedding END AS embedding
FROM (SELECT count(*) AS found FROM nearest) AS scanned
LEFT JOIN nearest AS within ON within.distance <= :max_distance::FLOAT8
ORDER BY within.distance;

-- name: vectors_newest(candidates)
-- The newest rows meeting the requirements (the B-tree on created serves ORDER BY ... LIMIT).
SELECT payload
FROM {table}
WHERE {requirements}
ORDER BY created DESC
LIMIT :candidates;

-- name: vectors_delete()!
-- Deletes the rows meeting the requirements (GIN on payload serves containment filters).
DELETE FROM {table}
WHERE {requirements};

-- name: vectors_copy()!
-- Ingest: the rows in PostgreSQL's binary COPY format, fed by the index's encoder. (WITH BINARY is
-- PostgreSQL's older spelling of WITH (FORMAT binary), which sqlfluff cannot parse yet.)
COPY {table} (embedding, created, meta, payload) FROM STDIN WITH BINARY;
