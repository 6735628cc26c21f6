"""The connection pool and the `Postgres` facade: `pool` opens and closes it, `facade` composes
the calls, `lifecycle` decides each connection's fate (asyncpg's pool hooks), `sender` sends every
statement, `scope` holds the transaction or session in force, `replicas` routes reads, `driver`
talks to asyncpg, `codecs` converts jsonb and pgvector's types."""

from pgstash.connection.facade import Postgres, current_postgres, logger, resolve
from pgstash.connection.pool import DSN_VARIABLE, PostgresConnectionPool, redact

__all__ = [
    "DSN_VARIABLE",
    "Postgres",
    "PostgresConnectionPool",
    "current_postgres",
    "logger",
    "redact",
    "resolve",
]
