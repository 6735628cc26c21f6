-- Scan settings of one vector search inside its own statement (pgstash.vectors.planning): a
-- fragment, spliced in parentheses where vectors_search or vectors_hybrid say {requirements}, that
-- sets the per-call settings and then holds the requirements. The settings pgstash wants on every
-- search (iterative index scans) are set once per connection at connect (asyncpg server_settings,
-- pgstash.connection.pool). Like queries/filters.sql, a file of fragments sqlfluff cannot parse:
-- tests/test_queries.py lints each fragment after a WHERE.

-- fragment: vectors_scan_gate(ef_search, probes, max_scan_tuples)
-- A search's per-call scan settings inside the search statement itself, then its requirements
-- ({requirements}): the uncorrelated subquery runs once, as a one-time filter the executor checks
-- before the index scan's first tuple, so hnsw.ef_search, ivfflat.probes and the tuples an
-- iterative HNSW scan may visit apply to that scan; set_config(..., TRUE) lasts the transaction,
-- which outside one is this statement (inside one pgstash wraps it in a rolled-back savepoint).
(
    SELECT
        pg_catalog.concat_ws(
            ', ',
            CASE
                WHEN :ef_search::INTEGER IS NOT NULL
                    THEN
                        pg_catalog.set_config(
                            'hnsw.ef_search', :ef_search::INTEGER::TEXT, TRUE
                        )
            END,
            CASE
                WHEN :probes::INTEGER IS NOT NULL
                    THEN
                        pg_catalog.set_config(
                            'ivfflat.probes', :probes::INTEGER::TEXT, TRUE
                        )
            END,
            CASE
                WHEN :max_scan_tuples::INTEGER IS NOT NULL
                    THEN
                        pg_catalog.set_config(
                            'hnsw.max_scan_tuples', :max_scan_tuples::INTEGER::TEXT, TRUE
                        )
            END
        )
) IS NOT NULL
AND {requirements}
