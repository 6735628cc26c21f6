-- The vector index: one table per model, named by a {table} slot (a validated, quoted
-- identifier). {requirements} is where the payload filter goes: fragments from queries/filters.sql,
-- spliced in parentheses by pgstash.composer. Words in braces are splice points, :words parameters.

-- name: vectors_table_facts(table_name)^
-- One catalog read: the table's embedding dimension, type (vector or halfvec) and storage, its
-- valid and invalid index names, cosine ANN index methods (vector_cosine_ops,
-- halfvec_cosine_ops), whether id is its primary key, the generation expression of
-- its text column (naming the payload path and text search configuration), the type and
-- generation expression of each indexed payload field's column ("name type: expression"), whether
-- a binary-quantized HNSW index (bit_hamming_ops) serves it, the index
-- create_table was asked for (its comment), pgvector's version and the clock.
SELECT
    c.oid IS NOT NULL AS present,
    (
        SELECT a.atttypmod FROM pg_catalog.pg_attribute AS a
        WHERE a.attrelid = c.oid AND a.attname = 'embedding' AND NOT a.attisdropped
    ) AS dimension,
    (
        SELECT t.typname::TEXT
        FROM pg_catalog.pg_attribute AS a
        INNER JOIN pg_catalog.pg_type AS t ON a.atttypid = t.oid
        WHERE a.attrelid = c.oid AND a.attname = 'embedding' AND NOT a.attisdropped
    ) AS vector_type,
    (
        SELECT a.attstorage::TEXT FROM pg_catalog.pg_attribute AS a
        WHERE a.attrelid = c.oid AND a.attname = 'embedding' AND NOT a.attisdropped
    ) AS storage,
    (
        SELECT coalesce(pg_catalog.array_agg(ic.relname::TEXT), '{}'::TEXT[])
        FROM pg_catalog.pg_index AS i
        INNER JOIN pg_catalog.pg_class AS ic ON i.indexrelid = ic.oid
        WHERE i.indrelid = c.oid AND i.indisvalid
    ) AS indexes,
    (
        SELECT coalesce(pg_catalog.array_agg(ic.relname::TEXT), '{}'::TEXT[])
        FROM pg_catalog.pg_index AS i
        INNER JOIN pg_catalog.pg_class AS ic ON i.indexrelid = ic.oid
        WHERE i.indrelid = c.oid AND NOT i.indisvalid
    ) AS invalid_indexes,
    (
        SELECT coalesce(pg_catalog.array_agg(DISTINCT am.amname::TEXT), '{}'::TEXT[])
        FROM pg_catalog.pg_index AS i
        INNER JOIN pg_catalog.pg_class AS ic ON i.indexrelid = ic.oid
        INNER JOIN pg_catalog.pg_am AS am ON ic.relam = am.oid
        INNER JOIN pg_catalog.pg_opclass AS oc ON i.indclass[0] = oc.oid
        INNER JOIN
            pg_catalog.pg_attribute AS a
            ON i.indrelid = a.attrelid AND i.indkey[0] = a.attnum
        WHERE
            i.indrelid = c.oid
            AND a.attname = 'embedding'
            AND oc.opcname IN ('vector_cosine_ops', 'halfvec_cosine_ops')
            AND i.indisvalid
            AND i.indpred IS NULL
    ) AS methods,
    (
        SELECT pg_catalog.count(*) > 0::BIGINT FROM pg_catalog.pg_constraint AS k
        WHERE k.conrelid = c.oid AND k.contype = 'p'
    ) AS primary_key,
    (
        SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid)
        FROM pg_catalog.pg_attribute AS a
        INNER JOIN
            pg_catalog.pg_attrdef AS d
            ON a.attrelid = d.adrelid AND a.attnum = d.adnum
        WHERE a.attrelid = c.oid AND a.attname = 'text_vector' AND NOT a.attisdropped
    ) AS text_expression,
    (
        SELECT
            coalesce(
                pg_catalog.array_agg(
                    a.attname::TEXT
                    || ' '
                    || pg_catalog.format_type(a.atttypid, a.atttypmod)
                    || ': '
                    || pg_catalog.pg_get_expr(d.adbin, d.adrelid)
                    ORDER BY a.attnum
                ),
                '{}'::TEXT[]
            )
        FROM pg_catalog.pg_attribute AS a
        INNER JOIN
            pg_catalog.pg_attrdef AS d
            ON a.attrelid = d.adrelid AND a.attnum = d.adnum
        WHERE
            a.attrelid = c.oid
            AND a.attname LIKE 'field\_%'
            AND a.attgenerated = 's'
            AND NOT a.attisdropped
    ) AS field_columns,
    (
        SELECT pg_catalog.count(*) > 0::BIGINT
        FROM pg_catalog.pg_index AS i
        INNER JOIN pg_catalog.pg_opclass AS oc ON i.indclass[0] = oc.oid
        WHERE
            i.indrelid = c.oid
            AND oc.opcname = 'bit_hamming_ops'
            AND i.indisvalid
            AND i.indpred IS NULL
    ) AS quantized,
    pg_catalog.obj_description(c.oid, 'pg_class') AS comment,
    (
        SELECT e.extversion FROM pg_catalog.pg_extension AS e
        WHERE e.extname = 'vector'
    ) AS vector_version,
    pg_catalog.clock_timestamp() AS now
FROM (SELECT pg_catalog.to_regclass(pg_catalog.quote_ident(:table_name::TEXT))::OID AS oid) AS c;

-- name: vectors_table_lock(table_name)$
-- Serialises create_table calls on one table name until the transaction ends (advisory lock).
SELECT
    pg_catalog.pg_advisory_xact_lock(
        pg_catalog.hashtextextended('pgstash.vectors.'::TEXT || :table_name::TEXT, 0::BIGINT)
    );

-- name: vectors_table_rows(enough)$
-- How many rows the table holds, counted up to :enough (create_table and the IVFFlat build ask
-- whether the table is empty, or holds enough rows to train IVFFlat's lists).
SELECT pg_catalog.count(*) FROM (SELECT FROM {table} LIMIT :enough::BIGINT) AS sample; -- noqa: AM09

-- name: vectors_ddl_settings(lock_timeout, local)$
-- DDL waits at most :lock_timeout for its lock, then fails (55P03) instead of queueing every
-- reader and writer of the table behind it. Local to the transaction, or (for a concurrent index
-- build, which runs outside one) a session setting that vectors_ddl_reset puts back.
SELECT pg_catalog.set_config('lock_timeout', :lock_timeout::TEXT, :local::BOOLEAN);

-- name: vectors_ddl_reset()!
-- The session's lock_timeout back to its default after a concurrent index build.
RESET lock_timeout;

-- name: vectors_scan_settings(iterative, exact, ef_search, probes, max_scan_tuples)$
-- Scopes one search's settings to its transaction (set_config local): custom plans always (a
-- generic plan of a filtered vector query can be 100x slower), iterative scans, an exact plan (no
-- index scans), hnsw.ef_search and ivfflat.probes when given, and a bound on the tuples an
-- iterative HNSW scan visits (a selective filter then comes back short and runs exactly: the GIN
-- bitmap and a top-N sort).
SELECT pg_catalog.concat_ws(
    ', ',
    pg_catalog.set_config('plan_cache_mode', 'force_custom_plan', TRUE),
    CASE
        WHEN :iterative::BOOLEAN
            THEN pg_catalog.set_config('hnsw.iterative_scan', 'strict_order', TRUE)
    END,
    CASE
        WHEN :iterative::BOOLEAN
            THEN pg_catalog.set_config('ivfflat.iterative_scan', 'relaxed_order', TRUE)
    END,
    CASE WHEN :exact::BOOLEAN THEN pg_catalog.set_config('enable_indexscan', 'off', TRUE) END,
    CASE
        WHEN :ef_search::INTEGER IS NOT NULL
            THEN pg_catalog.set_config('hnsw.ef_search', :ef_search::INTEGER::TEXT, TRUE)
    END,
    CASE
        WHEN :probes::INTEGER IS NOT NULL
            THEN pg_catalog.set_config('ivfflat.probes', :probes::INTEGER::TEXT, TRUE)
    END,
    CASE
        WHEN :max_scan_tuples::INTEGER IS NOT NULL
            THEN
                pg_catalog.set_config(
                    'hnsw.max_scan_tuples', :max_scan_tuples::INTEGER::TEXT, TRUE
                )
    END
);

-- name: vectors_copy()!
-- Ingest: one binary COPY of every row of an index() call; id defaults to gen_random_uuid().
-- (WITH BINARY: PostgreSQL's older spelling of WITH (FORMAT binary), which sqlfluff cannot parse.)
COPY {table} (embedding, created, meta, payload) FROM STDIN WITH BINARY;

-- name: vectors_search(query_vector, candidates, max_distance, with_embeddings)
-- route: read
-- The candidates meeting the requirements nearest to the query by cosine distance, each a row
-- (how many the scan found: their count), one beyond :max_distance with a NULL payload.
-- HNSW/IVFFlat on embedding serve the ORDER BY ... LIMIT. One level of subquery, not a
-- materialised CTE read twice, a count and a join: the same scan, planned and run in 30-80 us
-- less (docs/benchmarks.md, "Third pass").
-- :query_vector has no cast: PostgreSQL infers it as the column's type (vector or halfvec), so
-- one text serves both precisions.
SELECT
    nearest.embedding,
    CASE
        WHEN nearest.distance <= :max_distance::FLOAT8 THEN nearest.payload
    END AS payload,
    1::FLOAT8 - nearest.distance AS score
FROM (
    SELECT
        payload,
        embedding <=> :query_vector AS distance,
        -- only MMR reads the vectors: the top-N sort then carries narrow rows
        CASE WHEN :with_embeddings::BOOLEAN THEN embedding END AS embedding
    FROM {table}
    WHERE {requirements}
    ORDER BY embedding <=> :query_vector
    LIMIT :candidates::BIGINT
) AS nearest
ORDER BY nearest.distance;

-- name: vectors_search_relaxed(query_vector, candidates, max_distance, with_embeddings)
-- route: read
-- vectors_search on a table with an IVFFlat index, whose iterative scans (relaxed_order, set at
-- connect) return each further list's rows after the rows found before, not in distance order:
-- the candidates are sorted again by their distance plus 0. vectors_search's outer ORDER BY
-- is the subquery's own, so the planner drops it (the scan "is" ordered); this one's it cannot,
-- so a sort of the few candidates puts them in order, as the materialised CTE before the
-- third pass did (docs/benchmarks.md, "Fourth pass"). No cast on :query_vector, as there.
SELECT
    nearest.embedding,
    CASE
        WHEN nearest.distance <= :max_distance::FLOAT8 THEN nearest.payload
    END AS payload,
    1::FLOAT8 - nearest.distance AS score
FROM (
    SELECT
        payload,
        embedding <=> :query_vector AS distance,
        -- only MMR reads the vectors: the top-N sort then carries narrow rows
        CASE WHEN :with_embeddings::BOOLEAN THEN embedding END AS embedding
    FROM {table}
    WHERE {requirements}
    ORDER BY embedding <=> :query_vector
    LIMIT :candidates::BIGINT
) AS nearest
ORDER BY nearest.distance + 0::FLOAT8;

-- name: vectors_search_exact(query_vector, candidates, max_distance, with_embeddings)
-- route: read
-- vectors_search with an exact plan: ordered by the distance plus 0, which no index matches,
-- so the rows meeting the requirements (GIN on payload for equality and contains, else a scan)
-- are sorted top-N. Run when an index scan came back with fewer rows than asked. No cast on
-- :query_vector, as in vectors_search: vector or halfvec.
SELECT
    nearest.embedding,
    CASE
        WHEN nearest.distance <= :max_distance::FLOAT8 THEN nearest.payload
    END AS payload,
    1::FLOAT8 - nearest.distance AS score
FROM (
    SELECT
        payload,
        embedding <=> :query_vector AS distance,
        -- only MMR reads the vectors: the top-N sort then carries narrow rows
        CASE WHEN :with_embeddings::BOOLEAN THEN embedding END AS embedding
    FROM {table}
    WHERE {requirements}
    ORDER BY (embedding <=> :query_vector) + 0::FLOAT8
    LIMIT :candidates::BIGINT
) AS nearest
ORDER BY nearest.distance;

-- name: vectors_newest(candidates)
-- route: read
-- The newest rows meeting the requirements (the B-tree on created serves ORDER BY ... LIMIT).
SELECT payload
FROM {table}
WHERE {requirements}
ORDER BY created DESC
LIMIT :candidates::BIGINT;

-- name: vectors_delete()!
-- Deletes the rows meeting the requirements (GIN on payload serves containment filters).
DELETE FROM {table}
WHERE {requirements};

-- name: vectors_reindex_concurrently()!
-- After a delete that removed a large share of the table: rebuilds its nearest-neighbour index
-- from the rows left, without blocking reads or writes, outside a transaction. An HNSW graph
-- still links the deleted rows until VACUUM cleans it (which on HNSW can take far longer than
-- this rebuild), so a scan wastes its ef_search candidates on them and comes back short.
REINDEX INDEX CONCURRENTLY {embedding_index};

-- name: vectors_vacuum()!
-- After that rebuild: reclaims the deleted rows and refreshes the planner's statistics. Outside a
-- transaction (VACUUM cannot run in one); a role that may not vacuum the table gets a warning.
VACUUM (ANALYZE) {table};
