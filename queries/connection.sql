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
