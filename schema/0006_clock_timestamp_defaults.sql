-- created defaults to the time of the insert, not of the transaction: two rows another writer
-- inserts for one key in one transaction (two statements) no longer collide on the primary key.
-- pgstash's own writers always stamp created themselves (queries/); the default is for others.
-- Qualified: a default is resolved when it is set, whatever the migrating role's search_path.
ALTER TABLE configurations
ALTER COLUMN created SET DEFAULT pg_catalog.clock_timestamp();

ALTER TABLE instructions
ALTER COLUMN created SET DEFAULT pg_catalog.clock_timestamp();

ALTER TABLE memories
ALTER COLUMN created SET DEFAULT pg_catalog.clock_timestamp();

ALTER TABLE memories_elements
ALTER COLUMN created SET DEFAULT pg_catalog.clock_timestamp();

ALTER TABLE memories_variables
ALTER COLUMN created SET DEFAULT pg_catalog.clock_timestamp();
