"""Model memory: what is remembered comes back whole, in commit order, under concurrency."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import pytest
from bench.roundtrips import RoundTripCounter

from pgstash import (
    ConfigurationError,
    DatabaseError,
    MemoryElementError,
    ModelInput,
    ModelMemoryRecall,
    ModelOutput,
    Postgres,
    PostgresConnectionPool,
    PostgresModelMemory,
    SchemaMissingError,
    ToolRequest,
    ToolResponse,
)
from pgstash.sql.catalogue import query
from pgstash.stores.memory import element_json, element_of
from tests.support.plans import plan_nodes

# The seed's three memory tables, verbatim from seed.md: no index beyond the primary key.
SEED_MEMORY_TABLES = """
CREATE TABLE memories (
    identifier TEXT NOT NULL,
    created TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (identifier)
);

CREATE TABLE memories_variables (
    identifier TEXT NOT NULL REFERENCES memories (identifier) ON DELETE CASCADE,
    variables JSONB NOT NULL DEFAULT '{}'::jsonb,
    created TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE memories_elements (
    identifier TEXT NOT NULL REFERENCES memories (identifier) ON DELETE CASCADE,
    content JSONB NOT NULL,
    created TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
);
"""

QUESTION = ModelInput("What is the weather in Paris?", meta={"user": "ada"})
CALL = ModelOutput("", tool_requests=(ToolRequest("call-1", "weather", {"city": "Paris"}),))
RESULT = ModelInput(
    "",
    tool_responses=(
        ToolResponse("call-1", "weather", "18 C, clouds"),
        ToolResponse("call-2", "radar", "radar offline", error=True),
    ),
)
ANSWER = ModelOutput("18 degrees and cloudy.", meta={"model": "m-1", "tokens": 7})
THANKS = ModelInput("Thanks!")
WELCOME = ModelOutput("You are welcome.")
CONVERSATION = (QUESTION, CALL, RESULT, ANSWER, THANKS, WELCOME)


async def stored(postgres: Postgres, identifier: str) -> list[Any]:
    rows = await postgres.fetch(
        "SELECT content FROM memories_elements WHERE identifier = $1 ORDER BY created", identifier
    )
    return [row["content"] for row in rows]


async def memory_exists(postgres: Postgres, identifier: str) -> bool:
    return bool(await postgres.fetch_value("SELECT count(*) FROM memories WHERE identifier = $1", identifier))


# -- elements --------------------------------------------------------------------------------


def test_elements_are_tagged_json_and_read_back_equal() -> None:
    assert element_json(RESULT) == {
        "type": "model_input",
        "content": "",
        "tool_responses": [
            {"identifier": "call-1", "tool": "weather", "content": "18 C, clouds", "error": False},
            {"identifier": "call-2", "tool": "radar", "content": "radar offline", "error": True},
        ],
        "meta": {},
    }
    assert element_json(CALL) == {
        "type": "model_output",
        "content": "",
        "tool_requests": [{"identifier": "call-1", "tool": "weather", "arguments": {"city": "Paris"}}],
        "meta": {},
    }
    for element in CONVERSATION:
        assert element_of(json.loads(json.dumps(element_json(element)))) == element


def test_elements_validate_at_construction() -> None:
    with pytest.raises(TypeError):
        ModelInput(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ModelOutput("x", tool_requests=[ToolResponse("1", "t", "c")])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="meta must be a mapping"):
        ModelInput("x", meta=[1])  # type: ignore[arg-type]
    assert ModelInput("x", tool_responses=[ToolResponse("1", "t", "c")]).tool_responses == (
        ToolResponse("1", "t", "c"),
    )


def test_a_stored_element_of_unknown_type_is_named() -> None:
    with pytest.raises(MemoryElementError, match="unknown type 'system_note'"):
        element_of({"type": "system_note", "content": "x"}, "m")
    with pytest.raises(MemoryElementError, match="unknown type None"):
        element_of({"content": "x"}, "m")
    with pytest.raises(MemoryElementError, match=r"'model_input' element that does not fit.*content"):
        element_of({"type": "model_input"}, "m")


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="identifier must not be empty"):
        PostgresModelMemory("")
    with pytest.raises(TypeError, match="identifier must be a str"):
        PostgresModelMemory(7)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="postgres"):
        PostgresModelMemory("m", postgres="postgresql://x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="recall_limit must be a positive int"):
        PostgresModelMemory("m", recall_limit=0)


# -- remember and recall ---------------------------------------------------------------------


async def test_remember_creates_the_memory_and_recall_returns_everything_in_order(postgres: Postgres) -> None:
    memory = PostgresModelMemory("chat-1", postgres=postgres)
    assert not await memory_exists(postgres, "chat-1")
    await memory.remember(QUESTION, CALL)
    await memory.remember(RESULT, ANSWER, variables={"city": "Paris"})
    await memory.remember(THANKS, WELCOME)
    recall = await memory.recall()
    assert recall == ModelMemoryRecall("chat-1", {"city": "Paris"}, CONVERSATION)
    assert [content["type"] for content in await stored(postgres, "chat-1")] == [
        "model_input",
        "model_output",
        "model_input",
        "model_output",
        "model_input",
        "model_output",
    ]


async def test_an_unknown_memory_recalls_empty_and_is_not_created(postgres: Postgres) -> None:
    recall = await PostgresModelMemory("nobody", postgres=postgres).recall(limit=10)
    assert recall == ModelMemoryRecall("nobody", {}, ())
    assert not await memory_exists(postgres, "nobody")


async def test_the_newest_variables_win_and_maintenance_only_ensures(postgres: Postgres) -> None:
    await PostgresModelMemory("empty", postgres=postgres).remember()
    assert await memory_exists(postgres, "empty")
    memory = PostgresModelMemory("vars", postgres=postgres)
    await memory.maintenance()
    assert await memory_exists(postgres, "vars")
    assert (await memory.recall()).variables == {}
    await memory.maintenance(variables={"step": 1})
    await memory.remember(QUESTION, variables={"step": 2, "nested": {"a": [1, None]}})
    await memory.remember(ANSWER)  # no variables: the snapshot stays
    await memory.maintenance()
    recall = await memory.recall()
    assert recall.variables == {"step": 2, "nested": {"a": [1, None]}}
    assert recall.context == (QUESTION, ANSWER)
    await memory.maintenance(variables={})
    assert (await memory.recall()).variables == {}


async def test_a_limited_window_never_opens_on_an_output_or_a_tool_response(postgres: Postgres) -> None:
    memory = PostgresModelMemory("window", postgres=postgres)
    await memory.remember(*CONVERSATION)
    assert (await memory.recall(limit=2)).context == (THANKS, WELCOME)
    assert (await memory.recall(limit=3)).context == (THANKS, WELCOME)  # ANSWER trimmed
    assert (await memory.recall(limit=4)).context == (THANKS, WELCOME)  # RESULT, ANSWER trimmed
    assert (await memory.recall(limit=5)).context == (THANKS, WELCOME)  # CALL too
    assert (await memory.recall(limit=6)).context == CONVERSATION
    assert (await memory.recall(limit=100)).context == CONVERSATION
    assert (await memory.recall(limit=1)).context == ()  # only WELCOME, which cannot open a window
    with pytest.raises(ValueError, match="limit must be a positive int"):
        await memory.recall(limit=0)


async def test_recall_limit_is_the_default_limit(postgres: Postgres) -> None:
    await PostgresModelMemory("limited", postgres=postgres).remember(*CONVERSATION, QUESTION)
    memory = PostgresModelMemory("limited", postgres=postgres, recall_limit=3)
    assert (await memory.recall()).context == (THANKS, WELCOME, QUESTION)
    assert (await memory.recall(limit=7)).context == (*CONVERSATION, QUESTION)


async def test_an_unlimited_recall_returns_the_history_as_stored(postgres: Postgres) -> None:
    memory = PostgresModelMemory("greeting", postgres=postgres)
    await memory.remember(WELCOME, QUESTION)
    assert (await memory.recall()).context == (WELCOME, QUESTION)
    assert (await memory.recall(limit=2)).context == (QUESTION,)


async def test_forget_deletes_the_memory_and_nothing_else(postgres: Postgres) -> None:
    memory = PostgresModelMemory("gone", postgres=postgres)
    other = PostgresModelMemory("kept", postgres=postgres)
    await memory.remember(QUESTION, ANSWER, variables={"a": 1})
    await other.remember(THANKS, variables={"b": 2})
    await memory.forget()
    assert not await memory_exists(postgres, "gone")
    assert await stored(postgres, "gone") == []
    assert not await postgres.fetch_value("SELECT count(*) FROM memories_variables WHERE identifier = 'gone'")
    assert await memory.recall() == ModelMemoryRecall("gone", {}, ())
    assert await other.recall() == ModelMemoryRecall("kept", {"b": 2}, (THANKS,))
    await memory.forget()  # forgetting twice is fine
    await memory.remember(THANKS)
    assert (await memory.recall()).context == (THANKS,)


async def test_a_stored_element_of_unknown_type_fails_recall_naming_it(postgres: Postgres) -> None:
    memory = PostgresModelMemory("odd", postgres=postgres)
    await memory.remember(QUESTION)
    await postgres.execute(
        "INSERT INTO memories_elements (identifier, content) VALUES ('odd', $1)",
        {"type": "system_note", "content": "x"},
    )
    with pytest.raises(MemoryElementError, match=r"memory 'odd' .*unknown type 'system_note'"):
        await memory.recall()


# -- nothing half-written -------------------------------------------------------------------


async def test_an_item_that_is_not_json_fails_the_whole_remember_before_writing(postgres: Postgres) -> None:
    memory = PostgresModelMemory("bad", postgres=postgres)
    broken = ModelOutput("ok", meta={"when": object()})
    with pytest.raises(TypeError, match=r"item 2 \(ModelOutput\) cannot be stored as JSON"):
        await memory.remember(QUESTION, broken, THANKS)
    with pytest.raises(TypeError, match="item 1 is a str"):
        await memory.remember("hello")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="variables cannot be stored as JSON"):
        await memory.remember(QUESTION, variables={1: "non-str key"})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="variables must be a mapping"):
        await memory.maintenance(variables=[("a", 1)])  # type: ignore[arg-type]
    assert not await memory_exists(postgres, "bad")


async def test_a_failure_in_the_database_leaves_nothing_behind(postgres: Postgres) -> None:
    memory = PostgresModelMemory("atomic", postgres=postgres)
    # a check constraint refuses the second item: the failure comes from the server, after the
    # memory row was locked and the first item inserted.
    await postgres.execute(
        "ALTER TABLE memories_elements ADD CONSTRAINT no_boom CHECK (content->>'content' <> 'boom')"
    )
    with pytest.raises(DatabaseError) as failure:
        await memory.remember(QUESTION, ModelOutput("boom"), variables={"v": 1})
    assert failure.value.query == "memory_remember"
    assert failure.value.sqlstate == "23514"
    assert not await memory_exists(postgres, "atomic")
    assert await stored(postgres, "atomic") == []


async def test_calls_join_the_transaction_in_scope(postgres: Postgres) -> None:
    memory = PostgresModelMemory("tx")  # the current pool, at call time
    with pytest.raises(RuntimeError):
        async with postgres.transaction():
            await memory.remember(QUESTION, variables={"v": 1})
            assert (await memory.recall()).context == (QUESTION,)  # same connection
            raise RuntimeError("roll back")
    assert not await memory_exists(postgres, "tx")
    async with postgres.transaction():
        await memory.remember(QUESTION)
        await memory.remember(ANSWER)
    assert (await memory.recall()).context == (QUESTION, ANSWER)


async def test_without_postgres_the_current_pool_is_used_at_call_time(database_dsn: str) -> None:
    memory = PostgresModelMemory("current")
    with pytest.raises(ConfigurationError, match="no PostgreSQL pool is active"):
        await memory.recall()
    async with PostgresConnectionPool.of(dsn=database_dsn):
        await memory.remember(QUESTION)
        assert (await memory.recall()).context == (QUESTION,)


# -- order under concurrency -----------------------------------------------------------------


@pytest.mark.parametrize("clock", ["server clock", "newest row an hour ahead"])
async def test_concurrent_remembers_never_interleave(database_dsn: str, clock: str) -> None:
    """30 concurrent calls of 5 items come back as 30 unbroken runs of 5. With the newest row
    stamped ahead of the clock every call stamps its items after that row, so only the lock
    and a read of the newest row after it keep the calls apart."""
    async with PostgresConnectionPool.of(dsn=database_dsn, min_size=30, max_size=30) as postgres:
        memory = PostgresModelMemory("busy", postgres=postgres)
        await memory.remember(QUESTION)
        if clock != "server clock":
            await postgres.execute("UPDATE memories_elements SET created = created + interval '1 hour'")

        async def speak(call: int) -> None:
            await memory.remember(*(ModelInput(f"{call}:{item}") for item in range(5)))

        await asyncio.gather(*(speak(call) for call in range(30)))
        context = (await memory.recall()).context
    assert context[0] == QUESTION
    context = context[1:]
    assert len(context) == 150
    runs = [[element.content for element in context[start : start + 5]] for start in range(0, 150, 5)]
    calls = [run[0].split(":")[0] for run in runs]
    assert sorted(calls, key=int) == [str(call) for call in range(30)]  # each call exactly once
    for run, call in zip(runs, calls, strict=True):
        assert run == [f"{call}:{item}" for item in range(5)]


async def test_recall_order_is_commit_order_whatever_the_stored_clock(database_dsn: str) -> None:
    """A remember waiting for the memory's lock reads the newest rows after getting it, so its
    items follow a row committed meanwhile, even one stamped an hour ahead of the server clock."""
    async with (
        PostgresConnectionPool.of(dsn=database_dsn) as first,
        PostgresConnectionPool.of(dsn=database_dsn) as second,
    ):
        await PostgresModelMemory("ordered", postgres=first).remember(QUESTION)
        async with first.transaction():
            await PostgresModelMemory("ordered", postgres=first).remember(CALL)  # holds the lock
            await first.execute(
                "INSERT INTO memories_elements (identifier, content, created) "
                "VALUES ('ordered', $1, clock_timestamp() + interval '1 hour')",
                element_json(ANSWER),
            )
            waiting = asyncio.create_task(
                PostgresModelMemory("ordered", postgres=second).remember(THANKS, WELCOME)
            )
            for _ in range(200):  # until the second remember waits for the lock
                if await second.fetch_value(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                ):
                    break
                await asyncio.sleep(0.01)
            else:
                pytest.fail("the second remember never waited for the memory's lock")
            assert not waiting.done()
        await waiting
        context = (await PostgresModelMemory("ordered", postgres=second).recall()).context
    assert context == (QUESTION, CALL, ANSWER, THANKS, WELCOME)


# -- the seed's tables, verbatim ----------------------------------------------------------------


async def test_the_store_works_on_the_seed_tables_created_verbatim(empty_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=empty_dsn, max_size=12) as postgres:
        memory = PostgresModelMemory("seed", postgres=postgres, recall_limit=4)
        with pytest.raises(SchemaMissingError, match="memories"):
            await memory.recall()
        await postgres.execute(SEED_MEMORY_TABLES)
        assert (
            await postgres.fetch_value("SELECT count(*) FROM pg_indexes WHERE tablename LIKE 'memories%'")
            == 1
        )  # the primary key of memories only
        await memory.remember(*CONVERSATION[:3])
        await memory.maintenance(variables={"v": 1})
        await memory.remember(*CONVERSATION[3:], variables={"v": 2})

        async def speak(call: int) -> None:
            await memory.remember(*(ModelInput(f"{call}:{item}") for item in range(3)))

        await asyncio.gather(*(speak(call) for call in range(10)))
        everything = (await memory.recall(limit=100)).context
        assert everything[:6] == CONVERSATION
        runs = [[element.content for element in everything[start : start + 3]] for start in range(6, 36, 3)]
        assert all(run == [f"{run[0].split(':')[0]}:{item}" for item in range(3)] for run in runs)
        recall = await memory.recall()
        assert recall.variables == {"v": 2} and len(recall.context) == 4
        await memory.forget()
        assert await memory.recall() == ModelMemoryRecall("seed", {}, ())
        assert await postgres.fetch_value("SELECT count(*) FROM memories_elements") == 0


# -- served by the index, in one round trip ----------------------------------------------------


async def test_recall_and_remember_are_served_by_the_identifier_created_indexes(postgres: Postgres) -> None:
    await postgres.execute(
        "INSERT INTO memories (identifier) SELECT 'memory-' || m FROM generate_series(1, 1000) AS m"
    )
    await postgres.execute(
        "INSERT INTO memories_elements (identifier, content, created) "
        "SELECT 'memory-' || (i % 1000 + 1), jsonb_build_object('type', 'model_input', 'content', 'n' || i), "
        "now() + i * interval '1 microsecond' FROM generate_series(1, 100000) AS i"
    )
    await postgres.execute(
        "INSERT INTO memories_variables (identifier, variables, created) "
        "SELECT 'memory-' || (i % 1000 + 1), jsonb_build_object('i', i), "
        "now() + i * interval '1 microsecond' FROM generate_series(1, 10000) AS i"
    )
    await postgres.execute("ANALYZE memories, memories_elements, memories_variables")
    recall, remember = query("memory_recall"), query("memory_remember")
    statements = [
        (recall, {"identifier": "memory-500", "element_limit": 50, "before": None}),
        (recall, {"identifier": "memory-500", "element_limit": None, "before": None}),
        # remember finds the newest element and variables of the memory through the same indexes
        (remember, {"identifier": "memory-500", "contents": [{"type": "model_input"}], "variables": {}}),
    ]
    async with postgres.session(), postgres.connection() as connection:
        for mode in ("force_custom_plan", "force_generic_plan"):
            await connection.execute(f"SET plan_cache_mode = {mode}")
            for named, values in statements:
                explained = await connection.fetchval(
                    f"EXPLAIN (FORMAT JSON) {named.sql}", *named.arguments(values)
                )
                nodes = plan_nodes(json.loads(explained)[0]["Plan"])
                scans = {node.get("Index Name") for node in nodes if "Index" in node["Node Type"]}
                assert "memories_elements_pkey" in scans, (mode, values, nodes)
                assert "memories_variables_pkey" in scans, (mode, values, nodes)
                assert not [node for node in nodes if node["Node Type"] == "Seq Scan"], (mode, values, nodes)
        await connection.execute("RESET plan_cache_mode")
    recalled = await PostgresModelMemory("memory-500", postgres=postgres).recall(limit=50)
    assert len(recalled.context) == 50
    assert [element.content for element in recalled.context] == [f"n{i}" for i in range(50499, 100000, 1000)]


@pytest.mark.direct_only("counts round trips; behind a transaction pooler each statement is also parsed")
async def test_remember_and_recall_take_one_round_trip_each(database_dsn: str) -> None:
    """Counted on the wire by a proxy. Outside a transaction the pool's reset on release
    (asyncpg's `RESET ALL`, ...) adds one round trip to any call."""
    async with (
        RoundTripCounter(database_dsn) as counter,
        PostgresConnectionPool.of(dsn=counter.dsn, min_size=1, max_size=1) as postgres,
    ):
        memory = PostgresModelMemory("wire", postgres=postgres)
        items = [ModelInput(f"item {n}", meta={"n": n}) for n in range(20)]
        await memory.remember(*items, variables={"warm": True})  # prepares the statements
        await memory.recall(limit=50)
        counter.reset()
        await memory.remember(*items, variables={"n": 20})
        assert counter.round_trips == 1  # the pipeline (no reset: pgstash's statements leave it clean)
        counter.reset()
        assert len((await memory.recall(limit=50)).context) == 40
        assert counter.round_trips == 1  # the query (no reset: pgstash's statements leave it clean)
        async with postgres.transaction():
            counter.reset()
            await memory.remember(*items)
            assert counter.round_trips == 1
            counter.reset()
            await memory.recall(limit=50)
            assert counter.round_trips == 1


async def test_the_stored_rows_are_plain_json_for_other_readers(database_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=database_dsn) as postgres:
        await PostgresModelMemory("plain", postgres=postgres).remember(RESULT, variables={"k": "v"})
    connection = await asyncpg.connect(database_dsn)
    try:
        content = await connection.fetchval("SELECT content::text FROM memories_elements")
        variables = await connection.fetchval("SELECT variables::text FROM memories_variables")
    finally:
        await connection.close()
    assert json.loads(content) == element_json(RESULT)
    assert json.loads(variables) == {"k": "v"}


class _TaggedText:
    """A framework's own element JSON, stored as it is: {"kind": ..., "text": ...}."""

    def encode(self, element: Any) -> dict[str, Any]:
        if not isinstance(element, tuple):
            raise TypeError(f"this codec takes (kind, text) tuples, got {type(element).__name__}")
        return {"kind": element[0], "text": element[1]}

    def decode(self, content: Any) -> Any:
        return (content["kind"], content["text"])


async def test_a_codec_stores_a_frameworks_elements_as_they_are(postgres: Postgres) -> None:
    memory = PostgresModelMemory("framework", postgres=postgres, codec=_TaggedText())
    await memory.remember(("user", "hi"), ("bot", "hello"))
    stored = await postgres.fetch("SELECT content FROM memories_elements ORDER BY created")
    expected = [{"kind": "user", "text": "hi"}, {"kind": "bot", "text": "hello"}]
    assert [row["content"] for row in stored] == expected
    recalled = await memory.recall()
    assert recalled.context == (("user", "hi"), ("bot", "hello"))
    with pytest.raises(TypeError, match="tuples"):
        await memory.remember(("user", "kept?"), "not a tuple")
    assert len((await memory.recall()).context) == 2  # nothing of the refused call was written
    # no starts=: a codec's limited window is not trimmed by pgstash's own rule
    assert (await memory.recall(limit=1)).context == (("bot", "hello"),)


async def test_recall_pages_backwards_with_before_and_each_elements_created(postgres: Postgres) -> None:
    memory = PostgresModelMemory("paged", postgres=postgres)
    elements = [ModelInput(f"q{index}") if index % 2 == 0 else ModelOutput(f"a{index}") for index in range(7)]
    await memory.remember(*elements)
    everything = await memory.recall()
    assert len(everything.created) == 7 and list(everything.created) == sorted(everything.created)
    page = await memory.recall(3, before=everything.created[-1])
    # the window q4 a5 ... before the last element (q6): a3 a5 trimmed to start at q4
    assert page.context == (ModelInput("q4"), ModelOutput("a5"))
    assert page.created == everything.created[4:6]
    older = await memory.recall(2, before=page.created[0])
    assert older.context == (ModelInput("q2"), ModelOutput("a3"))
    with pytest.raises(TypeError, match="aware datetime"):
        await memory.recall(before="yesterday")  # type: ignore[arg-type]


async def test_starts_decides_where_every_recall_begins(postgres: Postgres) -> None:
    memory = PostgresModelMemory(
        "starts", postgres=postgres, starts=lambda element: element.content.startswith("begin")
    )
    await memory.remember(ModelOutput("stray"), ModelInput("x"), ModelInput("begin here"), ModelOutput("ok"))
    assert (await memory.recall()).context == (ModelInput("begin here"), ModelOutput("ok"))
    assert (await memory.recall(limit=1)).context == ()
