"""Issue 21 (trust, third round), the input items: a lone surrogate is refused like NUL (item 11),
text and hybrid queries are bounded before they are sent and run under a timeout of their own
(item 2), requirement trees of any depth compile without recursion, up to a documented size
(item 10), and a configuration the converter cannot read back is refused naming the field path
(item 13)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import attrs
import pytest
from bench.roundtrips import RoundTripCounter

from pgstash import (
    AttributeRequirement,
    DatabaseError,
    HashingEmbedding,
    ModelInput,
    Postgres,
    PostgresConfigurationRepository,
    PostgresConnectionPool,
    PostgresInstructionsRepository,
    PostgresModelMemory,
    PostgresVectorIndex,
)
from pgstash.stores.cache import DocumentCache
from pgstash.stores.listener import Listener
from tests.support.caches import drained, eventually
from tests.support.faults import counts
from tests.support.roles import PASSWORD, as_role

SURROGATE = "caf\udce9"  # what surrogateescape decoding leaves of Latin-1 "café"


@attrs.frozen
class Note:
    text: str


Call = Callable[[Postgres], Awaitable[Any]]
# (case, the call, words the ValueError must hold)
SURROGATE_CASES: list[tuple[str, Call, str]] = [
    ("configuration identifier",
     lambda pg: PostgresConfigurationRepository(pg).define({"a": 1}, SURROGATE), "identifier"),
    ("configuration load", lambda pg: PostgresConfigurationRepository(pg).load_raw(SURROGATE), "identifier"),
    ("configuration value",
     lambda pg: PostgresConfigurationRepository(pg).define({"a": SURROGATE}, "k"), "$.a"),
    ("instructions name", lambda pg: PostgresInstructionsRepository(pg).define(SURROGATE, "t"), "name"),
    ("instructions content", lambda pg: PostgresInstructionsRepository(pg).define("i", SURROGATE), "content"),
    ("memory identifier",
     lambda pg: PostgresModelMemory(SURROGATE, postgres=pg).remember(ModelInput("x")), "identifier"),
    ("memory content",
     lambda pg: PostgresModelMemory("m", postgres=pg).remember(ModelInput(SURROGATE)), "$.content"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "call", "words"), SURROGATE_CASES, ids=[c[0] for c in SURROGATE_CASES])
async def test_a_lone_surrogate_is_refused_up_front_naming_the_field(
    postgres: Postgres, case: str, call: Call, words: str
) -> None:
    """Before: the driver failed to encode it and the store raised DatabaseError 22000 (or, for
    JSON, a TypeError); now `ValueError` naming the field, like NUL, nothing written."""
    before = await counts(postgres)
    with pytest.raises(ValueError, match="surrogate") as failure:
        await call(postgres)
    assert words in str(failure.value), f"{case}: {failure.value}"
    assert await counts(postgres) == before


async def notes(postgres: Postgres, **options: Any) -> PostgresVectorIndex:
    index = PostgresVectorIndex(postgres, embedding=HashingEmbedding(16), **options)
    await index.create_table(Note, dimension=16, text="text")
    await index.index(Note, values=[Note(f"note {i} about vacuum") for i in range(20)], attribute="text")
    return index


async def test_a_lone_surrogate_in_a_text_query_or_text_match_is_a_value_error(postgres: Postgres) -> None:
    index = await notes(postgres)
    for mode in ("text", "hybrid"):
        with pytest.raises(ValueError, match=r"the query .*surrogate \(U\+DCE9\) at position 3"):
            await index.search(Note, query=SURROGATE, mode=mode)
    with pytest.raises(ValueError, match=r"text_match's text .*surrogate"):
        AttributeRequirement.text_match("text", SURROGATE)


# -- item 13: the field path of a type the converter cannot read back -------------------------------


@attrs.frozen
class Left:
    size: int


@attrs.frozen
class Right:
    size: int


@attrs.frozen
class Either:
    choice: Left | Right  # cattrs cannot tell them apart (no unique field)


@attrs.frozen
class Holder:
    name: str
    either: Either


async def test_an_unreadable_union_is_refused_at_define_naming_the_field_path(postgres: Postgres) -> None:
    """Before: `... could not be read back as Either: Could not disambiguate between Left,
    Right ...`, naming the identifier but no field."""
    configurations = PostgresConfigurationRepository(postgres)
    before = await counts(postgres)
    with pytest.raises(TypeError, match="Could not disambiguate") as direct:
        await configurations.define(Either(Left(1)), "either")
    assert "'either'" in str(direct.value) and "@ $.choice" in str(direct.value), direct.value
    with pytest.raises(TypeError, match="Could not disambiguate") as nested:
        await configurations.define(Holder("h", Either(Right(2))), "holder")
    assert "@ $.either.choice" in str(nested.value), nested.value
    with pytest.raises(TypeError, match=r"load\(\) cannot structure Holder: .*@ \$\.either\.choice"):
        await configurations.load(Holder, "holder")
    assert await counts(postgres) == before


# -- item 10: requirement trees -------------------------------------------------------------------


@attrs.frozen
class Doc:
    text: str
    group: int


async def test_five_hundred_requirements_chained_with_or_filter_and_the_size_is_bounded(
    postgres: Postgres,
) -> None:
    """Before: 500 `equal` requirements chained with `|` (an access-control filter) raised a bare
    RecursionError while compiling. Chains flatten as they are built, their SQL is a balanced
    tree; past the documented limits, `ValueError` naming them."""
    index = PostgresVectorIndex(postgres, embedding=HashingEmbedding(16))
    await index.create_table(Doc, dimension=16)
    await index.index(Doc, values=[Doc(f"doc {i}", i) for i in range(40)], attribute="text")
    allowed = AttributeRequirement.equal("group", 1_000_000)
    for group in range(499):
        allowed = allowed | AttributeRequirement.equal("group", group * 2)  # the evens under 40
    found = await index.search(Doc, query="doc", limit=40, requirements=allowed)
    assert sorted(doc.group for doc in found) == list(range(0, 40, 2))
    assert allowed.operator == "or" and len(allowed.operands) == 500
    newest = await index.search(Doc, limit=40, requirements=allowed & AttributeRequirement.less("group", 10))
    assert sorted(doc.group for doc in newest) == [0, 2, 4, 6, 8]
    from pgstash.vectors.filters import MAX_NESTING, MAX_REQUIREMENTS  # after: the control above

    assert MAX_REQUIREMENTS == 1_000 and MAX_NESTING == 32
    with pytest.raises(ValueError, match=r"at most 1,000 conditions \(MAX_REQUIREMENTS\)"):
        for group in range(MAX_REQUIREMENTS):
            allowed = allowed | AttributeRequirement.equal("group", group)
    wide = AttributeRequirement.equal("group", 0) | AttributeRequirement.equal("group", 1)
    for _ in range(9):  # 2**10 conditions in a balanced tree, no chain longer than 2
        wide = (wide & AttributeRequirement.exists("group")) | (wide & AttributeRequirement.exists("text"))
    with pytest.raises(ValueError, match=r"MAX_REQUIREMENTS"):
        await index.search(Doc, query="doc", requirements=wide)
    deep = AttributeRequirement.equal("group", 1)
    for _ in range(MAX_NESTING):  # alternating operators do not flatten
        deep = ~(deep | AttributeRequirement.equal("group", 2))
    with pytest.raises(ValueError, match=r"nests at most 32 and/or/not levels \(MAX_NESTING\)"):
        await index.search(Doc, query="doc", requirements=deep)


# -- item 2: text and hybrid search are bounded -----------------------------------------------------


async def test_text_and_hybrid_queries_over_the_documented_bounds_are_refused_before_anything_is_sent(
    database_dsn: str,
) -> None:
    """Before: a 6 kB query ("alpha " * 1000) held a backend 90 s, 1,000 words joined with `or` 41 s
    (ts_rank_cd grows faster than the cube of the terms). Now `ValueError` naming the limit and
    where to set it, before the embedding is called or a byte is sent."""
    embedded: list[int] = []

    async def embedding(texts: Any) -> Any:
        embedded.append(len(texts))
        return await HashingEmbedding(16)(texts)

    async with RoundTripCounter(database_dsn) as counter, PostgresConnectionPool.of(counter.dsn) as postgres:
        index = await notes(postgres)
        index = PostgresVectorIndex(postgres, embedding=embedding)
        assert (index.max_query_terms, index.max_query_characters, index.text_timeout) == (64, 4_096, 5.0)
        counter.reset()
        for mode in ("text", "hybrid"):
            with pytest.raises(
                ValueError,
                match=r"6,000 characters; .* at most 4,096 \(PostgresVectorIndex\(max_query_characters",
            ):
                await index.search(Note, query="alpha " * 1000, mode=mode)
            with pytest.raises(
                ValueError, match=r"599 terms; .* at most 64 \(PostgresVectorIndex\(max_query_terms"
            ):
                await index.search(Note, query=" or ".join(f"w{i}" for i in range(300)), mode=mode)
            with pytest.raises(ValueError, match="65 terms"):
                await index.search(Note, query=" ".join(["vacuum"] * 65), mode=mode)
        assert (counter.round_trips, embedded) == (0, [])
        at_the_bounds = " ".join(["vacuum"] * 64)
        for mode in ("text", "hybrid"):
            assert len(await index.search(Note, query=at_the_bounds, mode=mode, limit=3)) == 3
        roomy = PostgresVectorIndex(
            postgres, embedding=embedding, max_query_terms=200, max_query_characters=9_000
        )
        assert len(await roomy.search(Note, query=" ".join(["vacuum"] * 150), mode="text", limit=3)) == 3
    for bad in (
        {"max_query_terms": 0},
        {"max_query_characters": -1},
        {"text_timeout": 0},
        {"text_timeout": "5"},
    ):
        with pytest.raises(ValueError):
            PostgresVectorIndex(**bad)


@contextlib.asynccontextmanager
async def table_locked(dsn: str, table: str) -> Any:
    """Another session holds the table ACCESS EXCLUSIVE: a search waits for it until cancelled."""
    holder = await asyncpg.connect(dsn)
    try:
        async with holder.transaction():
            await holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        await holder.close()


@pytest.mark.parametrize("mode", ["text", "hybrid"])
async def test_text_and_hybrid_search_run_under_a_statement_timeout_of_their_own(
    database_dsn: str, mode: str
) -> None:
    """A search that cannot finish (here: waiting on another session's lock, which no amount of
    machine speed ends) is cancelled at `text_timeout` with `DatabaseError` 57014 naming it.
    Before: no bound; it waited for the lock holder. The timeout is the transaction's, never
    the session's: the connection's statement_timeout is untouched afterwards."""
    async with PostgresConnectionPool.of(database_dsn, max_size=1) as postgres:
        index = attrs.evolve(await notes(postgres), text_timeout=0.2)
        assert await index.search(Note, query="vacuum", mode=mode, limit=1)
        async with table_locked(database_dsn, "note"):
            with pytest.raises(DatabaseError) as cancelled:
                await asyncio.wait_for(index.search(Note, query="vacuum", mode=mode), 30)
        assert cancelled.value.sqlstate == "57014"
        assert "statement timeout (0.2 s, PostgresVectorIndex(text_timeout=...)" in str(cancelled.value)
        assert await postgres.fetch_value("SHOW statement_timeout") == "0"
        async with postgres.transaction():  # in a caller's transaction: a savepoint, rolled back
            assert await index.search(Note, query="vacuum", mode=mode, limit=1)
            assert await postgres.fetch_value("SHOW statement_timeout") == "0"
    # a lower timeout of the session's own wins over text_timeout
    async with PostgresConnectionPool.of(
        database_dsn, server_settings={"statement_timeout": "150"}
    ) as postgres:
        index = attrs.evolve(await notes(postgres), text_timeout=3600.0)
        async with table_locked(database_dsn, "note"):
            with pytest.raises(DatabaseError) as cancelled:
                await asyncio.wait_for(index.search(Note, query="vacuum", mode=mode), 30)
        assert cancelled.value.sqlstate == "57014"


# -- item 7, the NOTIFY half: a storm from a role that may only connect -------------------------------


@attrs.frozen
class Setting:
    value: str


async def test_a_notify_storm_from_a_connect_only_role_costs_bounded_work_and_few_warnings(
    database_dsn: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: 2,000 `pg_notify('pgstash_documents', ...)` from a role with only CONNECT each
    flushed every cache and logged a WARNING (2,000 of each). Now a burst's evictions run once
    per turn of the event loop, and the warnings are one at once plus one per interval naming
    the count; the caches keep working."""
    caplog.set_level(logging.WARNING, logger="pgstash")
    monkeypatch.setattr(Listener, "warning_interval", 1.0)
    evictions: list[str | None] = []
    invalidate = DocumentCache.invalidate

    def counted(self: DocumentCache, key: str | None) -> None:
        if self.store == "configurations":
            evictions.append(key)
        invalidate(self, key)

    monkeypatch.setattr(DocumentCache, "invalidate", counted)
    intruder = f"intruder_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database_dsn)
    await admin.execute(f"CREATE ROLE {intruder} LOGIN PASSWORD '{PASSWORD}'")  # CONNECT: PUBLIC's
    try:
        async with PostgresConnectionPool.of(database_dsn) as postgres:
            configurations = PostgresConfigurationRepository(postgres, cache_expiration=3600)
            await configurations.define(Setting("before"), "storm")
            assert await configurations.load(Setting, "storm") == Setting("before")
            await drained(postgres)
            evictions.clear()
            caplog.clear()
            sender = await asyncpg.connect(as_role(database_dsn, intruder))
            try:
                storm = (
                    "SELECT pg_notify('pgstash_documents', 'junk ' || i) FROM generate_series(1, 2000) AS i"
                )
                await sender.execute(storm)
                await sender.execute("SELECT pg_notify('pgstash_documents', 'junk again')")
            finally:
                await sender.close()
            await drained(postgres)  # every one of them has arrived

            def warnings() -> list[str]:
                return [r.getMessage() for r in caplog.records if "unexpected payload" in r.getMessage()]

            async def reported() -> bool:
                return len(warnings()) >= 2

            await eventually(reported, within=10.0)
            assert 1 <= len(evictions) <= 200, f"{len(evictions)} evictions for 2,001 notifications"
            assert len(warnings()) == 2, f"{len(warnings())} warnings for 2,001 notifications"
            first, summary = warnings()
            assert "junk" in first and "any role that may connect" in first, first
            assert "2000 more unexpected payloads" in summary, summary
            # the caches still work: a define elsewhere is seen, and loads are cached again
            async with PostgresConnectionPool.of(database_dsn) as other:
                await PostgresConfigurationRepository(other).define(Setting("after"), "storm")

            async def seen() -> bool:
                return await configurations.load(Setting, "storm") == Setting("after")

            await eventually(seen, within=5.0)
            await drained(postgres)
            evictions.clear()
            assert await configurations.load(Setting, "storm") == Setting("after")
            assert evictions == []
        assert len(warnings()) <= 3
    finally:
        await admin.execute(f"DROP ROLE {intruder}")
        await admin.close()


# -- item 6: a caller's temporary table never shadows pgstash's tables --------------------------------

SHADOW = "CREATE TEMP TABLE memories_elements (LIKE public.memories_elements INCLUDING ALL)"


async def stored(dsn: str, identifier: str) -> int:
    """Elements of the memory in the real table, read on a connection of its own."""
    connection = await asyncpg.connect(dsn)
    try:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM public.memories_elements WHERE identifier = $1", identifier
        )
        return count
    finally:
        await connection.close()


async def test_a_callers_temporary_table_never_receives_pgstashs_writes(database_dsn: str) -> None:
    """Before: after the caller's `CREATE TEMP TABLE memories_elements (LIKE ...)` on a pooled
    connection, `remember` on it wrote into the temporary table (recall saw it, the real table
    held nothing, and it vanished with the connection). Now a connection that ran the caller's
    SQL is reset of its temporary tables (DISCARD TEMP) before pgstash uses it again, and inside
    a transaction, session or connection block pgstash refuses to run while such a table
    shadows one of the same name on the search path."""
    async with PostgresConnectionPool.of(database_dsn, min_size=1, max_size=1) as postgres:
        memory = PostgresModelMemory("shadowed", postgres=postgres)
        await postgres.execute(SHADOW)  # the caller's SQL on the one pooled connection
        await memory.remember(ModelInput("kept"))
        assert await stored(database_dsn, "shadowed") == 1
        async with postgres.connection() as connection:  # the caller's own driver calls
            await connection.execute(SHADOW)
        await memory.remember(ModelInput("kept too"))
        assert await stored(database_dsn, "shadowed") == 2

        async with postgres.session():
            await postgres.execute(SHADOW)
            with pytest.raises(DatabaseError, match=r"temporary table.s. memories_elements .* shadow"):
                await memory.remember(ModelInput("refused"))
            await postgres.execute("DROP TABLE pg_temp.memories_elements")
            await memory.remember(ModelInput("after the drop"))
        with pytest.raises(DatabaseError, match="shadow"):
            async with postgres.transaction():
                async with postgres.connection() as connection:
                    await connection.execute(SHADOW)
                await memory.recall()
        assert [e.content for e in (await memory.recall()).context] == ["kept", "kept too", "after the drop"]
        assert await stored(database_dsn, "shadowed") == 3
        async with postgres.transaction():  # the caller's SQL without a shadow costs one check
            await postgres.execute("CREATE TEMP TABLE scratch (n INT) ON COMMIT DROP")
            await memory.remember(ModelInput("beside a temp table of another name"))
        assert await stored(database_dsn, "shadowed") == 4
