-- The configuration's type name beside each snapshot (issue 23): frameworks list configurations
-- by type (draive's newest `ConfigurationRepository.configurations(config)`, haiway's own
-- `configurations.name`). Nullable: rows written by the seed's adapter, and mappings defined
-- without a kind, have none. An existing `name` column (haiway's table) is kept as it is.
ALTER TABLE configurations
ADD COLUMN IF NOT EXISTS name TEXT;

-- configurations(kind=...): the identifiers of one type name, in order, from the index alone.
CREATE INDEX IF NOT EXISTS configurations_name_identifier_idx
ON configurations (name, identifier)
WHERE name IS NOT NULL;
