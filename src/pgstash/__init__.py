"""pgstash: PostgreSQL persistence for LLM applications, as plain SQL a DBA can read."""

from pgstash import embedded
from pgstash.configurations import ConfigurationSnapshot, PostgresConfigurationRepository
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
from pgstash.instructions import (
    InstructionsArgumentDeclaration,
    InstructionsDeclaration,
    InstructionsRevision,
    PostgresInstructionsRepository,
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
    "ConfigurationSnapshot",
    "DatabaseError",
    "DimensionMismatchError",
    "InstructionsArgumentDeclaration",
    "InstructionsDeclaration",
    "InstructionsNotFoundError",
    "InstructionsRevision",
    "MemoryElementError",
    "MigrationError",
    "MissingArgumentError",
    "ModelInput",
    "ModelMemoryRecall",
    "ModelOutput",
    "PgstashError",
    "Postgres",
    "PostgresConfigurationRepository",
    "PostgresConnectionPool",
    "PostgresInstructionsRepository",
    "PostgresModelMemory",
    "SchemaMissingError",
    "ToolRequest",
    "ToolResponse",
    "embedded",
    "migrate",
]
