"""pgstash: PostgreSQL persistence for LLM applications, as plain SQL a DBA can read."""

from pgstash import embedded, embeddings
from pgstash.connection import Postgres, PostgresConnectionPool
from pgstash.embeddings import HashingEmbedding
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
from pgstash.filters import AttributeRequirement
from pgstash.migrations import migrate
from pgstash.vectors import PostgresVectorIndex

__all__ = [
    "AttributeRequirement",
    "ConfigurationError",
    "DatabaseError",
    "DimensionMismatchError",
    "HashingEmbedding",
    "InstructionsNotFoundError",
    "MigrationError",
    "MissingArgumentError",
    "PgstashError",
    "Postgres",
    "PostgresConnectionPool",
    "PostgresVectorIndex",
    "SchemaMissingError",
    "embedded",
    "embeddings",
    "migrate",
]
