-- Configurations: versioned snapshots, primary key (identifier, created).
--
-- search_path: every function is called as pg_catalog.name(...) and every operator's operands
-- have the exact types of a pg_catalog operator, so no function or operator a role creates in a
-- schema of the caller's search_path can be chosen instead (docs/security.md).

-- name: configurations_newest(identifier)$
-- The newest snapshot of one identifier (primary key (identifier, created): index scan backward).
SELECT content
FROM configurations
WHERE identifier = :identifier::TEXT
ORDER BY created DESC
LIMIT 1;

-- name: configurations_identifiers()
-- Every identifier once, in order: a loose index scan (one primary key descent per identifier).
WITH RECURSIVE identifiers AS (
    (
        SELECT c.identifier
        FROM configurations AS c
        ORDER BY c.identifier
        LIMIT 1
    )
    UNION ALL
    SELECT following.identifier
    FROM identifiers
    CROSS JOIN LATERAL (
        SELECT c.identifier
        FROM configurations AS c
        WHERE c.identifier > identifiers.identifier
        ORDER BY c.identifier
        LIMIT 1
    ) AS following
)

SELECT identifier
FROM identifiers;

-- name: configurations_named()$
-- Whether the configurations table has the name column of migration 0009 (one catalog probe).
SELECT EXISTS(
    SELECT FROM pg_catalog.pg_attribute AS a
    WHERE
        a.attrelid = pg_catalog.to_regclass('configurations'::TEXT)
        AND a.attname = 'name'::NAME
        AND NOT a.attisdropped
) AS named;

-- name: configurations_insert_unnamed(identifier, content)$
-- Appends a snapshot to the seed's verbatim table (no name column); otherwise as the insert below.
WITH newest AS (
    SELECT pg_catalog.max(created) AS created
    FROM configurations
    WHERE identifier = :identifier::TEXT
),

inserted AS (
    INSERT INTO configurations (identifier, content, created)
    SELECT
        :identifier::TEXT AS identifier,
        :content::JSONB AS content,
        greatest(
            pg_catalog.clock_timestamp(), newest.created + INTERVAL '1 microsecond'
        ) AS created
    FROM newest
    RETURNING created
)

SELECT
    inserted.created,
    pg_catalog.pg_notify(
        'pgstash_documents'::TEXT,
        pg_catalog.json_build_object(
            'store'::TEXT, 'configurations'::TEXT,
            'key'::TEXT,
            CASE WHEN pg_catalog.octet_length(:identifier::TEXT) <= 7000 THEN :identifier::TEXT END
        )::TEXT
    ) AS notified
FROM inserted;

-- name: configurations_of_kind(kind)
-- Every identifier with a snapshot of one type name, in order (configurations_name_identifier_idx).
SELECT DISTINCT identifier
FROM configurations
WHERE name = :kind::TEXT
ORDER BY identifier;

-- name: configurations_history(identifier)
-- Every snapshot of one identifier, newest first (the identifier's range of the primary key).
SELECT
    identifier,
    content,
    created
FROM configurations
WHERE identifier = :identifier::TEXT
ORDER BY created DESC;

-- name: configurations_lock(identifier)$
-- Makes writers of one identifier take turns until commit (transaction advisory lock on its hash).
SELECT
    pg_catalog.pg_advisory_xact_lock(
        pg_catalog.hashtextextended('configurations/'::TEXT || :identifier::TEXT, 0::BIGINT)
    );

-- name: configurations_insert(identifier, content, name)$
-- Appends a snapshot later than the newest (max via the primary key) and NOTIFYs its identifier.
WITH newest AS (
    SELECT pg_catalog.max(created) AS created
    FROM configurations
    WHERE identifier = :identifier::TEXT
),

inserted AS (
    INSERT INTO configurations (identifier, content, name, created)
    SELECT
        :identifier::TEXT AS identifier,
        :content::JSONB AS content,
        :name::TEXT AS name,
        greatest(
            pg_catalog.clock_timestamp(), newest.created + INTERVAL '1 microsecond'
        ) AS created
    FROM newest
    RETURNING created
)

SELECT
    inserted.created,
    pg_catalog.pg_notify(
        'pgstash_documents'::TEXT,
        pg_catalog.json_build_object(
            'store'::TEXT, 'configurations'::TEXT,
            'key'::TEXT,
            CASE WHEN pg_catalog.octet_length(:identifier::TEXT) <= 7000 THEN :identifier::TEXT END
        )::TEXT
    ) AS notified
FROM inserted;

-- name: configurations_remove(identifier)$
-- Deletes every snapshot of one identifier (primary key range) and NOTIFYs it; the count deleted.
WITH removed AS (
    DELETE FROM configurations
    WHERE identifier = :identifier::TEXT
    RETURNING created
)

SELECT
    pg_catalog.count(*) AS removed,
    pg_catalog.pg_notify(
        'pgstash_documents'::TEXT,
        pg_catalog.json_build_object(
            'store'::TEXT, 'configurations'::TEXT,
            'key'::TEXT,
            CASE WHEN pg_catalog.octet_length(:identifier::TEXT) <= 7000 THEN :identifier::TEXT END
        )::TEXT
    ) AS notified
FROM removed;

-- name: configurations_prune(keep, older_than)$
-- Deletes snapshots beyond each identifier's keep newest, older than older_than (NULL: any age);
-- never an identifier's newest. Loose index scan, then a primary key range per identifier.
WITH RECURSIVE identifiers AS (
    (
        SELECT c.identifier
        FROM configurations AS c
        ORDER BY c.identifier
        LIMIT 1
    )
    UNION ALL
    SELECT following.identifier
    FROM identifiers
    CROSS JOIN LATERAL (
        SELECT c.identifier
        FROM configurations AS c
        WHERE c.identifier > identifiers.identifier
        ORDER BY c.identifier
        LIMIT 1
    ) AS following
),

kept AS (
    SELECT
        identifiers.identifier,
        least(
            oldest_kept.created,
            coalesce(:older_than::TIMESTAMPTZ, 'infinity'::TIMESTAMPTZ)
        ) AS created
    FROM identifiers
    CROSS JOIN LATERAL (
        SELECT c.created
        FROM configurations AS c
        WHERE c.identifier = identifiers.identifier
        ORDER BY c.created DESC
        LIMIT 1 OFFSET (greatest(:keep::BIGINT, 1::BIGINT) - 1::BIGINT)
    ) AS oldest_kept
),

pruned AS (
    DELETE FROM configurations AS c
    USING kept
    WHERE
        c.identifier = kept.identifier
        AND c.created < kept.created
    RETURNING c.created
)

SELECT pg_catalog.count(*) AS pruned
FROM pruned;
