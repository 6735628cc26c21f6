-- Payload filters of the vector index: one fragment per AttributeRequirement operator.
-- A fragment is a boolean SQL expression, never run alone: pgstash.filters splices it (in
-- parentheses) where a statement says {requirements}, and the and/or/not fragments take other
-- fragments at their {lhs}, {rhs} and {operand} points. Words in braces are splice points;
-- :words are bound parameters, numbered $n by pgstash.composer.
-- Parameters: :path is the field's key path (TEXT[]); :parents the JSON object that holds the
-- path's parent keys as nested objects, so that a path only walks objects; :document the
-- containment probe ({"a": {"b": value}}) and :documents one probe per candidate (JSONB[]);
-- values are JSONB. Every fragment is TRUE or FALSE, never NULL, so NOT of one on a missing field
-- matches. tests/test_queries.py lints each one with sqlfluff as `SELECT 1 WHERE <fragment>;`.

-- fragment: filter_everything()
-- No requirement: every row.
TRUE

-- fragment: filter_equal(document, path, value)
-- The field equals the value as JSON: containment (GIN on payload), then an exact recheck.
payload @> :document::JSONB
AND coalesce(payload #> :path::TEXT[] = :value::JSONB, FALSE)

-- fragment: filter_not_equal(parents, path, value)
-- The field is present and differs from the value as JSON (no index: a negation).
coalesce(
    payload @> :parents::JSONB AND payload #> :path::TEXT[] <> :value::JSONB,
    FALSE
)

-- fragment: filter_greater(parents, path, value)
-- The field is a number above the value, or a string after it by code point (sequential filter).
coalesce(
    payload @> :parents::JSONB
    AND pg_catalog.jsonb_typeof(payload #> :path::TEXT[])
    = pg_catalog.jsonb_typeof(:value::JSONB)
    AND CASE pg_catalog.jsonb_typeof(:value::JSONB)
        WHEN 'string'::TEXT
            THEN
                (payload #>> :path::TEXT[]) COLLATE "C"
                > (:value::JSONB #>> '{}'::TEXT[]) COLLATE "C"
        ELSE payload #> :path::TEXT[] > :value::JSONB
    END,
    FALSE
)

-- fragment: filter_greater_or_equal(parents, path, value)
-- The field is a number at or above the value, or a string at or after it by code point.
coalesce(
    payload @> :parents::JSONB
    AND pg_catalog.jsonb_typeof(payload #> :path::TEXT[])
    = pg_catalog.jsonb_typeof(:value::JSONB)
    AND CASE pg_catalog.jsonb_typeof(:value::JSONB)
        WHEN 'string'::TEXT
            THEN
                (payload #>> :path::TEXT[]) COLLATE "C"
                >= (:value::JSONB #>> '{}'::TEXT[]) COLLATE "C"
        ELSE payload #> :path::TEXT[] >= :value::JSONB
    END,
    FALSE
)

-- fragment: filter_less(parents, path, value)
-- The field is a number below the value, or a string before it by code point.
coalesce(
    payload @> :parents::JSONB
    AND pg_catalog.jsonb_typeof(payload #> :path::TEXT[])
    = pg_catalog.jsonb_typeof(:value::JSONB)
    AND CASE pg_catalog.jsonb_typeof(:value::JSONB)
        WHEN 'string'::TEXT
            THEN
                (payload #>> :path::TEXT[]) COLLATE "C"
                < (:value::JSONB #>> '{}'::TEXT[]) COLLATE "C"
        ELSE payload #> :path::TEXT[] < :value::JSONB
    END,
    FALSE
)

-- fragment: filter_less_or_equal(parents, path, value)
-- The field is a number at or below the value, or a string at or before it by code point.
coalesce(
    payload @> :parents::JSONB
    AND pg_catalog.jsonb_typeof(payload #> :path::TEXT[])
    = pg_catalog.jsonb_typeof(:value::JSONB)
    AND CASE pg_catalog.jsonb_typeof(:value::JSONB)
        WHEN 'string'::TEXT
            THEN
                (payload #>> :path::TEXT[]) COLLATE "C"
                <= (:value::JSONB #>> '{}'::TEXT[]) COLLATE "C"
        ELSE payload #> :path::TEXT[] <= :value::JSONB
    END,
    FALSE
)

-- fragment: filter_contained_in(documents, path, candidates)
-- The field equals one of the values (a JSON array) as JSON: containment of any one probe (GIN
-- on payload, a bitmap scan per probe), then an exact recheck against the values.
payload @> ANY(:documents::JSONB[])
AND coalesce(
    payload #> :path::TEXT[] IN (SELECT pg_catalog.jsonb_array_elements(:candidates::JSONB)),
    FALSE
)

-- fragment: filter_contains(document, path, value)
-- The field is an array holding the value: containment (GIN on payload), then an exact recheck.
payload @> :document::JSONB
AND coalesce(
    :value::JSONB IN (
        SELECT pg_catalog.jsonb_array_elements(
            CASE
                WHEN pg_catalog.jsonb_typeof(payload #> :path::TEXT[]) = 'array'::TEXT
                    THEN payload #> :path::TEXT[]
                ELSE '[]'::JSONB
            END
        )
    ),
    FALSE
)

-- fragment: filter_contains_any(documents, path, candidates)
-- The field is an array holding at least one of the values (a JSON array): containment of any
-- one probe (GIN on payload, a bitmap scan per probe), then an exact recheck against the values.
payload @> ANY(:documents::JSONB[])
AND coalesce(
    EXISTS (
        SELECT 1
        FROM
            pg_catalog.jsonb_array_elements(
                CASE
                    WHEN pg_catalog.jsonb_typeof(payload #> :path::TEXT[]) = 'array'::TEXT
                        THEN payload #> :path::TEXT[]
                    ELSE '[]'::JSONB
                END
            ) AS element
        WHERE element IN (SELECT pg_catalog.jsonb_array_elements(:candidates::JSONB))
    ),
    FALSE
)

-- fragment: filter_text_match(parents, path, pattern)
-- The field is a string holding the text, ignoring case (the bound pattern escapes % and _).
coalesce(
    payload @> :parents::JSONB
    AND pg_catalog.jsonb_typeof(payload #> :path::TEXT[]) = 'string'::TEXT
    AND (payload #>> :path::TEXT[]) ILIKE :pattern::TEXT ESCAPE '\',
    FALSE
)

-- fragment: filter_text_words(parents, path, patterns)
-- The field is a string matching every bound whole-word pattern, ignoring case (sequential filter).
coalesce(
    payload @> :parents::JSONB
    AND pg_catalog.jsonb_typeof(payload #> :path::TEXT[]) = 'string'::TEXT
    AND pg_catalog.normalize(payload #>> :path::TEXT[], 'NFC'::TEXT) ~* ALL(:patterns::TEXT[]),
    FALSE
)

-- fragment: filter_exists(parents, path)
-- The key is present, even when its value is JSON null (sequential filter).
coalesce(
    payload @> :parents::JSONB AND payload #> :path::TEXT[] IS NOT NULL,
    FALSE
)

-- Indexed payload fields (create_table(..., indexed=...)): a comparison on a path that has a
-- generated column ({field_column}, of the field's type or NULL) reads the column, so its B-tree
-- serves it. {field_type} is the column's type from an allow-list (numeric, text, bool,
-- timestamptz). Each is TRUE or FALSE, never NULL: a NULL column (missing field, JSON null,
-- another type) matches no comparison, as in the JSONB fragments above.

-- fragment: filter_column_equal(value)
-- The field equals the value (B-tree on the field's column).
{field_column} = :value::{field_type} AND {field_column} IS NOT NULL

-- fragment: filter_column_not_equal(path, value)
-- The field is present and differs from the value: another value of its type, or JSON null or a
-- value of another type (the column NULL, the key present).
coalesce(
    {field_column} <> :value::{field_type},
    {field_column} IS NULL AND payload #> :path::TEXT[] IS NOT NULL
)

-- fragment: filter_column_greater(value)
-- The field is above the value (B-tree range on the field's column).
{field_column} > :value::{field_type} AND {field_column} IS NOT NULL

-- fragment: filter_column_greater_or_equal(value)
-- The field is at or above the value (B-tree range on the field's column).
{field_column} >= :value::{field_type} AND {field_column} IS NOT NULL

-- fragment: filter_column_less(value)
-- The field is below the value (B-tree range on the field's column).
{field_column} < :value::{field_type} AND {field_column} IS NOT NULL

-- fragment: filter_column_less_or_equal(value)
-- The field is at or below the value (B-tree range on the field's column).
{field_column} <= :value::{field_type} AND {field_column} IS NOT NULL

-- fragment: filter_and()
-- Both requirements hold (each splice point takes a fragment, in parentheses).
{lhs} AND {rhs}

-- fragment: filter_or()
-- Either requirement holds (each splice point takes a fragment, in parentheses).
{lhs} OR {rhs}

-- fragment: filter_not()
-- The requirement does not hold (the splice point takes a fragment, in parentheses).
NOT {operand}

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
-- whole table (pgstash.vectors.planning). Not a filter but a fragment like them, so it lives here.
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
