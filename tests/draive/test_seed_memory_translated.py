"""draive's own tests of its Postgres memory (tests/test_postgres_memory.py upstream: rows mocked
with monkeypatch) as scenarios on the real database through pgstash.draive: each stores the
elements in order, recalls with the same limit and expects the same context."""

from typing import Any

import pytest

from tests.support.draive import SEEDS, seed_only

pytestmark = seed_only


def _text(text: str) -> Any:
    from draive.multimodal import MultimodalContent, TextContent

    return MultimodalContent.of(TextContent.of(text))


def _scenarios() -> list[tuple[str, list[Any], int | None, list[int]]]:
    """name, the elements in order, the recall limit, the indexes of the elements recalled."""
    if not SEEDS:
        return []
    from draive.models import ModelInput, ModelOutput
    from draive.models.types import ModelToolRequest, ModelToolResponse

    def user(text: str) -> Any:
        return ModelInput.of(_text(text))

    def answer(text: str) -> Any:
        return ModelOutput.of(_text(text))

    request = ModelOutput.of(ModelToolRequest.of("tool-1", tool="search", arguments={"query": "state"}))
    response = ModelInput.of(ModelToolResponse.of("tool-1", tool="search", content=_text("result")))
    user_with_tool = ModelInput.of(
        _text("user with data"), ModelToolResponse.of("tool-0", tool="lookup", content=_text("embedded"))
    )
    return [
        ("chronological order", [user("first"), answer("second"), user("third")], None, [0, 1, 2]),
        ("tool usage pairs kept", [user("user"), request, response, answer("answer")], None, [0, 1, 2, 3]),
        ("orphan tool response dropped", [response, answer("answer")], 2, []),
        ("leading tool-only input dropped", [response, user("user"), answer("done")], None, [1, 2]),
        ("leading tool request dropped", [request, answer("final")], 2, []),
        ("a window starts at an input", [answer("old-output"), user("latest-input")], 2, [1]),
        ("a single input kept", [user("user")], 1, [0]),
        ("inputs before a pair kept", [user("stale"), user("latest"), answer("answer")], None, [0, 1, 2]),
        ("input with content and tools dropped", [user_with_tool, answer("answer")], None, []),
    ]


@pytest.mark.parametrize(("name", "elements", "limit", "expected"), _scenarios(), ids=lambda v: str(v)[:30])
async def test_recall_trims_as_draives_own_adapter(
    database_dsn: str, name: str, elements: list[Any], limit: int | None, expected: list[int]
) -> None:
    from draive import ctx

    import pgstash.draive as ours

    async with ctx.scope("memory", disposables=(ours.PostgresConnectionPool.of(dsn=database_dsn),)):
        memory = ours.PostgresModelMemory("demo-session", recall_limit=limit)
        await memory.remember(*elements)
        recalled = await memory.recall()
    assert recalled.context == tuple(elements[index] for index in expected), name
