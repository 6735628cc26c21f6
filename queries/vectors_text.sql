-- Full text and hybrid search on a vector table, and upserts by key (issue 14). {table} is a
-- validated, quoted identifier; {requirements} is where the requirement fragment (queries/
-- filters.sql) is spliced, its values bound once however often it appears. The text column is
-- text_vector, a tsvector the server generates from one payload field
-- (schema/templates/vector_table.sql); :language is its text search configuration, read from the
-- catalog (vectors_table_facts), never from the caller.

-- name: vectors_text_search(words, language, candidates)
-- route: read
-- The rows meeting the requirements that match the web-search style query, best ts_rank_cd
-- first, newer first among equals. GIN on text_vector serves the @@ match; the tsquery is
-- parsed once (a one-row FROM item), not per row. A query of only stop words matches nothing.
SELECT
    payload,
    pg_catalog.ts_rank_cd(text_vector, query) AS score
FROM {table}, pg_catalog.websearch_to_tsquery(:language::REGCONFIG, :words::TEXT) AS query
WHERE text_vector @@ query AND {requirements}
ORDER BY score DESC, created DESC
LIMIT :candidates::BIGINT;

-- name: vectors_text_timeout(milliseconds)$
-- A text or hybrid search's own statement timeout, first in the transaction the search runs in
-- (rolled back after it, so it never outlives the search): the smaller of :milliseconds and the
-- session's (which 0 turns off). No table. The session's is read by current_setting (in its
-- units: 0, 150ms, 5s, 1min... each an interval), not from the pg_settings view, which formats
-- every setting the server has for each call: 0.4 ms against a few microseconds.
SELECT
    pg_catalog.set_config(
        'statement_timeout',
        least(
            :milliseconds::BIGINT,
            coalesce(
                nullif(
                    pg_catalog.date_part(
                        'epoch', pg_catalog.current_setting('statement_timeout')::INTERVAL
                    ) * 1000,
                    0
                )::BIGINT,
                :milliseconds::BIGINT
            )
        )::TEXT,
        TRUE
    );

-- name: vectors_hybrid(vector, words, language, candidates, max_distance, rrf_k, weights, rows)
-- route: read
-- Reciprocal rank fusion of two arms in one statement: the candidates nearest to the query
-- vector by cosine (HNSW/IVFFlat serve ORDER BY ... LIMIT; max_distance applies after it, as
-- in vectors_search) and the candidates best by ts_rank_cd (GIN serves @@), both among the rows
-- meeting the requirements. A row's score is weights[1] / (rrf_k + vector rank) + weights[2] /
-- (rrf_k + text rank), an arm it is absent from adding 0; ties go to the better vector rank
-- (absent last), then the better text rank. The best `rows` rows, or with rows NULL every fused
-- row with its embedding (for MMR). found counts what the vector scan returned (fewer than
-- asked: the caller runs it again exactly). :vector has no cast: it takes the column's type
-- (vector or halfvec).
WITH nearest AS MATERIALIZED (
    SELECT
        id,
        payload,
        CASE WHEN :rows::INTEGER IS NULL THEN embedding END AS embedding,
        embedding <=> :vector AS distance
    FROM {table}
    WHERE {requirements}
    ORDER BY embedding <=> :vector
    LIMIT :candidates::BIGINT
),

vector_arm AS (
    SELECT
        id,
        payload,
        embedding,
        pg_catalog.row_number() OVER (ORDER BY distance) AS vector_rank
    FROM nearest
    WHERE distance <= :max_distance::FLOAT8
),

text_arm AS (
    SELECT
        id,
        payload,
        embedding,
        pg_catalog.row_number() OVER (ORDER BY rank DESC, created DESC) AS text_rank
    FROM (
        SELECT
            id,
            payload,
            created,
            CASE WHEN :rows::INTEGER IS NULL THEN embedding END AS embedding,
            pg_catalog.ts_rank_cd(text_vector, query) AS rank
        FROM {table}, pg_catalog.websearch_to_tsquery(:language::REGCONFIG, :words::TEXT) AS query
        WHERE text_vector @@ query AND {requirements}
        ORDER BY rank DESC, created DESC
        LIMIT :candidates::BIGINT
    ) AS best
),

fused AS (
    SELECT
        v.vector_rank,
        t.text_rank,
        coalesce(v.payload, t.payload) AS payload,
        coalesce(v.embedding, t.embedding) AS embedding,
        coalesce(
            (:weights::FLOAT8[])[1] / (:rrf_k::BIGINT + v.vector_rank)::FLOAT8, 0::FLOAT8
        )
        + coalesce(
            (:weights::FLOAT8[])[2] / (:rrf_k::BIGINT + t.text_rank)::FLOAT8, 0::FLOAT8
        ) AS score
    FROM vector_arm AS v
    FULL JOIN text_arm AS t ON v.id = t.id
)

SELECT
    scanned.found,
    fused.payload,
    fused.score,
    fused.embedding
FROM (SELECT pg_catalog.count(*) AS found FROM nearest) AS scanned
LEFT JOIN fused ON TRUE
ORDER BY fused.score DESC, fused.vector_rank ASC NULLS LAST, fused.text_rank ASC NULLS LAST
LIMIT :rows::BIGINT;

-- Upserts by key: a keyed row's id is uuid5(uuid5(NAMESPACE_URL, 'pgstash:vectors:' || table),
-- the key's JSON text), computed in Python (pgstash.vectors.keys); PRIMARY KEY (id) keeps one row
-- per key.

-- name: vectors_text_languages()$
-- The text search configurations the search path shows (what `'name'::REGCONFIG` resolves).
SELECT coalesce(pg_catalog.array_agg(cfgname::TEXT ORDER BY cfgname), '{}'::TEXT[])
FROM pg_catalog.pg_ts_config
WHERE pg_catalog.pg_ts_config_is_visible(oid);

-- name: vectors_keys_lock()!
-- Serialises keyed ingests into one table until the transaction ends, so that a replacing
-- DELETE sees the rows a concurrent ingest of the same keys committed (without it, the later
-- ingest's COPY would fail on the primary key instead of replacing them). A lock on the table
-- itself, which only a role that may write it takes (UPDATE, DELETE, TRUNCATE or MAINTAIN):
-- an advisory lock any role with CONNECT could hold. SHARE UPDATE EXCLUSIVE conflicts with itself,
-- VACUUM, ANALYZE and CREATE INDEX CONCURRENTLY, not with reads or plain inserts.
LOCK TABLE {table} IN SHARE UPDATE EXCLUSIVE MODE;

-- name: vectors_delete_ids(ids)!
-- Deletes the rows with these ids: the rows whose keys an ingest replaces (before its COPY, in
-- its transaction), or delete(keys=...). The primary key serves id = ANY(...).
DELETE FROM {table}
WHERE id = ANY(:ids::UUID[]);

-- name: vectors_copy_keyed()!
-- Binary COPY of keyed rows, in the transaction of their vectors_delete_ids: the id column too
-- (vectors_copy leaves it to its default).
COPY {table} (id, embedding, created, meta, payload) FROM STDIN WITH BINARY;

-- name: vectors_delete_documents(documents)!
-- Deletes the chunk sets of these documents (their keys' JSON text): the old set of a document
-- index(..., document=...) writes again (before its COPY, in its transaction, under
-- vectors_keys_lock), or delete(documents=...). The partial B-tree on document serves it.
DELETE FROM {table}
WHERE document = ANY(:documents::TEXT[]);

-- name: vectors_copy_documents()!
-- Binary COPY of rows that belong to documents, in the transaction of their
-- vectors_delete_documents: the document column too.
COPY {table} (embedding, created, meta, payload, document) FROM STDIN WITH BINARY;
