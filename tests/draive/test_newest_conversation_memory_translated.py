"""draive 0.103's own tests of its Postgres conversation memory (tests/test_postgres_memory.py
upstream: `Postgres.fetch` mocked, rows faked) as scenarios on the real database through
pgstash.draive: the turns are remembered, then paged and recalled as a user does. The page token
is opaque to draive's callers: upstream it is the oldest turn's identifier, here the oldest turn's
stored time; the scenarios assert what a caller relies on (the turns, their order, a token while
older turns remain, none after the last page)."""

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from tests.support.draive import newest_only

pytestmark = newest_only

BASE_TIME = datetime(2026, 3, 13, tzinfo=UTC)


def _turns() -> tuple[Any, ...]:
    from draive.conversation.types import ConversationUserTurn
    from draive.multimodal import MultimodalContent

    return tuple(
        ConversationUserTurn.of(
            MultimodalContent.of(text), identifier=uuid4(), created=BASE_TIME + timedelta(seconds=offset)
        )
        for offset, text in enumerate(("first", "second", "third"))
    )


def _scope(dsn: str) -> Any:
    from draive import ctx

    return ctx.scope("conversation", disposables=(_pool(dsn),))


def _pool(dsn: str) -> Any:
    import pgstash.draive as ours

    return ours.PostgresConnectionPool.of(dsn=dsn)


def _texts(turns: Any) -> list[str]:
    return [turn.content[0].to_str() for turn in turns]


async def _remember(memory: Any, turns: tuple[Any, ...], *, one_call: bool) -> None:
    if one_call:
        await memory.remember(*turns)
    else:
        for turn in turns:
            await memory.remember(turn)


async def test_fetch_uses_pagination_token(database_dsn: str) -> None:
    """Upstream: the first page of two is the latest two turns oldest first, with a token; the page
    it points to is the first turn, without a token. Both when the turns were remembered in one
    call (one statement) and one by one."""
    from haiway import Pagination

    import pgstash.draive as ours

    turns = _turns()
    for thread, one_call in (("thread-1", True), ("thread-2", False)):
        async with _scope(database_dsn):
            memory = ours.PostgresConversationMemory(thread=thread)
            await _remember(memory, turns, one_call=one_call)
            page_1 = await memory.fetch(Pagination.of(limit=2))
            page_2 = await memory.fetch(page_1.pagination)
        assert _texts(page_1.items) == ["second", "third"], thread
        assert page_1.items == turns[1:], thread  # identifiers and created times kept
        assert page_1.pagination.token is not None, thread
        assert _texts(page_2.items) == ["first"], thread
        assert page_2.items == turns[:1], thread
        assert page_2.pagination.token is None, thread


async def test_recall_uses_latest_turns_in_order(database_dsn: str) -> None:
    """Upstream: recall with a limit of two gives the model context of the latest two turns, oldest
    first; a second thread's turns never appear in it."""
    from haiway import Pagination

    import pgstash.draive as ours

    async with _scope(database_dsn):
        memory = ours.PostgresConversationMemory(thread="thread-1")
        await memory.remember(*_turns())
        await ours.PostgresConversationMemory(thread="thread-other").remember(*_turns()[:1])
        context = await memory.recall(Pagination.of(limit=2))
    assert [element.content.to_str() for element in context] == ["second", "third"]
