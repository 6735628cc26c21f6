-- name: status_tables()
-- pgstash's tables with estimated row counts and total size (pg_class, no table scans).
SELECT
    c.relname AS name,
    greatest(c.reltuples, 0)::BIGINT AS rows,
    pg_catalog.pg_size_pretty(pg_catalog.pg_total_relation_size(c.oid)) AS size
FROM pg_catalog.pg_class AS c
INNER JOIN pg_catalog.pg_namespace AS n ON c.relnamespace = n.oid
WHERE
    c.relkind = 'r'
    AND n.nspname = pg_catalog.current_schema()
ORDER BY c.relname;

-- name: status_vector_tables()
-- Tables with a vector column `embedding`, its dimension and the indexes on it (catalogs only).
SELECT
    c.relname AS name,
    a.atttypmod AS dimension,
    (
        SELECT pg_catalog.string_agg(am.amname::TEXT, ', '::TEXT ORDER BY am.amname)
        FROM pg_catalog.pg_index AS i
        INNER JOIN pg_catalog.pg_class AS ic ON i.indexrelid = ic.oid
        INNER JOIN pg_catalog.pg_am AS am ON ic.relam = am.oid
        WHERE i.indrelid = c.oid
    ) AS indexes
FROM pg_catalog.pg_attribute AS a
INNER JOIN pg_catalog.pg_class AS c ON a.attrelid = c.oid
INNER JOIN pg_catalog.pg_namespace AS n ON c.relnamespace = n.oid
INNER JOIN pg_catalog.pg_type AS t ON a.atttypid = t.oid
WHERE
    a.attname = 'embedding'
    AND t.typname IN ('vector', 'halfvec')
    AND c.relkind = 'r'
    AND n.nspname = pg_catalog.current_schema()
ORDER BY c.relname;

-- name: vector_table_dimension(table_name)$
-- The declared dimension of a table's `embedding` column, or NULL without such a table (catalogs).
SELECT a.atttypmod AS dimension
FROM pg_catalog.pg_attribute AS a
INNER JOIN pg_catalog.pg_class AS c ON a.attrelid = c.oid
INNER JOIN pg_catalog.pg_namespace AS n ON c.relnamespace = n.oid
WHERE
    a.attname = 'embedding'
    AND c.relname = :table_name
    AND c.relkind = 'r'
    AND n.nspname = pg_catalog.current_schema();
