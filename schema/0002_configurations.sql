-- Versioned configuration snapshots, verbatim from the seed.
-- The primary key (identifier, created) serves the newest-snapshot lookup:
-- an index scan backwards over one identifier, limit 1.
CREATE TABLE IF NOT EXISTS configurations (
    identifier TEXT NOT NULL,
    content JSONB NOT NULL,
    created TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (identifier, created)
);
