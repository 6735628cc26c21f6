-- Every pgstash table has a primary key, hence a replica identity: with a publication
-- FOR ALL TABLES (logical replication, change-data capture, blue/green upgrades) forget's
-- cascade deletes elements and variables like any other delete.
-- (identifier, created) is unique: remember stamps each element and snapshot of a memory after
-- the memory's newest, one microsecond apart (queries/memory.sql). The primary keys replace the
-- (identifier, created DESC) indexes, which they serve as well (scanned backward).
-- Rows written with equal stamps by another writer make this migration fail (23505) and roll
-- back whole: find them with
-- SELECT identifier, created FROM memories_elements GROUP BY 1, 2 HAVING count(*) > 1.
-- Building each key locks its table (ACCESS EXCLUSIVE): 1.8 s for 1,000,000 elements here.
ALTER TABLE memories_elements
ADD CONSTRAINT memories_elements_pkey PRIMARY KEY (identifier, created);

DROP INDEX IF EXISTS memories_elements_identifier_created_idx;

ALTER TABLE memories_variables
ADD CONSTRAINT memories_variables_pkey PRIMARY KEY (identifier, created);

DROP INDEX IF EXISTS memories_variables_identifier_created_idx;
