-- Instructions: versioned prompt templates, primary key (name, created).
--
-- search_path: every function is called as pg_catalog.name(...) and every operator's operands
-- have the exact types of a pg_catalog operator (docs/security.md).

-- name: instructions_newest(name)^
-- route: read
-- The newest revision of one name (primary key (name, created): index scan backward).
SELECT
    name,
    description,
    content,
    arguments,
    meta,
    created
FROM instructions
WHERE name = :name::TEXT
ORDER BY created DESC
LIMIT 1;

-- name: instructions_declarations()
-- route: read
-- The newest declaration of each name: a loose index scan, one backward primary key descent a name.
WITH RECURSIVE newest AS (
    (
        SELECT
            i.name,
            i.description,
            i.arguments,
            i.meta
        FROM instructions AS i
        ORDER BY i.name DESC, i.created DESC
        LIMIT 1
    )
    UNION ALL
    SELECT
        following.name,
        following.description,
        following.arguments,
        following.meta
    FROM newest
    CROSS JOIN LATERAL (
        SELECT
            i.name,
            i.description,
            i.arguments,
            i.meta
        FROM instructions AS i
        WHERE i.name < newest.name
        ORDER BY i.name DESC, i.created DESC
        LIMIT 1
    ) AS following
)

SELECT
    name,
    description,
    arguments,
    meta
FROM newest;

-- name: instructions_history(name)
-- route: read
-- Every revision of one name, newest first (the name's range of the primary key).
SELECT
    name,
    description,
    content,
    arguments,
    meta,
    created
FROM instructions
WHERE name = :name::TEXT
ORDER BY created DESC;

-- name: instructions_lock(name)$
-- Makes writers of one name take turns until commit (transaction advisory lock on its hash).
SELECT
    pg_catalog.pg_advisory_xact_lock(
        pg_catalog.hashtextextended('instructions/'::TEXT || :name::TEXT, 0::BIGINT)
    );

-- name: instructions_insert(name, description, content, arguments, meta)$
-- Appends a revision later than the newest (max via the primary key) and NOTIFYs its name.
WITH newest AS (
    SELECT pg_catalog.max(created) AS created
    FROM instructions
    WHERE name = :name::TEXT
),

inserted AS (
    INSERT INTO instructions (name, description, content, arguments, meta, created)
    SELECT
        :name::TEXT AS name,
        :description::TEXT AS description,
        :content::TEXT AS content,
        :arguments::JSONB AS arguments,
        :meta::JSONB AS meta,
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
            'store'::TEXT, 'instructions'::TEXT,
            'key'::TEXT,
            CASE WHEN pg_catalog.octet_length(:name::TEXT) <= 7000 THEN :name::TEXT END
        )::TEXT
    ) AS notified
FROM inserted;

-- name: instructions_remove(name)$
-- Deletes every revision of one name (primary key range) and NOTIFYs it; the count deleted.
WITH removed AS (
    DELETE FROM instructions
    WHERE name = :name::TEXT
    RETURNING created
)

SELECT
    pg_catalog.count(*) AS removed,
    pg_catalog.pg_notify(
        'pgstash_documents'::TEXT,
        pg_catalog.json_build_object(
            'store'::TEXT, 'instructions'::TEXT,
            'key'::TEXT,
            CASE WHEN pg_catalog.octet_length(:name::TEXT) <= 7000 THEN :name::TEXT END
        )::TEXT
    ) AS notified
FROM removed;

-- name: instructions_prune(keep, older_than)$
-- Deletes revisions beyond each name's keep newest, older than older_than (NULL: any age); never
-- a name's newest. Loose index scan, then a primary key range per name.
WITH RECURSIVE names AS (
    (
        SELECT i.name
        FROM instructions AS i
        ORDER BY i.name
        LIMIT 1
    )
    UNION ALL
    SELECT following.name
    FROM names
    CROSS JOIN LATERAL (
        SELECT i.name
        FROM instructions AS i
        WHERE i.name > names.name
        ORDER BY i.name
        LIMIT 1
    ) AS following
),

kept AS (
    SELECT
        names.name,
        least(
            oldest_kept.created,
            coalesce(:older_than::TIMESTAMPTZ, 'infinity'::TIMESTAMPTZ)
        ) AS created
    FROM names
    CROSS JOIN LATERAL (
        SELECT i.created
        FROM instructions AS i
        WHERE i.name = names.name
        ORDER BY i.created DESC
        LIMIT 1 OFFSET (greatest(:keep::BIGINT, 1::BIGINT) - 1::BIGINT)
    ) AS oldest_kept
),

pruned AS (
    DELETE FROM instructions AS i
    USING kept
    WHERE
        i.name = kept.name
        AND i.created < kept.created
    RETURNING i.created
)

SELECT pg_catalog.count(*) AS pruned
FROM pruned;
