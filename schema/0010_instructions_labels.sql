-- Instructions v2 (issue 27): a number per revision of a name, labels that point at a revision,
-- and every move of a label as a row. The seed's instructions table is not altered: this
-- migration only reads it (ACCESS SHARE, taken by the numbering below), so defines, loads and
-- removes keep running while it applies. Three new tables, each with a primary key (hence a
-- replica identity for logical replication).

-- One row per revision pgstash numbered: (name, created) is the instructions row. revision counts
-- 1, 2, 3, ... per name in commit order and is never reused (prune keeps the numbering; a row
-- another writer inserts is numbered by the next define of its name). kind 'chat': content holds
-- the messages as JSON. config: the typed settings stored with the revision.
CREATE TABLE IF NOT EXISTS instructions_revisions (
    name TEXT NOT NULL,
    revision INTEGER NOT NULL,
    created TIMESTAMPTZ NOT NULL,
    message TEXT DEFAULT NULL,
    author TEXT DEFAULT NULL,
    kind TEXT NOT NULL DEFAULT 'text',
    config JSONB DEFAULT NULL,
    PRIMARY KEY (name, revision),
    CONSTRAINT instructions_revisions_created_key UNIQUE (name, created),
    CONSTRAINT instructions_revisions_kind_check CHECK (kind IN ('text', 'chat'))
);

-- Where each label of a name points now. latest is not stored: it is always the newest revision.
CREATE TABLE IF NOT EXISTS instructions_labels (
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    revision INTEGER NOT NULL,
    moved TIMESTAMPTZ NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    PRIMARY KEY (name, label)
);

-- available_instructions(label=): every name carrying one label, in name order.
CREATE INDEX IF NOT EXISTS instructions_labels_label_idx
ON instructions_labels (label, name);

-- Every move of a label: from_revision NULL when the label was set, to_revision NULL when it was
-- removed; undoes is the moved stamp of the move a rollback undid (NULL for any other move).
CREATE TABLE IF NOT EXISTS instructions_label_moves (
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    moved TIMESTAMPTZ NOT NULL,
    from_revision INTEGER DEFAULT NULL,
    to_revision INTEGER DEFAULT NULL,
    moved_by TEXT NOT NULL,
    undoes TIMESTAMPTZ DEFAULT NULL,
    PRIMARY KEY (name, label, moved)
);

-- The revisions stored so far, numbered by their order within each name (read in primary key
-- order: no sort).
INSERT INTO instructions_revisions (name, revision, created)
SELECT
    i.name,
    pg_catalog.row_number() OVER (PARTITION BY i.name ORDER BY i.created) AS revision,
    i.created
FROM instructions AS i
ON CONFLICT DO NOTHING;
