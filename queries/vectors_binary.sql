-- Binary quantization (create_table(..., quantize="binary"), pgstash.vectors.quantize): a search
-- shortlists :pool rows by the Hamming distance of their embeddings' signs (the HNSW index over
-- binary_quantize(embedding)::BIT(dimension)), then re-ranks them exactly by cosine, in one
-- statement. {dimension} is the table's dimension (digits) and {vector_type} its embedding type
-- from an allow-list (vector or halfvec), quoted like an identifier.

-- name: vectors_search_binary(query_vector, candidates, pool, max_distance, with_embeddings)
-- The :pool rows meeting the requirements nearest to the query's signs by Hamming distance
-- ({table}_binary_idx serves the ORDER BY ... LIMIT), of which the :candidates nearest by cosine
-- distance within :max_distance, and how many the shortlist found.
WITH shortlist AS MATERIALIZED (
    SELECT
        payload,
        embedding
    FROM {table}
    WHERE {requirements}
    ORDER BY
        binary_quantize(embedding)::BIT({dimension})
        <~> binary_quantize(:query_vector::{vector_type})::BIT({dimension}) -- noqa: PRS, LT02
    LIMIT :pool::BIGINT
),

nearest AS MATERIALIZED (
    SELECT
        payload,
        embedding,
        embedding <=> :query_vector::{vector_type} AS distance
    FROM shortlist
    ORDER BY distance
    LIMIT :candidates::BIGINT
)

SELECT
    within.payload,
    scanned.found,
    1::FLOAT8 - within.distance AS score,
    CASE WHEN :with_embeddings::BOOLEAN THEN within.embedding END AS embedding
FROM (SELECT pg_catalog.count(*) AS found FROM shortlist) AS scanned
LEFT JOIN nearest AS within ON within.distance <= :max_distance::FLOAT8
ORDER BY within.distance;
