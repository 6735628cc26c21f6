-- name: replica_commit_lsn()$
-- The primary's WAL insert position in bytes, read right after a commit and by the
-- cache listener after a notification (read-your-writes on replicas; no table). Not
-- pg_current_wal_lsn(), the write position: under synchronous_commit = off a commit returns
-- before its record is written, so that can still precede it.
SELECT (pg_catalog.pg_current_wal_insert_lsn() - '0/0'::PG_LSN)::BIGINT AS lsn;

-- name: replica_state()^
-- A standby's routing facts: in recovery, and the WAL positions in bytes it has
-- received and replayed (no table).
SELECT
    pg_is_in_recovery() AS in_recovery,
    (pg_last_wal_receive_lsn() - '0/0'::PG_LSN)::BIGINT AS received,
    (pg_last_wal_replay_lsn() - '0/0'::PG_LSN)::BIGINT AS replayed;

-- name: replica_replayed()$
-- The WAL position in bytes a standby has replayed, polled while a read waits for it (no table).
SELECT (pg_last_wal_replay_lsn() - '0/0'::PG_LSN)::BIGINT AS replayed;
