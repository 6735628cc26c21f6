"""What pgstash adds, under the newest draive's API: transactions across stores, the disposable
in six scopes at once, and haiway 0.48's requirements selected in SQL as its `check()` selects."""

import asyncio
from collections.abc import Sequence
from typing import Any
from uuid import uuid4

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.draive import SEED_CHUNK_TABLE, SEEDS, newest_only, vector_of

pytestmark = newest_only

if not SEEDS:
    from draive import State
    from haiway import Configuration

    class Level(Configuration):
        level: int = 1

    class Item(State):
        name: str
        text: str
        tags: Sequence[str]


def _turn(text: str) -> Any:
    from draive.conversation.types import ConversationUserTurn
    from draive.multimodal import MultimodalContent

    return ConversationUserTurn.of(MultimodalContent.of(text))


async def test_configurations_and_conversations_roll_back_together(database_dsn: str) -> None:
    from draive import ConfigurationRepository, ctx

    import pgstash.draive as ours

    async with ctx.scope(
        "tx",
        ours.PostgresConfigurationRepository(),
        disposables=(ours.PostgresConnectionPool.of(dsn=database_dsn),),
    ):
        memory = ours.PostgresConversationMemory(thread=uuid4())
        await ConfigurationRepository.define(Level(level=1))
        try:
            async with ctx.state(ours.PostgresState).postgres.transaction():
                await ConfigurationRepository.define(Level(level=2))
                await memory.remember(_turn("never kept"))
                raise LookupError("roll back")
        except LookupError:
            pass
        assert await Level.load() == Level(level=1)
        assert await memory.recall() == ()


async def test_six_scopes_at_once(database_dsn: str) -> None:
    from draive import ctx

    import pgstash.draive as ours

    async def one(index: int) -> int:
        async with ctx.scope(
            f"s{index}", disposables=(ours.PostgresConnectionPool.of(dsn=database_dsn, max_size=2),)
        ):
            memory = ours.PostgresConversationMemory(thread=f"thread-{index}")
            await asyncio.gather(*(ctx.spawn(memory.remember, _turn(f"{index}-{n}")) for n in range(3)))
            return len((await memory.fetch()).items)

    assert await asyncio.gather(*(one(index) for index in range(6))) == [3] * 6


WORDS = st.sampled_from(["cat", "Cat", "concatenate", "dog", "big", "a", "b_c", "x1"])
TEXTS = st.lists(WORDS | st.sampled_from([" ", ", ", "-", "!"]), max_size=6).map("".join)
NAMES = st.sampled_from(["a", "b", "c"])


def _requirements() -> Any:
    from haiway import AttributeRequirement as R

    leaves = st.one_of(
        st.builds(lambda v: R.equal(v, Item._.name), NAMES),
        st.builds(lambda v: R.not_equal(v, Item._.name), NAMES),
        st.builds(lambda v: R.contained_in(v, Item._.name), st.lists(NAMES, max_size=2)),
        st.builds(lambda v: R.contains(v, Item._.tags), WORDS),
        st.builds(lambda v: R.contains_any(v, Item._.tags), st.lists(WORDS, max_size=2)),
        st.builds(lambda v: R.text_match(v, Item._.text), TEXTS),
    )

    def combined(inner: Any) -> Any:
        return st.builds(lambda a, b, o: a & b if o else a | b, inner, inner, st.booleans())

    return st.recursive(leaves, combined, max_leaves=4)


def test_requirements_select_what_haiways_check_accepts(database_dsn: str) -> None:
    from draive import ctx

    import pgstash.draive as ours
    from pgstash.draive.models import requirement_of, state_converter
    from pgstash.vectors import PostgresVectorIndex as Index

    def scope() -> Any:
        return ctx.scope("filters", disposables=(ours.PostgresConnectionPool.of(dsn=database_dsn),))

    async def create() -> None:
        async with scope():
            await ctx.state(ours.PostgresState).postgres.execute(
                SEED_CHUNK_TABLE.replace("chunk", "filtered")
            )

    async def run(items: list[Any], requirement: Any) -> None:
        async with scope():
            postgres = ctx.state(ours.PostgresState).postgres
            await postgres.execute("TRUNCATE filtered")
            index = Index(postgres, converter=state_converter())
            await index.index(
                Item, values=items, attribute=lambda item: vector_of(item.text), table="filtered"
            )
            translated = requirement_of(requirement)
            found = await index.search(Item, requirements=translated, limit=100, table="filtered")
        expected = sorted(item.to_json() for item in items if requirement.check(item, raise_exception=False))
        assert sorted(item.to_json() for item in found) == expected

    asyncio.run(create())

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        items=st.lists(
            st.builds(Item, name=NAMES, text=TEXTS, tags=st.lists(WORDS, max_size=3)), min_size=1, max_size=6
        ),
        requirement=_requirements(),
    )
    def check(items: list[Any], requirement: Any) -> None:
        asyncio.run(run(items, requirement))

    check()
