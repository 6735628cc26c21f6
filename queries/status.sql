-- What `pgstash status` reads: catalogs, plus exact counts of small tables. Read-only.

-- name: status_connection()^
-- Who and where: the server version, address, database and user this session is connected as.
SELECT
    pg_catalog.current_setting('server_version'::TEXT) AS server_version,
    pg_catalog.inet_server_addr()::TEXT AS address,
    pg_catalog.inet_server_port() AS port,
    pg_catalog.current_database() AS database,
    current_user AS username,
    pg_catalog.current_schema() AS schema_name;

-- name: status_extension(extension_name)^
-- An extension's installed version (NULL: not created) and the version the server could create.
SELECT
    (
        SELECT e.extversion
        FROM pg_extension AS e
        WHERE e.extname = :extension_name
    ) AS installed,
    (
        SELECT a.default_version
        FROM pg_available_extensions AS a
        WHERE a.name = :extension_name
    ) AS available;

-- name: status_tables(table_names, exact_below)
-- pgstash's own tables (by name) and every vector table (an `embedding` vector or halfvec column
-- beside `payload`, `meta` and `created`) in the current schema, with their total size, and the
-- planner's row estimate (reltuples) when it reaches `exact_below` (else NULL: pgstash status
-- counts those rows exactly with status_count). The user's other tables are left out. precision:
-- float32 for a vector column, float16 for halfvec. table_comment: where a bulk load records the
-- ANN index it dropped until its commit; bulk_locked: whether a session holds the bulk lock (a
-- load running, or VACUUM / a concurrent index build).
SELECT
    c.relname AS name,
    vector_column.dimension,
    vector_column.vector_precision,
    pg_catalog.pg_total_relation_size(c.oid) AS size_bytes,
    CASE WHEN c.reltuples >= :exact_below THEN c.reltuples::BIGINT END AS row_estimate,
    (
        SELECT
            pg_catalog.string_agg(
                am.amname::TEXT || ' ('::TEXT || ic.relname::TEXT || ')'::TEXT,
                ', '::TEXT
                ORDER BY ic.relname
            )
        FROM pg_index AS i
        INNER JOIN pg_class AS ic ON i.indexrelid = ic.oid
        INNER JOIN pg_am AS am ON ic.relam = am.oid
        WHERE i.indrelid = c.oid
    ) AS indexes,
    pg_catalog.obj_description(c.oid, 'pg_class') AS table_comment,
    exists(
        SELECT FROM pg_catalog.pg_locks AS l
        WHERE
            l.relation = c.oid
            AND l.mode = 'ShareUpdateExclusiveLock'
            AND l.granted
    ) AS bulk_locked
FROM pg_class AS c
INNER JOIN pg_namespace AS n ON c.relnamespace = n.oid
LEFT JOIN LATERAL (
    SELECT
        a.atttypmod AS dimension,
        CASE t.typname WHEN 'halfvec' THEN 'float16' ELSE 'float32' END AS vector_precision
    FROM pg_attribute AS a
    INNER JOIN pg_type AS t ON a.atttypid = t.oid
    WHERE
        a.attrelid = c.oid
        AND a.attname = 'embedding'
        AND t.typname IN ('vector', 'halfvec')
        AND NOT a.attisdropped
        AND (
            SELECT pg_catalog.count(*)
            FROM pg_attribute AS other
            WHERE
                other.attrelid = c.oid
                AND other.attname IN ('payload', 'meta', 'created')
                AND NOT other.attisdropped
        ) = 3
) AS vector_column ON TRUE
WHERE
    c.relkind = 'r'
    AND n.nspname = pg_catalog.current_schema()
    AND (c.relname = ANY(:table_names::NAME[]) OR vector_column.dimension IS NOT NULL)
ORDER BY vector_column.dimension IS NOT NULL, c.relname;

-- name: status_relation(table_name)^
-- Whether a table of this name exists in the current schema, and the dimension of its vector
-- `embedding` column (NULL: it exists but is not a vector table). No row: no such table.
SELECT
    c.relname AS name,
    (
        SELECT a.atttypmod
        FROM pg_attribute AS a
        INNER JOIN pg_type AS t ON a.atttypid = t.oid
        WHERE
            a.attrelid = c.oid
            AND a.attname = 'embedding'
            AND t.typname IN ('vector', 'halfvec')
            AND NOT a.attisdropped
    ) AS dimension
FROM pg_class AS c
INNER JOIN pg_namespace AS n ON c.relnamespace = n.oid
WHERE
    c.relname = :table_name
    AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
    AND n.nspname = pg_catalog.current_schema();

-- name: status_count()$
-- The exact row count of one of the tables status_tables lists ({table}: a validated, quoted
-- identifier): a full scan, run only for tables estimated below status_tables' `exact_below`.
SELECT pg_catalog.count(*) FROM {table};
