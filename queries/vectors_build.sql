-- Bulk ingest into vector tables with an ANN index, and explicit index builds
-- (src/pgstash/vectors/bulk.py, builds.py). {table}, {index} and {new_name} are validated, quoted
-- identifiers; {opclass} is vector_cosine_ops or halfvec_cosine_ops (the existing index's, or the
-- embedding column's type's, read from the catalog and checked against that allow-list); {m},
-- {ef_construction} and {lists} are positive integers (DDL takes them as text, never as
-- parameters).

-- name: vectors_ann_indexes(table_name, most)
-- The table's row count up to :most (the ingest rule only asks whether the table holds a few times
-- the batch; a capped count costs at most that), and each HNSW or IVFFlat index on it: method,
-- opclass, options, and whether pgstash can rebuild it from its own templates (on embedding, a
-- cosine opclass, no predicate or expression), with the embedding column's type (vector or
-- halfvec: the opclass of an index built where there was none). One row with a NULL index_name
-- when there is none.
WITH ann AS (
    SELECT
        ic.relname AS index_name,
        am.amname AS method,
        oc.opcname AS opclass,
        coalesce(ic.reloptions, '{}') AS options,
        (
            i.indnatts = 1
            AND i.indisvalid
            AND i.indpred IS NULL
            AND i.indexprs IS NULL
            AND a.attname = 'embedding'
            AND oc.opcname IN ('vector_cosine_ops', 'halfvec_cosine_ops')
        ) AS rebuildable
    FROM pg_catalog.pg_index AS i
    INNER JOIN pg_catalog.pg_class AS ic ON i.indexrelid = ic.oid
    INNER JOIN pg_catalog.pg_am AS am ON ic.relam = am.oid
    INNER JOIN pg_catalog.pg_opclass AS oc ON i.indclass[0] = oc.oid
    LEFT JOIN
        pg_catalog.pg_attribute AS a
        ON i.indrelid = a.attrelid AND i.indkey[0] = a.attnum
    WHERE
        i.indrelid = pg_catalog.to_regclass(pg_catalog.quote_ident(:table_name))
        AND i.indisready
        AND am.amname IN ('hnsw', 'ivfflat')
),

counted AS (
    SELECT pg_catalog.count(*) AS row_count
    FROM (SELECT FROM {table} LIMIT :most) AS capped -- noqa: AM09
),

column_type AS (
    SELECT t.typname::TEXT AS embedding_type
    FROM pg_catalog.pg_attribute AS a
    INNER JOIN pg_catalog.pg_type AS t ON a.atttypid = t.oid
    WHERE
        a.attrelid = pg_catalog.to_regclass(pg_catalog.quote_ident(:table_name))
        AND a.attname = 'embedding'
        AND NOT a.attisdropped
)

SELECT
    counted.row_count,
    column_type.embedding_type,
    ann.index_name,
    ann.method,
    ann.opclass,
    ann.options,
    ann.rebuildable
FROM counted
LEFT JOIN column_type ON TRUE
LEFT JOIN ann ON TRUE
ORDER BY ann.index_name;

-- name: vectors_build_limits()^
-- The server's build settings and limits, in kB and workers: what one build may raise and to where.
SELECT
    pg_catalog.max(s.setting::BIGINT) FILTER (
        WHERE s.name = 'maintenance_work_mem'
    ) AS maintenance_work_mem_kb,
    pg_catalog.max(s.setting::INTEGER) FILTER (
        WHERE s.name = 'max_parallel_maintenance_workers'
    ) AS max_parallel_maintenance_workers,
    pg_catalog.max(s.setting::INTEGER) FILTER (
        WHERE s.name = 'max_parallel_workers'
    ) AS max_parallel_workers,
    pg_catalog.max(s.setting::INTEGER) FILTER (
        WHERE s.name = 'max_worker_processes'
    ) AS max_worker_processes
FROM pg_catalog.pg_settings AS s
WHERE
    s.name IN (
        'maintenance_work_mem',
        'max_parallel_maintenance_workers',
        'max_parallel_workers',
        'max_worker_processes'
    );

-- name: vectors_build_settings(memory_kb, workers, local)$
-- Sets one build's maintenance_work_mem and parallel maintenance workers: transaction-local
-- (local true, inside the ingest transaction) or for the session (CREATE INDEX CONCURRENTLY
-- runs outside a transaction block; the connection is reset when it goes back to the pool).
SELECT pg_catalog.concat_ws(
    ', ',
    pg_catalog.set_config('maintenance_work_mem', :memory_kb::BIGINT || 'kB', :local::BOOLEAN),
    pg_catalog.set_config(
        'max_parallel_maintenance_workers', :workers::INTEGER::TEXT, :local::BOOLEAN
    )
);

-- name: vectors_build_hnsw()!
-- Builds the HNSW index from the rows already there, inside the ingest transaction (a SHARE lock:
-- writers wait, readers do not and plan without it until commit).
CREATE INDEX IF NOT EXISTS {index}
ON {table} USING hnsw (embedding {opclass})
WITH (m = {m}, ef_construction = {ef_construction});

-- name: vectors_build_ivfflat()!
-- Builds the IVFFlat index from the rows already there, lists chosen from the row count.
CREATE INDEX IF NOT EXISTS {index}
ON {table} USING ivfflat (embedding {opclass})
WITH (lists = {lists});

-- name: vectors_build_hnsw_concurrently()!
-- build_index: a new HNSW index without blocking reads or writes (two table scans, slower).
CREATE INDEX CONCURRENTLY IF NOT EXISTS {index}
ON {table} USING hnsw (embedding {opclass})
WITH (m = {m}, ef_construction = {ef_construction});

-- name: vectors_build_ivfflat_concurrently()!
-- build_index: a new IVFFlat index (lists from the row count) without blocking reads or writes.
CREATE INDEX CONCURRENTLY IF NOT EXISTS {index}
ON {table} USING ivfflat (embedding {opclass})
WITH (lists = {lists});

-- name: vectors_rename_index()!
-- Gives the concurrently built replacement the old index's name once the old one is dropped.
ALTER INDEX {index} RENAME TO {new_name};

-- name: vectors_build_progress(table_name)^
-- The table's index build as pg_stat_progress_create_index shows it to a second connection:
-- phase, heap blocks and tuples done (HNSW reports tuples_done; tuples_total stays 0).
SELECT
    p.command,
    p.phase,
    p.blocks_done,
    p.blocks_total,
    p.tuples_done,
    p.tuples_total,
    p.lockers_done,
    p.lockers_total
FROM pg_catalog.pg_stat_progress_create_index AS p
WHERE p.relid = pg_catalog.to_regclass(pg_catalog.quote_ident(:table_name));

-- name: vectors_bulk_lock()!
-- A bulk load's two transactions (the index drop, then the load) start here: one bulk load (or
-- keyed ingest) into a table at a time, and a second load waits before it drops anything. Two
-- loads whose COPYs overlapped would each hold ROW EXCLUSIVE and then wait for the other's
-- before their CREATE INDEX (SHARE): a deadlock. The lock of vectors_keys_lock (the table's own
-- SHARE UPDATE EXCLUSIVE, which a role without write privileges cannot take), taken with
-- lock_timeout lifted by vectors_lock_wait: a load waits for the loads before it to commit.
LOCK TABLE {table} IN SHARE UPDATE EXCLUSIVE MODE;

-- name: vectors_lock_wait(lock_timeout)$
-- Sets lock_timeout for the rest of the transaction and returns the value it had: '0' before a
-- bulk load's vectors_bulk_lock, then the caller's value back.
WITH before AS MATERIALIZED (
    SELECT pg_catalog.current_setting('lock_timeout') AS lock_timeout
)

SELECT
    before.lock_timeout,
    pg_catalog.set_config('lock_timeout', :lock_timeout::TEXT, TRUE) AS now_set
FROM before;

-- name: vectors_drop_index()!
-- The bulk load's first, short transaction: drops an ANN index (ACCESS EXCLUSIVE from here to
-- the commit right after; lock_timeout bounds how long searches queue behind the wait).
DROP INDEX IF EXISTS {index};

-- name: vectors_comment_dropped()!
-- Records, in the drop's own transaction, the ANN indexes a bulk load dropped ({comment}: JSON of
-- their definitions, a checked constant): the load's commit clears it; a load that never
-- committed (client or server killed) leaves it for index(), create_table, build_index and
-- `pgstash status` to find and the next of the three to rebuild.
COMMENT ON TABLE {table} IS {comment};

-- name: vectors_drop_index_concurrently()!
-- build_index: drops the replaced index without blocking readers or writers (it waits for the
-- transactions using it); never inside a transaction block.
DROP INDEX CONCURRENTLY IF EXISTS {index};

-- name: vectors_comment_clear()!
-- The table's comment goes, in the transaction that built what it recorded: the IVFFlat index
-- create_table noted, or the ANN indexes a bulk load dropped (vectors_comment_dropped).
COMMENT ON TABLE {table} IS NULL;

-- name: vectors_bulk_lock_nowait()!
-- Whether a bulk load holds the table (then it is not to be repaired: its commit clears the
-- record of its drop): the bulk lock taken without waiting, released at once (55P03 when held).
LOCK TABLE {table} IN SHARE UPDATE EXCLUSIVE MODE NOWAIT;
