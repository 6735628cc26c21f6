"""The seed's snippets on the newest draive (0.103: the names it has), on pgstash's stores."""

from typing import Annotated, Any
from uuid import uuid4

from tests.support.draive import SEEDS, newest_only, the_vector_index_snippet

pytestmark = newest_only

if not SEEDS:
    from draive import Alias, State
    from haiway import Configuration

    class Chunk(State):
        identifier: Annotated[str, Alias("id")]
        text: str

    class Generation(Configuration):
        model: str = "small"
        temperature: float = 0.2

    class Other(Configuration):
        size: int = 1


async def test_configurations_templates_and_conversation_memory(database_dsn: str) -> None:
    from draive import ConfigurationRepository, Template, TemplateDeclaration, TemplatesRepository, ctx
    from draive.conversation import ConversationMemory
    from draive.conversation.types import ConversationAssistantTurn, ConversationUserTurn
    from draive.multimodal import MultimodalContent
    from haiway import Pagination

    from pgstash.draive import (
        PostgresConfigurationRepository,
        PostgresConnectionPool,
        PostgresConversationMemory,
        PostgresTemplatesRepository,
    )

    async with ctx.scope(
        "postgres-demo",
        PostgresConfigurationRepository(),
        PostgresTemplatesRepository(),
        disposables=(PostgresConnectionPool.of(dsn=database_dsn),),
    ):
        await ConfigurationRepository.define(Generation(model="large"))
        await ConfigurationRepository.define("tiny", Other(size=2))
        assert await Generation.load() == Generation(model="large")
        assert await ConfigurationRepository.configurations(Generation) == ("Generation",)
        assert await ConfigurationRepository.configurations(Other) == ("tiny",)
        assert sorted(await ConfigurationRepository.configurations()) == ["Generation", "tiny"]

        for name in ("a", "b", "c"):
            await TemplatesRepository.define(
                TemplateDeclaration.of(name, description=f"t {name}", variables={"user": "who"}),
                content="Hi {%user%}!",
            )
        first = await TemplatesRepository.templates(Pagination.of(limit=2))
        assert [each.identifier for each in first.items] == ["a", "b"]
        assert first.items[0].variables == {"user": "who"}
        second = await TemplatesRepository.templates(first.pagination)
        assert [each.identifier for each in second.items] == ["c"]
        assert await TemplatesRepository.load(Template.of("a")) == "Hi {%user%}!"
        resolved = await TemplatesRepository.resolve(
            Template.of("a"), arguments={"user": MultimodalContent.of("Ada")}
        )
        assert resolved.to_str() == "Hi Ada!"

        memory = PostgresConversationMemory(thread=uuid4())
        turns = []
        for index in range(5):
            turns.append(ConversationUserTurn.of(MultimodalContent.of(f"q{index}")))
            turns.append(ConversationAssistantTurn.of(MultimodalContent.of(f"a{index}")))
        await memory.remember(*turns)
        everything = await memory.recall()
        assert len(everything) == 10
        page = await memory.fetch(Pagination.of(limit=4))
        assert [turn.identifier for turn in page.items] == [turn.identifier for turn in turns[-4:]]
        older = await memory.fetch(page.pagination)
        assert [turn.identifier for turn in older.items] == [turn.identifier for turn in turns[-8:-4]]
        oldest = await memory.fetch(older.pagination)
        assert [turn.identifier for turn in oldest.items] == [turn.identifier for turn in turns[:2]]
        assert not isinstance(memory, type) and isinstance(memory, ConversationMemory)


async def test_the_vector_index_snippet(
    database_dsn: str, embeddings: tuple[Any, Any], postgres: Any
) -> None:
    from draive import VectorIndex

    await the_vector_index_snippet(database_dsn, embeddings, postgres, Chunk, VectorIndex)
