-- Versioned instructions (prompt templates), verbatim from the seed.
-- The primary key (name, created) serves the newest-revision lookup.
CREATE TABLE IF NOT EXISTS instructions (
    name TEXT NOT NULL,
    description TEXT DEFAULT NULL,
    content TEXT NOT NULL,
    arguments JSONB NOT NULL DEFAULT '[]'::JSONB,
    meta JSONB NOT NULL DEFAULT '{}'::JSONB,
    created TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (name, created)
);
