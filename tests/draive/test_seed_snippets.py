"""The seed's snippets (shared/spec/seed.md) with only the import line changed, on the embedded
server, draive 0.89.x."""

from typing import Annotated, Any

from tests.support.draive import SEEDS, answered, said, seed_only, the_vector_index_snippet

pytestmark = seed_only

from haiway import Configuration  # noqa: E402


class Generation(Configuration):
    model: str = "small"
    temperature: float = 0.2


if SEEDS:
    from draive import Alias, DataModel

    class Chunk(DataModel):
        identifier: Annotated[str, Alias("id")]
        text: str


async def test_bootstrapping_the_postgres_context(database_dsn: str) -> None:
    from draive import ctx

    from pgstash.draive import (
        PostgresConfigurationRepository,
        PostgresConnectionPool,
        PostgresInstructionsRepository,
        PostgresModelMemory,
    )

    async with ctx.scope(
        "postgres-demo",
        PostgresConfigurationRepository(),
        PostgresInstructionsRepository(),
        disposables=(PostgresConnectionPool.of(dsn=database_dsn),),
    ):
        session_memory = PostgresModelMemory("demo-session")
        await session_memory.remember(said("hello"), answered("hi there"), variables={"user": "ada"})
        recalled = await session_memory.recall()
        assert [element.to_json() for element in recalled.context] == [
            said("hello").to_json(),
            answered("hi there").to_json(),
        ]
        assert recalled.variables == {"user": "ada"}


async def test_configurations_instructions_and_memory_through_draive(database_dsn: str) -> None:
    from draive import ConfigurationRepository, Instructions, InstructionsRepository, ctx

    from pgstash.draive import (
        PostgresConfigurationRepository,
        PostgresConnectionPool,
        PostgresInstructionsRepository,
        PostgresModelMemory,
    )

    async with ctx.scope(
        "seed",
        PostgresConfigurationRepository(),
        PostgresInstructionsRepository(),
        disposables=(PostgresConnectionPool.of(dsn=database_dsn),),
    ):
        assert await Generation.load() is None
        await ConfigurationRepository.define(Generation(model="large"))
        assert await Generation.load() == Generation(model="large")
        assert await ConfigurationRepository.configurations() == ("Generation",)
        assert await ConfigurationRepository.load_raw("Generation") == {"model": "large", "temperature": 0.2}
        await ConfigurationRepository.remove(Generation)
        assert await Generation.load() is None

        # draive's own template grammar, which pgstash's resolve refuses, is stored raw
        await InstructionsRepository.define("greeting", content="Hi {user}, score {score:>5}")
        listed = await InstructionsRepository.available_instructions()
        assert [declaration.name for declaration in listed] == ["greeting"]
        resolved = await InstructionsRepository.resolve(
            Instructions.of("greeting"), arguments={"user": "Ada", "score": 7}
        )
        assert resolved == "Hi Ada, score     7"

        memory = PostgresModelMemory("limited", recall_limit=2)
        await memory.remember(said("one"), answered("two"), said("three"))
        recalled = await memory.recall()
        # a window of 2 starts at an output: draive trims it to begin at an input
        assert [element.to_json() for element in recalled.context] == [said("three").to_json()]


async def test_the_vector_index_snippet(
    database_dsn: str, embeddings: tuple[Any, Any], postgres: Any
) -> None:
    from draive.utils import VectorIndex

    await the_vector_index_snippet(database_dsn, embeddings, postgres, Chunk, VectorIndex)


def test_the_docs_bootstrapping_snippet_runs_as_written(database_dsn: str) -> None:
    import os
    import re
    import subprocess
    import sys
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "draive.md"
    first = re.findall(r"```py\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)[0]
    script = first + "\nimport asyncio\nasyncio.run(main())\n"
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PGSTASH_DSN": database_dsn},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("{'user': 'ada'}")
