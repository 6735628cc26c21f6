-- Conversational memory, verbatim from the seed, plus the indexes recall needs.
CREATE TABLE IF NOT EXISTS memories (
    identifier TEXT NOT NULL,
    created TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (identifier)
);

CREATE TABLE IF NOT EXISTS memories_variables (
    identifier TEXT NOT NULL REFERENCES memories (identifier) ON DELETE CASCADE,
    variables JSONB NOT NULL DEFAULT '{}'::JSONB,
    created TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS memories_elements (
    identifier TEXT NOT NULL REFERENCES memories (identifier) ON DELETE CASCADE,
    content JSONB NOT NULL,
    created TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- recall: the last N elements of one memory, newest first, then reversed.
CREATE INDEX IF NOT EXISTS memories_elements_identifier_created_idx
ON memories_elements (identifier, created DESC);

-- recall: the newest variables snapshot of one memory.
CREATE INDEX IF NOT EXISTS memories_variables_identifier_created_idx
ON memories_variables (identifier, created DESC);
