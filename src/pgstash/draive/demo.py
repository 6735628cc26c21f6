"""`make demo-draive` (`python -m pgstash.draive.demo [DSN]`): the seed's "Putting it together"
through pgstash.draive on draive 0.89.x: configurations into a configuration state, shared
instructions, a persisted conversation and a vector index, in one haiway scope on one pool; then
the same calls inside one pgstash transaction that rolls back. Without a DSN: the embedded server
in ./.pgstash (pgstash[embedded]); vectors from pgstash's lexical `HashingEmbedding`."""

import asyncio
import sys
from typing import Any

from draive import (
    ConfigurationRepository,
    DataModel,
    Instructions,
    InstructionsDeclaration,
    InstructionsRepository,
    ctx,
)
from draive.embedding import Embedded, TextEmbedding
from draive.models import ModelInput, ModelOutput
from draive.multimodal import MultimodalContent
from draive.utils import VectorIndex
from haiway import AttributeRequirement, Configuration

from pgstash import embedded, migrate
from pgstash.draive import (
    PostgresConfigurationRepository,
    PostgresConnectionPool,
    PostgresInstructionsRepository,
    PostgresModelMemory,
    PostgresState,
    PostgresVectorIndex,
)
from pgstash.embeddings import HashingEmbedding

DIMENSION = 64
_hashing = HashingEmbedding(DIMENSION)


class AssistantSettings(Configuration):
    model: str = "small-model"
    temperature: float = 0.2


class Note(DataModel):
    topic: str
    text: str


async def _embed(values: Any, /, attribute: Any = None, **extra: Any) -> list[Any]:
    texts = [value if attribute is None else attribute(value) for value in values]
    vectors = await _hashing(texts)
    return [
        Embedded(value=value, vector=[float(x) for x in row])
        for value, row in zip(values, vectors, strict=True)
    ]


async def run(dsn: str) -> None:
    async with ctx.scope("migrate", disposables=(PostgresConnectionPool.of(dsn=dsn),)):
        postgres = ctx.state(PostgresState).postgres
        await migrate(postgres)
        await postgres.execute(
            "CREATE TABLE IF NOT EXISTS note (id UUID NOT NULL DEFAULT gen_random_uuid(), "
            f"embedding VECTOR({DIMENSION}) NOT NULL, payload JSONB NOT NULL, meta JSONB NOT NULL, "
            "created TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )
        await postgres.execute("TRUNCATE note")
    async with ctx.scope(
        "putting-it-together",
        PostgresConfigurationRepository(),
        PostgresInstructionsRepository(),
        PostgresVectorIndex(),
        TextEmbedding(embedding=_embed),
        disposables=(PostgresConnectionPool.of(dsn=dsn),),
    ):
        await ConfigurationRepository.define(AssistantSettings(model="large-model"))
        print("configuration:", await AssistantSettings.load())
        await InstructionsRepository.define(
            InstructionsDeclaration.of("assistant", description="the system prompt"),
            content="You help {user} with {topic!r}.",
        )
        prompt = await InstructionsRepository.resolve(
            Instructions.of("assistant"), arguments={"user": "Ada", "topic": "postgres"}
        )
        print("instructions:", prompt)
        memory = PostgresModelMemory("demo-session", recall_limit=4)
        await memory.remember(
            ModelInput.of(MultimodalContent.of("What is pgvector?")),
            ModelOutput.of(MultimodalContent.of("A PostgreSQL extension for vectors.")),
            variables={"user": "Ada"},
        )
        recalled = await memory.recall()
        print(f"memory: {len(recalled.context)} elements, variables {dict(recalled.variables or {})}")
        notes = [
            Note(topic="db", text="PostgreSQL stores rows in tables"),
            Note(topic="db", text="pgvector adds vector similarity search to PostgreSQL"),
            Note(topic="cooking", text="a sourdough starter needs flour and water"),
        ]
        await VectorIndex.index(Note, values=notes, attribute=Note._.text)
        found = await VectorIndex.search(
            Note,
            query="vector search in postgres",
            limit=2,
            requirements=AttributeRequirement.equal("db", Note._.topic),
        )
        print("vector search:", [note.text for note in found])

        postgres = ctx.state(PostgresState).postgres
        try:
            async with postgres.transaction():
                await ConfigurationRepository.define(AssistantSettings(model="rolled-back"))
                await memory.remember(ModelInput.of(MultimodalContent.of("never kept")))
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        print(
            "after a rolled-back transaction:",
            await AssistantSettings.load(),
            len((await memory.recall()).context),
            "elements",
        )


def main() -> None:
    if len(sys.argv) > 1:
        asyncio.run(run(sys.argv[1]))
        return
    with embedded.start(".pgstash") as server:
        asyncio.run(run(server.dsn))


if __name__ == "__main__":
    main()
