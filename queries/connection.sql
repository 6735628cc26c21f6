-- name: vector_types(names)
-- The pgvector types this database has, for registering their codecs (pg_type, by name).
SELECT
    t.typname,
    n.nspname
FROM pg_type AS t
INNER JOIN pg_namespace AS n ON t.typnamespace = n.oid
INNER JOIN pg_depend AS d ON t.oid = d.objid AND d.deptype = 'e'
INNER JOIN pg_extension AS e ON d.refobjid = e.oid AND e.extname = 'vector'
WHERE t.typname = any(:names::TEXT[]);

-- name: server_facts()^
-- Server and pgvector versions, for errors and `pgstash status`.
SELECT
    current_setting('server_version') AS server_version,
    (
        SELECT extversion FROM pg_extension
        WHERE extname = 'vector'
    ) AS vector_version,
    (
        SELECT default_version FROM pg_available_extensions
        WHERE name = 'vector'
    ) AS vector_available;

-- name: connection_shadowing_temp_tables()$
-- The temporary relations of this session named like a relation of a schema on the search path
-- (every unqualified name in pgstash's statements would reach them first), checked before
-- pgstash's next statement in a transaction or session where the caller's SQL ran (catalogs).
SELECT coalesce(pg_catalog.array_agg(t.relname::TEXT ORDER BY t.relname), '{}'::TEXT[])
FROM pg_catalog.pg_class AS t
WHERE
    t.relnamespace = pg_catalog.pg_my_temp_schema()
    AND t.relkind IN ('r', 'p', 'v', 'm', 'f')
    AND EXISTS (
        SELECT
        FROM pg_catalog.pg_class AS r
        INNER JOIN pg_catalog.pg_namespace AS n ON r.relnamespace = n.oid
        WHERE r.relname = t.relname AND n.nspname = any(pg_catalog.current_schemas(FALSE))
    );
