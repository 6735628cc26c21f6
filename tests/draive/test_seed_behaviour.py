"""What pgstash adds under draive 0.89's API: transactions across stores, NOTIFY-invalidated
caches, the disposable entered by haiway in its own task (six scopes at once), draive's element
JSON round trips (images, reasoning, tool calls), and requirements translated to SQL selecting
exactly what haiway's own `check()` accepts."""

import asyncio
import json
import uuid
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.draive import (
    SEEDS,
    answered,
    check_requirements_select_what_haiway_checks,
    said,
    seed_only,
)

pytestmark = seed_only

if SEEDS:
    from draive import DataModel
    from haiway import Configuration

    class Settings(Configuration):
        level: int = 1

    class Row(DataModel):
        name: str
        text: str
        tags: Sequence[str]  # haiway stores a list as a tuple: a list[str] path fails its check


async def test_draive_calls_inside_one_pgstash_transaction_roll_back_together(database_dsn: str) -> None:
    from draive import ConfigurationRepository, InstructionsRepository, ctx

    import pgstash.draive as ours

    async with ctx.scope(
        "tx",
        ours.PostgresConfigurationRepository(),
        ours.PostgresInstructionsRepository(),
        disposables=(ours.PostgresConnectionPool.of(dsn=database_dsn),),
    ):
        memory = ours.PostgresModelMemory("tx-session")
        await ConfigurationRepository.define(Settings(level=1))
        postgres = ctx.state(ours.PostgresState).postgres
        try:
            async with postgres.transaction():
                await ConfigurationRepository.define(Settings(level=2))
                await InstructionsRepository.define("prompt", content="never {kept}")
                await memory.remember(said("never kept"), variables={"x": 1})
                assert await Settings.load() == Settings(level=2)  # the transaction sees its writes
                raise LookupError("roll back")
        except LookupError:
            pass
        assert await Settings.load() == Settings(level=1)
        assert await InstructionsRepository.available_instructions() == ()
        assert (await memory.recall()).context == ()


async def test_a_define_in_another_process_clears_this_processes_cache(database_dsn: str) -> None:
    from draive import ConfigurationRepository, ctx

    import pgstash
    import pgstash.draive as ours

    async with ctx.scope(
        "cached",
        ours.PostgresConfigurationRepository(cache_expiration=3600),
        disposables=(ours.PostgresConnectionPool.of(dsn=database_dsn),),
    ):
        await ConfigurationRepository.define(Settings(level=1))
        assert await Settings.load() == Settings(level=1)  # cached now
        async with pgstash.PostgresConnectionPool.of(dsn=database_dsn) as elsewhere:  # "another process"
            await pgstash.PostgresConfigurationRepository(elsewhere).define({"level": 5}, "Settings")
        for _ in range(500):  # the NOTIFY arrives on the listening connection; wait on the state
            if await Settings.load() == Settings(level=5):
                break
            await asyncio.sleep(0.01)
        assert await Settings.load() == Settings(level=5)


async def test_six_scopes_entering_the_disposable_at_once_each_get_their_pool(database_dsn: str) -> None:
    from draive import ConfigurationRepository, ctx

    import pgstash.draive as ours

    async def one(index: int) -> tuple[int, int]:
        async with ctx.scope(
            f"scope-{index}",
            ours.PostgresConfigurationRepository(),
            disposables=(ours.PostgresConnectionPool.of(dsn=database_dsn, max_size=2),),
        ):
            memory = ours.PostgresModelMemory(f"session-{index}")

            async def task(turn: int) -> None:
                await memory.remember(said(f"{index}-{turn}"), answered("ok"))

            await asyncio.gather(*(ctx.spawn(task, turn) for turn in range(3)))
            await ConfigurationRepository.define(f"scope-{index}", {"index": index})
            return index, len((await memory.recall()).context)

    results = await asyncio.gather(*(one(index) for index in range(6)))
    assert sorted(results) == [(index, 6) for index in range(6)]


def _elements() -> list[Any]:
    from draive import ModelInput, ModelOutput
    from draive.models.types import ModelReasoning, ModelToolRequest, ModelToolResponse
    from draive.multimodal import MultimodalContent
    from draive.resources import ResourceContent

    image = ResourceContent.of(b"\x89PNG\r\n\x1a\n fake", mime_type="image/png")
    return [
        ModelInput.of(MultimodalContent.of("look", image), meta={"turn": 1}),
        ModelOutput.of(
            ModelReasoning.of("thinking about it", meta={"signature": "abc"}),
            ModelToolRequest.of("call-1", tool="search", arguments={"q": "cats", "n": 3}),
        ),
        ModelInput.of(ModelToolResponse.of("call-1", tool="search", content=MultimodalContent.of("3 cats"))),
        ModelOutput.of(MultimodalContent.of("done"), meta={"tokens": 12}),
    ]


async def test_images_reasoning_and_tool_calls_round_trip_as_draive_writes_them(
    database_dsn: str, postgres: Any
) -> None:
    from draive import ctx

    import pgstash.draive as ours

    elements = _elements()
    async with ctx.scope("elements", disposables=(ours.PostgresConnectionPool.of(dsn=database_dsn),)):
        memory = ours.PostgresModelMemory("multimodal")
        await memory.remember(*elements)
        recalled = await memory.recall()
        assert recalled.context == tuple(elements)
        assert [json.loads(each.to_json()) for each in recalled.context] == [
            json.loads(each.to_json()) for each in elements
        ]
        # a window starting at the tool response is trimmed to the next plain input: none here
        assert (await memory.recall(limit=2)).context == ()
    stored = await postgres.fetch("SELECT content FROM memories_elements ORDER BY created")
    assert [row["content"] for row in stored] == [json.loads(element.to_json()) for element in elements]


def test_requirements_select_what_haiways_check_accepts(database_dsn: str) -> None:
    check_requirements_select_what_haiway_checks(database_dsn, Row)


async def test_bad_input_keeps_its_clear_errors(database_dsn: str, embeddings: tuple[Any, Any]) -> None:
    import pytest
    from draive import ctx
    from draive.utils import VectorIndex

    import pgstash.draive as ours
    from pgstash import ConfigurationError
    from pgstash.draive.models import requirement_of

    class Unknown:
        operator = "regex"
        lhs = rhs = None

    with pytest.raises(NotImplementedError, match="regex"):
        requirement_of(Unknown())

    class Plain:  # neither attrs, a dataclass, nor a draive model
        pass

    async with ctx.scope(
        "errors",
        ours.PostgresVectorIndex(),
        *embeddings,
        disposables=(ours.PostgresConnectionPool.of(dsn=database_dsn),),
    ):
        with pytest.raises(TypeError, match="Plain"):
            await VectorIndex.search(Plain, limit=1)
    with pytest.raises(ConfigurationError, match="disposables"):
        await ours.PostgresModelMemory("outside").recall()
    with pytest.raises(TypeError, match="ModelInput"):
        async with ctx.scope("wrong", disposables=(ours.PostgresConnectionPool.of(dsn=database_dsn),)):
            await ours.PostgresModelMemory("m").remember("just a string")


def test_any_element_draive_can_build_round_trips_as_stored(database_dsn: str) -> None:
    from draive import ModelInput, ModelOutput, ctx
    from draive.models.types import ModelReasoning, ModelToolRequest, ModelToolResponse
    from draive.multimodal import MultimodalContent
    from draive.resources import ResourceContent

    import pgstash.draive as ours

    texts = st.text(
        alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=12
    )
    metas = st.dictionaries(st.sampled_from(["a", "b"]), st.integers(-5, 5) | texts, max_size=2)
    contents = st.builds(
        lambda text, data: (
            MultimodalContent.of(text, ResourceContent.of(data, mime_type="image/png"))
            if data
            else MultimodalContent.of(text)
        ),
        texts,
        st.binary(max_size=16),
    )
    requests = st.builds(
        lambda i, arguments, meta: ModelToolRequest.of(f"call-{i}", tool="t", arguments=arguments, meta=meta),
        st.integers(0, 9),
        st.dictionaries(st.sampled_from(["q", "n"]), st.integers(0, 9) | texts, max_size=2),
        metas,
    )
    responses = st.builds(
        lambda i, content: ModelToolResponse.of(f"call-{i}", tool="t", content=content),
        st.integers(0, 9),
        contents,
    )
    inputs = st.builds(
        lambda content, meta: ModelInput.of(content, meta=meta), contents, metas
    ) | responses.map(ModelInput.of)
    outputs = st.builds(
        lambda content, thought, request: ModelOutput.of(content, ModelReasoning.of(thought), request),
        contents,
        texts,
        requests,
    )

    async def run(elements: list[Any]) -> None:
        async with ctx.scope("elements", disposables=(ours.PostgresConnectionPool.of(dsn=database_dsn),)):
            memory = ours.PostgresModelMemory(f"m-{uuid.uuid4()}")
            await memory.remember(*elements)
            recalled = await memory.recall()
        # draive's trimming rule: the context begins at the first input without tool responses
        start = next(
            (i for i, e in enumerate(elements) if isinstance(e, ModelInput) and not e.contains_tools), None
        )
        expected = [] if start is None else elements[start:]
        assert [json.loads(e.to_json()) for e in recalled.context] == [
            json.loads(e.to_json()) for e in expected
        ]

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(inputs | outputs, min_size=1, max_size=5))
    def check(elements: list[Any]) -> None:
        asyncio.run(run(elements))

    check()
