-- Instructions v2 (issue 27): numbered revisions, labels, label moves (schema/0010).
-- Revisions: instructions_revisions, primary key (name, revision), unique (name, created).
-- Labels: instructions_labels, primary key (name, label), index (label, name).
-- Moves: instructions_label_moves, primary key (name, label, moved).
-- Writers of one name take turns under instructions_lock(name); each write NOTIFYs the name.
--
-- search_path: every function is called as pg_catalog.name(...) and every operator's operands
-- have the exact types of a pg_catalog operator (docs/security.md).

-- name: instructions_labels_installed()$
-- Whether schema/0010 has been applied (a catalogue lookup, no table read).
SELECT pg_catalog.to_regclass('instructions_label_moves'::TEXT) IS NOT NULL AS installed;

-- name: instructions_latest(name)^
-- The newest revision of one name with its number (instructions_pkey backward, limit 1, then
-- instructions_revisions_created_key).
SELECT
    i.name,
    i.description,
    i.content,
    i.arguments,
    i.meta,
    i.created,
    r.revision,
    r.message,
    r.author,
    r.kind,
    r.config
FROM instructions AS i
LEFT JOIN instructions_revisions AS r
    ON
        i.name = r.name
        AND i.created = r.created
WHERE i.name = :name::TEXT
ORDER BY i.created DESC
LIMIT 1;

-- name: instructions_labelled(name, label)^
-- The revision a label of one name points at (three primary key lookups).
SELECT
    i.name,
    i.description,
    i.content,
    i.arguments,
    i.meta,
    i.created,
    r.revision,
    r.message,
    r.author,
    r.kind,
    r.config
FROM instructions_labels AS l
INNER JOIN instructions_revisions AS r
    ON
        l.name = r.name
        AND l.revision = r.revision
INNER JOIN instructions AS i
    ON
        r.name = i.name
        AND r.created = i.created
WHERE
    l.name = :name::TEXT
    AND l.label = :label::TEXT;

-- name: instructions_numbered(name, revision)^
-- One revision of one name by its number (two primary key lookups).
SELECT
    i.name,
    i.description,
    i.content,
    i.arguments,
    i.meta,
    i.created,
    r.revision,
    r.message,
    r.author,
    r.kind,
    r.config
FROM instructions_revisions AS r
INNER JOIN instructions AS i
    ON
        r.name = i.name
        AND r.created = i.created
WHERE
    r.name = :name::TEXT
    AND r.revision = :revision::INTEGER;

-- name: instructions_history_numbered(name)
-- Every revision of one name with its number, newest first (the name's range of instructions_pkey,
-- then instructions_revisions_created_key per row).
SELECT
    i.name,
    i.description,
    i.content,
    i.arguments,
    i.meta,
    i.created,
    r.revision,
    r.message,
    r.author,
    r.kind,
    r.config
FROM instructions AS i
LEFT JOIN instructions_revisions AS r
    ON
        i.name = r.name
        AND i.created = r.created
WHERE i.name = :name::TEXT
ORDER BY i.created DESC;

-- name: instructions_number(name, created, why, labels, kind, config)^
-- After instructions_insert in define's transaction: numbers the revisions of one name stored
-- after its last numbered one (the new one, and any another writer stored since), gives the new
-- one (created) its message, author, kind and config, and points the given labels at it with a
-- move each. instructions_revisions_pkey backward, the name's range of instructions_pkey after
-- it, instructions_labels_pkey per label.
WITH last_numbered AS (
    SELECT
        r.revision,
        r.created
    FROM instructions_revisions AS r
    WHERE r.name = :name::TEXT
    ORDER BY r.revision DESC
    LIMIT 1
),

numbered AS (
    SELECT
        coalesce((SELECT ln.revision FROM last_numbered AS ln), 0) AS revision,
        coalesce(
            (SELECT ln.created FROM last_numbered AS ln), '-infinity'::TIMESTAMPTZ
        ) AS created
),

stored AS (
    INSERT INTO instructions_revisions (
        name, revision, created, message, author, kind, config
    )
    SELECT
        i.name,
        numbered.revision + pg_catalog.row_number() OVER (ORDER BY i.created) AS revision,
        i.created,
        CASE WHEN i.created = :created::TIMESTAMPTZ THEN :why::TEXT END AS message,
        CASE WHEN i.created = :created::TIMESTAMPTZ THEN CURRENT_USER END AS author,
        CASE
            WHEN i.created = :created::TIMESTAMPTZ THEN :kind::TEXT ELSE 'text'::TEXT
        END AS kind,
        CASE WHEN i.created = :created::TIMESTAMPTZ THEN :config::JSONB END AS config
    FROM instructions AS i
    CROSS JOIN numbered
    WHERE
        i.name = :name::TEXT
        AND i.created > numbered.created
    RETURNING revision, created, author
),

defined AS (
    SELECT
        s.revision,
        s.created,
        s.author
    FROM stored AS s
    WHERE s.created = :created::TIMESTAMPTZ
),

previous AS (
    SELECT
        l.label,
        l.revision
    FROM instructions_labels AS l
    WHERE
        l.name = :name::TEXT
        AND l.label = ANY(:labels::TEXT[])
),

labelled AS (
    INSERT INTO instructions_labels AS l (name, label, revision, moved)
    SELECT
        :name::TEXT AS name,
        given.label,
        defined.revision,
        defined.created
    FROM pg_catalog.unnest(:labels::TEXT[]) AS given (label)
    CROSS JOIN defined
    ON CONFLICT (name, label) DO UPDATE
        SET
            revision = excluded.revision,
            moved = excluded.moved
    RETURNING l.label
),

moves AS (
    INSERT INTO instructions_label_moves (
        name, label, moved, from_revision, to_revision, moved_by
    )
    SELECT
        :name::TEXT AS name,
        given.label,
        defined.created AS moved,
        previous.revision AS from_revision,
        defined.revision AS to_revision,
        CURRENT_USER AS moved_by
    FROM pg_catalog.unnest(:labels::TEXT[]) AS given (label)
    CROSS JOIN defined
    LEFT JOIN previous ON given.label = previous.label
    RETURNING label
)

SELECT
    defined.revision,
    defined.created,
    defined.author,
    (SELECT pg_catalog.count(*) FROM labelled) AS labelled,
    (SELECT pg_catalog.count(*) FROM moves) AS moves
FROM defined;

-- name: instructions_label_current(name, label)$
-- The revision one label of one name points at, or NULL (instructions_labels_pkey).
SELECT l.revision
FROM instructions_labels AS l
WHERE
    l.name = :name::TEXT
    AND l.label = :label::TEXT;

-- name: instructions_revision_exists(name, revision)$
-- Whether one numbered revision of one name is stored (two primary key lookups).
SELECT EXISTS(
    SELECT
    FROM instructions_revisions AS r
    INNER JOIN instructions AS i
        ON
            r.name = i.name
            AND r.created = i.created
    WHERE
        r.name = :name::TEXT
        AND r.revision = :revision::INTEGER
) AS stored;

-- name: instructions_label_move(name, label, revision, undoes)^
-- Points one label of one name at a revision (NULL: removes it) and records the move (stamped
-- after the label's last), then NOTIFYs the name. instructions_labels_pkey,
-- instructions_label_moves_pkey backward.
WITH previous AS (
    SELECT l.revision
    FROM instructions_labels AS l
    WHERE
        l.name = :name::TEXT
        AND l.label = :label::TEXT
),

stamp AS (
    SELECT
        greatest(
            pg_catalog.clock_timestamp(),
            pg_catalog.max(m.moved) + INTERVAL '1 microsecond'
        ) AS moved
    FROM instructions_label_moves AS m
    WHERE
        m.name = :name::TEXT
        AND m.label = :label::TEXT
),

pointed AS (
    INSERT INTO instructions_labels AS l (name, label, revision, moved)
    SELECT
        :name::TEXT AS name,
        :label::TEXT AS label,
        :revision::INTEGER AS revision,
        stamp.moved
    FROM stamp
    WHERE :revision::INTEGER IS NOT NULL
    ON CONFLICT (name, label) DO UPDATE
        SET
            revision = excluded.revision,
            moved = excluded.moved
    RETURNING l.label
),

unset AS (
    DELETE FROM instructions_labels AS l
    WHERE
        l.name = :name::TEXT
        AND l.label = :label::TEXT
        AND :revision::INTEGER IS NULL
    RETURNING l.label
),

recorded AS (
    INSERT INTO instructions_label_moves (
        name, label, moved, from_revision, to_revision, moved_by, undoes
    )
    SELECT
        :name::TEXT AS name,
        :label::TEXT AS label,
        stamp.moved,
        (SELECT p.revision FROM previous AS p) AS from_revision,
        :revision::INTEGER AS to_revision,
        CURRENT_USER AS moved_by,
        :undoes::TIMESTAMPTZ AS undoes
    FROM stamp
    RETURNING moved, moved_by
)

SELECT
    recorded.moved,
    recorded.moved_by,
    (SELECT pg_catalog.count(*) FROM pointed) + (SELECT pg_catalog.count(*) FROM unset) AS changed,
    pg_catalog.pg_notify(
        'pgstash_documents'::TEXT,
        pg_catalog.json_build_object(
            'store'::TEXT, 'instructions'::TEXT,
            'key'::TEXT,
            CASE WHEN pg_catalog.octet_length(:name::TEXT) <= 7000 THEN :name::TEXT END
        )::TEXT
    ) AS notified
FROM recorded;

-- name: instructions_label_last_move(name, label)^
-- The newest move of one label that changed it, is not itself a rollback and no rollback has
-- undone: what rollback undoes (instructions_label_moves_pkey backward; the undone ones by the
-- same key).
SELECT
    m.moved,
    m.from_revision,
    m.to_revision
FROM instructions_label_moves AS m
WHERE
    m.name = :name::TEXT
    AND m.label = :label::TEXT
    AND m.undoes IS NULL
    AND m.from_revision IS DISTINCT FROM m.to_revision
    AND NOT EXISTS (
        SELECT
        FROM instructions_label_moves AS u
        WHERE
            u.name = m.name
            AND u.label = m.label
            AND u.undoes = m.moved
    )
ORDER BY m.moved DESC
LIMIT 1;

-- name: instructions_label_history(name, label)
-- Every move of one label of one name, newest first (instructions_label_moves_pkey backward).
SELECT
    m.label,
    m.moved,
    m.from_revision,
    m.to_revision,
    m.moved_by,
    m.undoes
FROM instructions_label_moves AS m
WHERE
    m.name = :name::TEXT
    AND m.label = :label::TEXT
ORDER BY m.moved DESC;

-- name: instructions_latest_history(name)
-- The moves of latest: each numbered revision moved it from the one before (the name's range of
-- instructions_revisions_pkey).
SELECT
    r.created AS moved,
    r.revision AS to_revision,
    'latest'::TEXT AS label,
    NULL::TIMESTAMPTZ AS undoes,
    pg_catalog.lag(r.revision) OVER (ORDER BY r.revision) AS from_revision,
    coalesce(r.author, '') AS moved_by
FROM instructions_revisions AS r
WHERE r.name = :name::TEXT
ORDER BY r.revision DESC;

-- name: instructions_labels_of(name)
-- Every label of one name and its revision, latest first (the newest revision through
-- instructions_pkey backward; the others by the name's range of instructions_labels_pkey).
(
    SELECT
        'latest'::TEXT AS label,
        r.revision
    FROM instructions AS i
    LEFT JOIN instructions_revisions AS r
        ON
            i.name = r.name
            AND i.created = r.created
    WHERE i.name = :name::TEXT
    ORDER BY i.created DESC
    LIMIT 1
)
UNION ALL
(
    SELECT
        l.label,
        l.revision
    FROM instructions_labels AS l
    WHERE l.name = :name::TEXT
    ORDER BY l.label
);

-- name: instructions_labelled_declarations(label)
-- The declaration each name's label points at, in name order: the label's rows
-- (instructions_labels_label_idx, in name order), then per row two primary key lookups (the
-- LIMIT 1 keeps them lookups: a label points at one revision).
SELECT
    pointed.name,
    pointed.description,
    pointed.arguments,
    pointed.meta
FROM instructions_labels AS l
CROSS JOIN
    LATERAL (
        SELECT
            i.name,
            i.description,
            i.arguments,
            i.meta
        FROM instructions_revisions AS r
        INNER JOIN instructions AS i
            ON
                r.name = i.name
                AND r.created = i.created
        WHERE
            r.name = l.name
            AND r.revision = l.revision
        ORDER BY r.revision
        LIMIT 1
    ) AS pointed
WHERE l.label = :label::TEXT
ORDER BY l.label, l.name;

-- name: instructions_remove_labelled(name)$
-- Deletes every revision of one name with its numbers, labels and moves (each table's primary
-- key range) and NOTIFYs it; the count of revisions deleted.
WITH numbers AS (
    DELETE FROM instructions_revisions
    WHERE name = :name::TEXT
    RETURNING revision
),

labels AS (
    DELETE FROM instructions_labels
    WHERE name = :name::TEXT
    RETURNING label
),

moves AS (
    DELETE FROM instructions_label_moves
    WHERE name = :name::TEXT
    RETURNING moved
),

removed AS (
    DELETE FROM instructions
    WHERE name = :name::TEXT
    RETURNING created
)

SELECT
    (SELECT pg_catalog.count(*) FROM removed) AS removed,
    (SELECT pg_catalog.count(*) FROM numbers)
    + (SELECT pg_catalog.count(*) FROM labels)
    + (SELECT pg_catalog.count(*) FROM moves) AS forgotten,
    pg_catalog.pg_notify(
        'pgstash_documents'::TEXT,
        pg_catalog.json_build_object(
            'store'::TEXT, 'instructions'::TEXT,
            'key'::TEXT,
            CASE WHEN pg_catalog.octet_length(:name::TEXT) <= 7000 THEN :name::TEXT END
        )::TEXT
    ) AS notified;

-- name: instructions_prune_labelled(keep, older_than)$
-- instructions_prune, never deleting a revision a label points at (instructions_labels_pkey per
-- candidate); the numbers of pruned revisions stay in instructions_revisions, never reused.
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
        AND NOT EXISTS (
            SELECT
            FROM instructions_labels AS l
            INNER JOIN instructions_revisions AS r
                ON
                    l.name = r.name
                    AND l.revision = r.revision
            WHERE
                r.name = i.name
                AND r.created = i.created
        )
    RETURNING i.created
)

SELECT pg_catalog.count(*) AS pruned
FROM pruned;
