"""Rows written by draive 0.89.x's own `draive.postgres` read back through pgstash.draive, and
the other way round, for all four stores: a deployment switches by changing the import, and back."""

from typing import Annotated, Any

from tests.support.draive import (
    SEED_CHUNK_TABLE,
    SEEDS,
    answered,
    exact_pool,
    haiway_pool,
    said,
    seed_only,
    vector_of,
)

pytestmark = seed_only

if SEEDS:
    from draive import Alias, DataModel

    class Doc(DataModel):
        identifier: Annotated[str, Alias("id")]
        text: str


def pools(dsn: str) -> tuple[Any, ...]:
    import pgstash.draive as ours

    return (haiway_pool(dsn), ours.PostgresConnectionPool.of(dsn=dsn))


async def test_configurations_both_ways(database_dsn: str) -> None:
    import draive.postgres as theirs
    from draive import ConfigurationRepository, ctx

    import pgstash.draive as ours

    async with ctx.scope("both", disposables=pools(database_dsn)):
        async with ctx.scope("theirs", theirs.PostgresConfigurationRepository()):
            await ConfigurationRepository.define("app", {"model": "large", "n": 3})
        async with ctx.scope("ours", ours.PostgresConfigurationRepository()):
            assert await ConfigurationRepository.load_raw("app") == {"model": "large", "n": 3}
            assert await ConfigurationRepository.configurations() == ("app",)
            await ConfigurationRepository.define("app", {"model": "small"})
            await ConfigurationRepository.define("other", {"x": [1, 2]})
        async with ctx.scope("theirs again", theirs.PostgresConfigurationRepository()):
            assert await ConfigurationRepository.load_raw("app") == {"model": "small"}
            assert sorted(await ConfigurationRepository.configurations()) == ["app", "other"]


async def test_instructions_both_ways(database_dsn: str) -> None:
    import draive.postgres as theirs
    from draive import Instructions, InstructionsDeclaration, InstructionsRepository, ctx
    from draive.models.instructions.types import InstructionsArgumentDeclaration

    import pgstash.draive as ours

    declaration = InstructionsDeclaration.of(
        "greet",
        description="says hello",
        arguments=(InstructionsArgumentDeclaration.of("user", description="who"),),
        meta={"team": "core"},
    )
    async with ctx.scope("both", disposables=pools(database_dsn)):
        async with ctx.scope("theirs", theirs.PostgresInstructionsRepository()):
            await InstructionsRepository.define(declaration, content="Hello {user}! {n:>3}")
            theirs_listing = await InstructionsRepository.available_instructions()
        async with ctx.scope("ours", ours.PostgresInstructionsRepository()):
            assert await InstructionsRepository.available_instructions() == theirs_listing
            resolved = await InstructionsRepository.resolve(
                Instructions.of("greet"), arguments={"user": "Ada", "n": 5}
            )
            assert resolved == "Hello Ada!   5"
            await InstructionsRepository.define(declaration, content="Bye {user.title}")
            ours_listing = await InstructionsRepository.available_instructions()
        async with ctx.scope("theirs again", theirs.PostgresInstructionsRepository()):
            assert await InstructionsRepository.available_instructions() == ours_listing
            loaded = await InstructionsRepository.load(Instructions.of("greet"))
            assert str(loaded) == "Bye {user.title}"


async def test_memory_both_ways(database_dsn: str) -> None:
    import draive.postgres as theirs
    from draive import ctx

    import pgstash.draive as ours

    async with ctx.scope("both", disposables=pools(database_dsn)):
        theirs_memory = theirs.PostgresModelMemory("session")
        ours_memory = ours.PostgresModelMemory("session")
        await theirs_memory.maintenance()  # draive's remember needs the memories row
        await theirs_memory.remember(said("one"), answered("two"), variables={"k": 1})
        recalled = await ours_memory.recall()
        assert [element.to_json() for element in recalled.context] == [
            said("one").to_json(),
            answered("two").to_json(),
        ]
        assert recalled.variables == {"k": 1}
        await ours_memory.remember(said("three"), answered("four"), variables={"k": 2})
        theirs_recalled = await theirs_memory.recall()
        assert [element.to_json() for element in theirs_recalled.context] == [
            said(text).to_json() if index % 2 == 0 else answered(text).to_json()
            for index, text in enumerate(["one", "two", "three", "four"])
        ]
        assert theirs_recalled.variables == {"k": 2}
        ours_recalled = await ours_memory.recall()
        assert [element.to_json() for element in ours_recalled.context] == [
            element.to_json() for element in theirs_recalled.context
        ]


async def test_vector_rows_both_ways(database_dsn: str, postgres: Any, embeddings: tuple[Any, Any]) -> None:
    from draive import ctx
    from draive.utils import VectorIndex

    import pgstash.draive as ours

    await postgres.execute(SEED_CHUNK_TABLE.replace("chunk", "doc"))
    # draive 0.89's own INSERT (its pool has no vector codec: the vector goes as text here)
    for index, text in enumerate(["red apples", "green pears"]):
        await postgres.execute(
            "INSERT INTO doc (embedding, payload, meta, created) "
            "VALUES ($1::TEXT::VECTOR, $2::TEXT::JSONB, $3::TEXT::JSONB, "
            "now() + $4 * interval '1 microsecond')",
            str(vector_of(text)),
            Doc(identifier=f"d{index}", text=text).to_json(),
            "{}",
            index,
        )
    # probing every list of the seed's index: "apples" is nearest "red apples" whatever centres
    # pgvector drew for the index it built on the empty table
    exact = (exact_pool(database_dsn),)
    async with ctx.scope("ours", ours.PostgresVectorIndex(), *embeddings, disposables=exact):
        found = await VectorIndex.search(Doc, query="apples", limit=1)
        assert found == (Doc(identifier="d0", text="red apples"),)
        await VectorIndex.index(Doc, values=[Doc(identifier="d2", text="blue plums")], attribute=Doc._.text)
    # draive 0.89's own search and newest-first read over pgstash's rows
    import draive.postgres as theirs

    async with ctx.scope(
        "theirs", theirs.PostgresVectorIndex(), *embeddings, disposables=pools(database_dsn)[:1]
    ):
        newest = await VectorIndex.search(Doc, limit=3)
        assert [doc.identifier for doc in newest] == ["d2", "d1", "d0"]
