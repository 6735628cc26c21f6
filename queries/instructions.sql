-- name: instructions_newest(name)^
-- The newest revision of one name (primary key (name, created): index scan backward).
SELECT
    name,
    description,
    content,
    arguments,
    meta,
    created
FROM instructions
WHERE name = :name
ORDER BY created DESC
LIMIT 1;

-- name: instructions_declarations()
-- The newest declaration of each name (primary key scanned backward, first row per name).
SELECT DISTINCT ON (name)
    name,
    description,
    arguments,
    meta
FROM instructions
ORDER BY name DESC, created DESC;

-- name: instructions_history(name)
-- Every revision of one name, newest first (the name's range of the primary key).
SELECT
    name,
    description,
    content,
    arguments,
    meta,
    created
FROM instructions
WHERE name = :name
ORDER BY created DESC;

-- name: instructions_lock(name)$
-- Makes writers of one name take turns until commit (transaction advisory lock on its hash).
SELECT pg_advisory_xact_lock(hashtextextended('instructions/' || :name::TEXT, 0));

-- name: instructions_insert(name, description, content, arguments, meta)$
-- Appends a revision later than the newest (max via the primary key) and NOTIFYs its name.
WITH newest AS (
    SELECT max(created) AS created
    FROM instructions
    WHERE name = :name
),

inserted AS (
    INSERT INTO instructions (name, description, content, arguments, meta, created)
    SELECT
        :name AS name,
        :description::TEXT AS description,
        :content::TEXT AS content,
        :arguments::JSONB AS arguments,
        :meta::JSONB AS meta,
        greatest(clock_timestamp(), newest.created + INTERVAL '1 microsecond') AS created
    FROM newest
    RETURNING created
)

SELECT
    inserted.created,
    pg_notify(
        'pgstash_documents',
        json_build_object(
            'store', 'instructions',
            'key', CASE WHEN octet_length(:name) <= 7000 THEN :name END
        )::TEXT
    ) AS notified
FROM inserted;

-- name: instructions_remove(name)$
-- Deletes every revision of one name (primary key range) and NOTIFYs it; the count deleted.
WITH removed AS (
    DELETE FROM instructions
    WHERE name = :name
    RETURNING created
)

SELECT
    count(*) AS removed,
    pg_notify(
        'pgstash_documents',
        json_build_object(
            'store', 'instructions',
            'key', CASE WHEN octet_length(:name) <= 7000 THEN :name END
        )::TEXT
    ) AS notified
FROM removed;
