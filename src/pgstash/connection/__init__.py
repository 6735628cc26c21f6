"""The connection pool and the `Postgres` facade: `pool` opens and closes it, `executor` runs
every statement, `scope` holds the transaction or session in force and the current pool,
`codecs` converts jsonb and pgvector's types."""

from pgstash.connection.executor import Postgres, logger
from pgstash.connection.pool import DSN_VARIABLE, PostgresConnectionPool, redact
from pgstash.connection.scope import current_postgres, resolve

__all__ = [
    "DSN_VARIABLE",
    "Postgres",
    "PostgresConnectionPool",
    "current_postgres",
    "logger",
    "redact",
    "resolve",
]
