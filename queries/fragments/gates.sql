-- Gates: fragments that wrap a search's requirements ({requirements}, the payload filters of
-- filters.sql composed) with what the search must do before its index scan starts. Never run
-- alone: spliced by pgstash.vectors.planning where a statement says {requirements}; :words are
-- bound parameters, numbered $n by pgstash.composer. tests/test_queries.py lints each one with
-- sqlfluff as `SELECT 1 WHERE <fragment>;`.

-- fragment: vectors_scan_gate(iterative, ef_search, probes, max_scan_tuples, custom_plans)
-- A filtered or tuned search's per-call scan settings inside the search statement, then its
-- requirements ({requirements}). :iterative turns pgvector's iterative index scans on for this
-- statement alone (behind a transaction pooler, where no setting travels with the connection). The uncorrelated subquery runs once, as a one-time filter the
-- executor checks before the index scan's first tuple, so hnsw.ef_search, ivfflat.probes and the
-- tuples an iterative HNSW scan may visit apply to that scan; set_config(..., TRUE) lasts the
-- transaction, which outside one is this statement (inside one pgstash wraps it in a rolled-back
-- savepoint). With :custom_plans TRUE a custom plan folds the CASE away, while a generic plan (the
-- values unknown) keeps its ELSE, estimated at 10^12 rows and never run: the server's default
-- plan_cache_mode (auto) then never prefers the generic plan, whose unknown filter can sort the
-- whole table (pgstash.vectors.planning).
(
    SELECT
        pg_catalog.concat_ws(
            ', ',
            CASE
                WHEN :iterative::BOOLEAN
                    THEN
                        pg_catalog.set_config(
                            'hnsw.iterative_scan', 'strict_order', TRUE
                        )
            END,
            CASE
                WHEN :iterative::BOOLEAN
                    THEN
                        pg_catalog.set_config(
                            'ivfflat.iterative_scan', 'relaxed_order', TRUE
                        )
            END,
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
AND CASE
    WHEN :custom_plans::BOOLEAN THEN TRUE
    ELSE (
        SELECT pg_catalog.count(*) > 0
        FROM pg_catalog.generate_series(1::BIGINT, 1000000000000::BIGINT)
    )
END
AND {requirements}

-- fragment: vectors_bound_gate(max_scan_tuples, custom_plans)
-- vectors_scan_gate when the bound on a filtered HNSW walk is its only setting (a filtered search
-- on HNSW outside a transaction pooler, no ef_search or probes given: the common case): the same
-- one-time filter run before the index scan starts, setting hnsw.max_scan_tuples alone, and the
-- same branch only a generic plan keeps. The four CASEs vectors_scan_gate would fold to NULL are
-- not written, so each call's custom plan is made ~10 us sooner (docs/benchmarks.md, "Fourth
-- pass"); the rows and the plan chosen are the same.
(
    SELECT
        pg_catalog.set_config(
            'hnsw.max_scan_tuples', :max_scan_tuples::INTEGER::TEXT, TRUE
        )
) IS NOT NULL
AND CASE
    WHEN :custom_plans::BOOLEAN THEN TRUE
    ELSE (
        SELECT pg_catalog.count(*) > 0
        FROM pg_catalog.generate_series(1::BIGINT, 1000000000000::BIGINT)
    )
END
AND {requirements}

-- fragment: vectors_plans_gate(custom_plans)
-- vectors_scan_gate with nothing to set (a filtered listing, text search, page or delete; a
-- filtered search on IVFFlat outside a pooler): only the branch that a custom plan folds away and
-- a generic plan keeps (estimated at 10^12 rows, never run), so the server keeps planning each
-- call for its values; no one-time filter, which would set nothing.
CASE
    WHEN :custom_plans::BOOLEAN THEN TRUE
    ELSE (
        SELECT pg_catalog.count(*) > 0
        FROM pg_catalog.generate_series(1::BIGINT, 1000000000000::BIGINT)
    )
END
AND {requirements}
