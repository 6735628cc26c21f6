-- name: notifications_ping()$
-- Liveness probe of the cache listener's connection (no table).
SELECT TRUE AS alive;
