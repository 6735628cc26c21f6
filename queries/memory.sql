-- Conversational memory: the seed's memories, memories_elements and memories_variables tables.
--
-- Order. `created` is the only ordering column, so remember stamps it in SQL, never from the
-- application's clock: after locking the memory row, each element gets
-- greatest(clock_timestamp(), newest stored + 1 microsecond) + its position in microseconds.
-- For that the newest stored row must be read after the lock is held, by a statement whose
-- snapshot is taken then. remember therefore runs memory_remember twice in one pipeline (one
-- round trip, one implicit transaction, committed together at Sync): first with nothing to
-- append, which creates or locks the memory row; then with the items, whose snapshot sees
-- every remember committed before the lock was granted. Concurrent remembers on one memory
-- thus serialise, never interleave, and `created` increases strictly in commit order. (This
-- relies on READ COMMITTED, PostgreSQL's default, where each statement takes a new snapshot.)
-- The conflict branch `DO UPDATE ... WHERE FALSE` locks the existing row (FOR NO KEY UPDATE,
-- which foreign-key checks do not wait for) without writing a new version of it.
--
-- Recall without a limit reads the elements in primary key order, unsorted: LIMIT (SELECT NULL)
-- is no limit, but one the planner cannot see, so it keeps the ordered index scan rather than a
-- bitmap scan and a sort of every element (which spills past work_mem at 20,000 elements).
--
-- search_path: every function is called as pg_catalog.name(...) and every operator's operands
-- have the exact types of a pg_catalog operator (docs/security.md).

-- name: memory_remember(identifier, contents, variables)*!
-- Creates or locks a memory; appends elements, variables after its newest (identifier indexes).
WITH memory AS (
    INSERT INTO memories AS existing (identifier)
    VALUES (:identifier::TEXT)
    ON CONFLICT (identifier) DO UPDATE
        SET created = existing.created
        WHERE FALSE
),

stamp AS (
    SELECT
        greatest(
            pg_catalog.clock_timestamp(),
            (
                SELECT pg_catalog.max(e.created) FROM memories_elements AS e
                WHERE e.identifier = :identifier::TEXT
            ) + INTERVAL '1 microsecond',
            (
                SELECT pg_catalog.max(v.created) FROM memories_variables AS v
                WHERE v.identifier = :identifier::TEXT
            ) + INTERVAL '1 microsecond'
        ) AS created
),

elements AS (
    INSERT INTO memories_elements (identifier, content, created)
    SELECT
        :identifier::TEXT AS identifier,
        item.content,
        stamp.created
        + (item.position - 1::BIGINT)::FLOAT8 * INTERVAL '1 microsecond' AS created
    FROM stamp
    CROSS JOIN pg_catalog.unnest(:contents::JSONB[]) WITH ORDINALITY AS item (content, position)
)

INSERT INTO memories_variables (identifier, variables, created)
SELECT
    :identifier::TEXT AS identifier,
    :variables::JSONB AS variables,
    stamp.created
FROM stamp
WHERE :variables::JSONB IS NOT NULL;

-- name: memory_recall(identifier, element_limit, before)^
-- Newest variables; last elements (NULL: all, read in order) before `before` (NULL: any), oldest
-- first, each as (content, created): both primary keys.
SELECT
    (
        SELECT v.variables FROM memories_variables AS v
        WHERE v.identifier = :identifier::TEXT
        ORDER BY v.created DESC
        LIMIT 1
    ) AS variables,
    CASE
        WHEN :element_limit::BIGINT IS NULL
            THEN array(
                SELECT ROW(e.content, e.created)
                FROM memories_elements AS e
                WHERE
                    e.identifier = :identifier::TEXT
                    AND e.created < coalesce(:before::TIMESTAMPTZ, 'infinity'::TIMESTAMPTZ)
                ORDER BY e.created
                LIMIT (SELECT NULL::BIGINT)
            )
        ELSE array(
            SELECT ROW(recent.content, recent.created)
            FROM (
                SELECT
                    e.content,
                    e.created
                FROM memories_elements AS e
                WHERE
                    e.identifier = :identifier::TEXT
                    AND e.created < coalesce(:before::TIMESTAMPTZ, 'infinity'::TIMESTAMPTZ)
                ORDER BY e.created DESC
                LIMIT :element_limit::BIGINT
            ) AS recent
            ORDER BY recent.created
        )
    END AS context;

-- name: memory_forget(identifier)!
-- Deletes a memory with its elements and variables (ON DELETE CASCADE; the primary keys).
DELETE FROM memories
WHERE identifier = :identifier::TEXT;

-- name: memory_forget_idle(idle_before, lock_only)$
-- Forgets memories with nothing remembered since idle_before (created, newest element, variables);
-- run twice in one transaction: lock, then delete (primary key probes per memory); count deleted.
WITH idle AS (
    SELECT m.identifier
    FROM memories AS m
    WHERE
        m.created < :idle_before::TIMESTAMPTZ
        AND NOT EXISTS (
            SELECT FROM memories_elements AS e
            WHERE
                e.identifier = m.identifier
                AND e.created >= :idle_before::TIMESTAMPTZ
        )
        AND NOT EXISTS (
            SELECT FROM memories_variables AS v
            WHERE
                v.identifier = m.identifier
                AND v.created >= :idle_before::TIMESTAMPTZ
        )
    FOR UPDATE OF m
),

forgotten AS (
    DELETE FROM memories AS m
    USING idle
    WHERE
        m.identifier = idle.identifier
        AND NOT :lock_only::BOOLEAN
    RETURNING m.identifier
)

SELECT pg_catalog.count(forgotten.identifier) AS forgotten
FROM idle
LEFT JOIN forgotten ON idle.identifier = forgotten.identifier;
