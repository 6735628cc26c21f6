-- Payload filters of the vector index: one template per AttributeRequirement operator.
-- pgstash.filters takes the condition after WHERE and composes it, renumbering parameters; the
-- SELECT around it is there so that each template can be prepared and read on its own.
-- Parameters: :path is the field's key path (TEXT[]); :parents the JSON object that holds the
-- path's parent keys as nested objects, so that a path only walks objects; :document the
-- containment probe ({"a": {"b": value}}); values are JSONB. Every condition is TRUE or FALSE,
-- never NULL, so NOT of a condition on a missing field matches.

-- name: filter_everything()
-- No requirement: every row.
SELECT id FROM {table}
WHERE TRUE;

-- name: filter_equal(document, path, value)
-- The field equals the value as JSON: containment (GIN on payload), then an exact recheck.
SELECT id FROM {table}
WHERE
    payload @> :document::JSONB
    AND coalesce(payload #> :path::TEXT[] = :value::JSONB, FALSE);

-- name: filter_not_equal(parents, path, value)
-- The field is present and differs from the value as JSON (no index: a negation).
SELECT id FROM {table}
WHERE coalesce(
    payload @> :parents::JSONB AND payload #> :path::TEXT[] <> :value::JSONB,
    FALSE
);

-- name: filter_greater(parents, path, value)
-- The field is a number above the value, or a string after it by code point (sequential filter).
SELECT id FROM {table}
WHERE coalesce(
    payload @> :parents::JSONB
    AND jsonb_typeof(payload #> :path::TEXT[]) = jsonb_typeof(:value::JSONB)
    AND CASE jsonb_typeof(:value::JSONB)
        WHEN 'string'
            THEN (payload #>> :path::TEXT[]) COLLATE "C" > (:value::JSONB #>> '{}') COLLATE "C"
        ELSE payload #> :path::TEXT[] > :value::JSONB
    END,
    FALSE
);

-- name: filter_greater_or_equal(parents, path, value)
-- The field is a number at or above the value, or a string at or after it by code point.
SELECT id FROM {table}
WHERE coalesce(
    payload @> :parents::JSONB
    AND jsonb_typeof(payload #> :path::TEXT[]) = jsonb_typeof(:value::JSONB)
    AND CASE jsonb_typeof(:value::JSONB)
        WHEN 'string'
            THEN (payload #>> :path::TEXT[]) COLLATE "C" >= (:value::JSONB #>> '{}') COLLATE "C"
        ELSE payload #> :path::TEXT[] >= :value::JSONB
    END,
    FALSE
);

-- name: filter_less(parents, path, value)
-- The field is a number below the value, or a string before it by code point.
SELECT id FROM {table}
WHERE coalesce(
    payload @> :parents::JSONB
    AND jsonb_typeof(payload #> :path::TEXT[]) = jsonb_typeof(:value::JSONB)
    AND CASE jsonb_typeof(:value::JSONB)
        WHEN 'string'
            THEN (payload #>> :path::TEXT[]) COLLATE "C" < (:value::JSONB #>> '{}') COLLATE "C"
        ELSE payload #> :path::TEXT[] < :value::JSONB
    END,
    FALSE
);

-- name: filter_less_or_equal(parents, path, value)
-- The field is a number at or below the value, or a string at or before it by code point.
SELECT id FROM {table}
WHERE coalesce(
    payload @> :parents::JSONB
    AND jsonb_typeof(payload #> :path::TEXT[]) = jsonb_typeof(:value::JSONB)
    AND CASE jsonb_typeof(:value::JSONB)
        WHEN 'string'
            THEN (payload #>> :path::TEXT[]) COLLATE "C" <= (:value::JSONB #>> '{}') COLLATE "C"
        ELSE payload #> :path::TEXT[] <= :value::JSONB
    END,
    FALSE
);

-- name: filter_contained_in(parents, path, candidates)
-- The field equals one of the values (a JSON array) as JSON (hashed subplan, sequential filter).
SELECT id FROM {table}
WHERE coalesce(
    payload @> :parents::JSONB
    AND payload #> :path::TEXT[] IN (SELECT jsonb_array_elements(:candidates::JSONB)),
    FALSE
);

-- name: filter_contains(document, path, value)
-- The field is an array holding the value: containment (GIN on payload), then an exact recheck.
SELECT id FROM {table}
WHERE
    payload @> :document::JSONB
    AND coalesce(
        :value::JSONB IN (
            SELECT jsonb_array_elements(
                CASE
                    WHEN jsonb_typeof(payload #> :path::TEXT[]) = 'array'
                        THEN payload #> :path::TEXT[]
                    ELSE '[]'::JSONB
                END
            )
        ),
        FALSE
    );

-- name: filter_contains_any(parents, path, candidates)
-- The field is an array holding at least one of the values (a JSON array; sequential filter).
SELECT id FROM {table}
WHERE coalesce(
    payload @> :parents::JSONB
    AND EXISTS (
        SELECT 1
        FROM
            jsonb_array_elements(
                CASE
                    WHEN jsonb_typeof(payload #> :path::TEXT[]) = 'array'
                        THEN payload #> :path::TEXT[]
                    ELSE '[]'::JSONB
                END
            ) AS element
        WHERE element IN (SELECT jsonb_array_elements(:candidates::JSONB))
    ),
    FALSE
);

-- name: filter_text_match(parents, path, pattern)
-- The field is a string holding the text, ignoring case (the bound pattern escapes % and _).
SELECT id FROM {table}
WHERE coalesce(
    payload @> :parents::JSONB
    AND jsonb_typeof(payload #> :path::TEXT[]) = 'string'
    AND (payload #>> :path::TEXT[]) ILIKE :pattern::TEXT ESCAPE '\',
    FALSE
);

-- name: filter_exists(parents, path)
-- The key is present, even when its value is JSON null (sequential filter).
SELECT id FROM {table}
WHERE coalesce(
    payload @> :parents::JSONB AND payload #> :path::TEXT[] IS NOT NULL,
    FALSE
);

-- name: filter_and(lhs, rhs)
-- Both requirements hold (each placeholder takes a composed condition).
SELECT id FROM {table}
WHERE :lhs AND :rhs;

-- name: filter_or(lhs, rhs)
-- Either requirement holds (each placeholder takes a composed condition).
SELECT id FROM {table}
WHERE :lhs OR :rhs;

-- name: filter_not(operand)
-- The requirement does not hold (the placeholder takes a composed condition).
SELECT id FROM {table}
WHERE NOT :operand;
