-- name: configurations_newest(identifier)$
-- The newest snapshot of one identifier (primary key (identifier, created): index scan backward).
SELECT content
FROM configurations
WHERE identifier = :identifier
ORDER BY created DESC
LIMIT 1;

-- name: configurations_identifiers()
-- Every identifier once, in order (reads every row: no index skips duplicates; callers cache it).
SELECT DISTINCT identifier
FROM configurations
ORDER BY identifier;

-- name: configurations_history(identifier)
-- Every snapshot of one identifier, newest first (the identifier's range of the primary key).
SELECT
    identifier,
    content,
    created
FROM configurations
WHERE identifier = :identifier
ORDER BY created DESC;

-- name: configurations_lock(identifier)$
-- Makes writers of one identifier take turns until commit (transaction advisory lock on its hash).
SELECT pg_advisory_xact_lock(hashtextextended('configurations/' || :identifier::TEXT, 0));

-- name: configurations_insert(identifier, content)$
-- Appends a snapshot later than the newest (max via the primary key) and NOTIFYs its identifier.
WITH newest AS (
    SELECT max(created) AS created
    FROM configurations
    WHERE identifier = :identifier
),

inserted AS (
    INSERT INTO configurations (identifier, content, created)
    SELECT
        :identifier AS identifier,
        :content::JSONB AS content,
        greatest(clock_timestamp(), newest.created + INTERVAL '1 microsecond') AS created
    FROM newest
    RETURNING created
)

SELECT
    inserted.created,
    pg_notify(
        'pgstash_documents',
        json_build_object(
            'store', 'configurations',
            'key', CASE WHEN octet_length(:identifier) <= 7000 THEN :identifier END
        )::TEXT
    ) AS notified
FROM inserted;

-- name: configurations_remove(identifier)$
-- Deletes every snapshot of one identifier (primary key range) and NOTIFYs it; the count deleted.
WITH removed AS (
    DELETE FROM configurations
    WHERE identifier = :identifier
    RETURNING created
)

SELECT
    count(*) AS removed,
    pg_notify(
        'pgstash_documents',
        json_build_object(
            'store', 'configurations',
            'key', CASE WHEN octet_length(:identifier) <= 7000 THEN :identifier END
        )::TEXT
    ) AS notified
FROM removed;
