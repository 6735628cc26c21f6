-- name: replica_commit_lsn()$
-- The primary's WAL write position in bytes, read right after a commit
-- (read-your-writes on replicas; no table).
SELECT (pg_current_wal_lsn() - '0/0'::PG_LSN)::BIGINT AS lsn;

-- name: replica_state()^
-- A standby's routing facts: in recovery, replayed WAL position in bytes,
-- replay lag in seconds (no table).
SELECT
    pg_is_in_recovery() AS in_recovery,
    (pg_last_wal_replay_lsn() - '0/0'::PG_LSN)::BIGINT AS replayed,
    (CASE
        WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0.0
        ELSE coalesce(extract(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0.0)
    END)::FLOAT8 AS lag;

-- name: replica_replayed()$
-- The WAL position in bytes a standby has replayed, polled while a read waits for it (no table).
SELECT (pg_last_wal_replay_lsn() - '0/0'::PG_LSN)::BIGINT AS replayed;
