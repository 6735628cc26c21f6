"""pgstash: PostgreSQL persistence for LLM applications, as plain SQL a DBA can read."""

from pgstash import embedded
from pgstash.connection import Postgres, PostgresConnectionPool
from pgstash.errors import (
    ConfigurationError,
    DatabaseError,
    DimensionMismatchError,
    InstructionsNotFoundError,
    MigrationError,
    MissingArgumentError,
    PgstashError,
    SchemaMissingError,
)
from pgstash.migrations import migrate

__all__ = [
    "ConfigurationError",
    "DatabaseError",
    "DimensionMismatchError",
    "InstructionsNotFoundError",
    "MigrationError",
    "MissingArgumentError",
    "PgstashError",
    "Postgres",
    "PostgresConnectionPool",
    "SchemaMissingError",
    "embedded",
    "migrate",
]
