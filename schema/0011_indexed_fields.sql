-- Indexed payload fields (create_table(..., indexed={"published": datetime})): a stored generated
-- column may only call IMMUTABLE functions, and text -> timestamptz is STABLE (it reads TimeZone
-- and DateStyle). This wrapper fixes both for its own call, so the same text always gives the
-- same instant: ISO 8601 as pgstash's converter writes datetimes ("2026-12-07T03:47:18+00:00"),
-- a value without an offset read as UTC. Text that is not of that form gives NULL (the row then
-- matches no comparison on the field, as a JSON value of another type does).
CREATE OR REPLACE FUNCTION pgstash_timestamptz(value TEXT)
RETURNS TIMESTAMPTZ
LANGUAGE sql
IMMUTABLE STRICT PARALLEL SAFE
SET timezone = 'UTC'
SET datestyle = 'ISO, YMD'
AS $$
SELECT
    CASE
        WHEN
            value
            ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,6})?)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?$'
            THEN value::TIMESTAMPTZ
    END
$$;
