"""pgstash: PostgreSQL persistence for LLM applications, as plain SQL a DBA can read."""

from pgstash import embedded
from pgstash.connection import Postgres, PostgresConnectionPool
from pgstash.errors import (
    ConfigurationError,
    DatabaseError,
    DimensionMismatchError,
    InstructionsNotFoundError,
    MemoryElementError,
    MigrationError,
    MissingArgumentError,
    PgstashError,
    SchemaMissingError,
)
from pgstash.memory import (
    ModelInput,
    ModelMemoryRecall,
    ModelOutput,
    PostgresModelMemory,
    ToolRequest,
    ToolResponse,
)
from pgstash.migrations import migrate

__all__ = [
    "ConfigurationError",
    "DatabaseError",
    "DimensionMismatchError",
    "InstructionsNotFoundError",
    "MemoryElementError",
    "MigrationError",
    "MissingArgumentError",
    "ModelInput",
    "ModelMemoryRecall",
    "ModelOutput",
    "PgstashError",
    "Postgres",
    "PostgresConnectionPool",
    "PostgresModelMemory",
    "SchemaMissingError",
    "ToolRequest",
    "ToolResponse",
    "embedded",
    "migrate",
]
