-- name: migrations_create_table()!
-- The tracking table of applied schema/ files (one row per file, keyed by name).
CREATE TABLE IF NOT EXISTS pgstash_migrations (
    name TEXT PRIMARY KEY,
    checksum TEXT NOT NULL,
    applied TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- name: migrations_lock(lock_key)$
-- Serialises migrate() across processes: a transaction advisory lock, held until commit (no
-- session state, so it works through a transaction pooler).
SELECT pg_catalog.pg_advisory_xact_lock(:lock_key::BIGINT);

-- name: migrations_applied()
-- Every applied migration with its checksum, in name order (one row per file: a few rows).
SELECT
    name,
    checksum,
    applied
FROM pgstash_migrations
ORDER BY name;

-- name: migrations_record(name, checksum)!
-- Records one applied migration, in the same transaction as the migration itself.
INSERT INTO pgstash_migrations (name, checksum)
VALUES (:name, :checksum);

-- name: migrations_tracking_exists()$
-- Whether the tracking table exists yet (read-only probe used by `pgstash status`).
SELECT pg_catalog.to_regclass('pgstash_migrations'::TEXT) IS NOT NULL;

-- name: extension_available(extension_name)$
-- Whether the server can CREATE EXTENSION this name (pg_available_extensions).
SELECT exists(
    SELECT 1 FROM pg_catalog.pg_available_extensions
    WHERE name = :extension_name::TEXT
);
