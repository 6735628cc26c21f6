"""What pgstash adds, under the newest draive's API: transactions across stores, the disposable
in six scopes at once, and haiway 0.48's requirements selected in SQL as its `check()` selects."""

import asyncio
from collections.abc import Sequence
from typing import Any
from uuid import uuid4

from tests.support.draive import SEEDS, check_requirements_select_what_haiway_checks, newest_only

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


def test_requirements_select_what_haiways_check_accepts(database_dsn: str) -> None:
    check_requirements_select_what_haiway_checks(database_dsn, Item)
