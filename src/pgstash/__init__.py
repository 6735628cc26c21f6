"""pgstash: PostgreSQL persistence for LLM applications, as plain SQL a DBA can read."""

from pgstash import embedded, embeddings
from pgstash.connection import Postgres, PostgresConnectionPool
from pgstash.embeddings import HashingEmbedding
from pgstash.errors import (
    ConfigurationError,
    DatabaseError,
    DimensionMismatchError,
    EmbeddingMissingError,
    InstructionsNotFoundError,
    LabelConflictError,
    LabelNotFoundError,
    MemoryElementError,
    MigrationError,
    MissingArgumentError,
    PgstashError,
    SchemaMissingError,
    StoredDataError,
)
from pgstash.migrations import migrate
from pgstash.stores.configurations import ConfigurationSnapshot, PostgresConfigurationRepository
from pgstash.stores.instructions import (
    ChatPrompt,
    InstructionsArgumentDeclaration,
    InstructionsDeclaration,
    InstructionsRevision,
    PostgresInstructionsRepository,
)
from pgstash.stores.labels import LabelMove
from pgstash.stores.memory import (
    ElementCodec,
    ModelInput,
    ModelMemoryRecall,
    ModelOutput,
    PostgresModelMemory,
    ToolRequest,
    ToolResponse,
)
from pgstash.vectors import PostgresVectorIndex
from pgstash.vectors.filters import AttributeRequirement
from pgstash.vectors.reads import Page

__version__ = "0.1.0"

__all__ = [
    "AttributeRequirement",
    "ChatPrompt",
    "ConfigurationError",
    "ConfigurationSnapshot",
    "DatabaseError",
    "DimensionMismatchError",
    "ElementCodec",
    "EmbeddingMissingError",
    "HashingEmbedding",
    "InstructionsArgumentDeclaration",
    "InstructionsDeclaration",
    "InstructionsNotFoundError",
    "InstructionsRevision",
    "LabelConflictError",
    "LabelMove",
    "LabelNotFoundError",
    "MemoryElementError",
    "MigrationError",
    "MissingArgumentError",
    "ModelInput",
    "ModelMemoryRecall",
    "ModelOutput",
    "Page",
    "PgstashError",
    "Postgres",
    "PostgresConfigurationRepository",
    "PostgresConnectionPool",
    "PostgresInstructionsRepository",
    "PostgresModelMemory",
    "PostgresVectorIndex",
    "SchemaMissingError",
    "StoredDataError",
    "ToolRequest",
    "ToolResponse",
    "__version__",
    "embedded",
    "embeddings",
    "migrate",
]
