-- Reading a vector table back by key and by page (pgstash.vectors.reads): get(keys=|ids=) and
-- page(). {table} is a validated, quoted identifier; {requirements} a filter from filters.sql.

-- name: vectors_get_ids(ids)
-- The rows of these ids in the order asked, one statement (the primary key serves id = each
-- element); an id with no row is absent, and pgstash fills its place with None.
SELECT
    asked.position,
    t.payload
FROM pg_catalog.unnest(:ids::UUID[]) WITH ORDINALITY AS asked (id, position)
INNER JOIN {table} AS t ON asked.id = t.id
ORDER BY asked.position;

-- name: vectors_page(after_created, after_id, size)
-- One page of the rows meeting the requirements in (created, id) order, after the cursor (the
-- last row of the previous page; NULL for the first page): keyset paging, so rows written
-- meanwhile never shift a page. The B-tree on created serves the ORDER BY ... LIMIT and the
-- range after the cursor (created >= the cursor's; custom plans, through vectors_scan_gate).
SELECT
    id,
    created,
    payload
FROM {table}
WHERE
    {requirements}
    AND (
        :after_created::TIMESTAMPTZ IS NULL
        OR (
            created >= :after_created::TIMESTAMPTZ
            AND (created, id) > (:after_created::TIMESTAMPTZ, :after_id::UUID)
        )
    )
ORDER BY created, id
LIMIT :size::BIGINT;
