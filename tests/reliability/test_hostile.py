"""Hostile input: hypothesis-generated strings full of SQL and format syntax (quotes, backslashes,
`$1`, `{}`, `%`, `_`, `--`, `;`, any NUL-free unicode) in every position a user controls. Each is
stored and read back as data, or refused with `ValueError` before anything is written; a canary
table, and the set of tables, survive every case."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgstash import (
    InstructionsArgumentDeclaration,
    InstructionsDeclaration,
    ModelInput,
    ModelOutput,
    Postgres,
    PostgresConfigurationRepository,
    PostgresConnectionPool,
    PostgresInstructionsRepository,
    PostgresModelMemory,
    ToolRequest,
    ToolResponse,
)
from pgstash.templates import render
from tests.conftest import TEMPLATE_DATABASE, _clone, _drop, with_database
from tests.reliability.faults import counts

PIECES = [
    "'", "''", '"', "\\", "\\'", "$1", "$2::text", "$$", "$tag$", "{}", "{0}", "{", "}", "{{", "%", "%s",
    "%%", "_", "--", ";", "/*", "*/", "'; DROP TABLE canary; --", '"); DROP TABLE canary; --',
    "E'\\x41'", "\\x00", "\\u0000", "NULL", "null", "\n", "\r\n", "\t", " ", ".", "->", "#>>", "?|",
    "@>", "ü", "漢字", "🦆", "\u2028", "\ufeff", "a" * 70,
]
CHARACTERS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
hostile = st.lists(
    st.one_of(st.sampled_from(PIECES), st.text(CHARACTERS, max_size=6)), max_size=6
).map("".join)
EXAMPLES = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


class Database:
    """A fresh migrated database with a canary table, driven from a synchronous hypothesis test
    through one event loop (the pool lives in it)."""

    def __init__(self, runner: asyncio.Runner, postgres: Postgres) -> None:
        self.runner = runner
        self.postgres = postgres

    def run(self, work: Callable[[Postgres], Awaitable[Any]]) -> Any:
        return self.runner.run(work(self.postgres))

    async def intact(self, postgres: Postgres) -> None:
        assert await postgres.fetch_value("SELECT string_agg(word, ',') FROM canary") == "tweet"
        tables = await postgres.fetch_value(
            "SELECT array_agg(relname::text ORDER BY relname) FROM pg_class "
            "WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
        )
        assert tables == ["canary", *sorted(["configurations", "instructions", "memories",
                                              "memories_elements", "memories_variables",
                                              "pgstash_migrations"])]


@pytest.fixture
def database(template_ready: str) -> Iterator[Database]:
    with asyncio.Runner() as runner:
        name = runner.run(_clone(template_ready, TEMPLATE_DATABASE))
        pool = PostgresConnectionPool.of(dsn=with_database(template_ready, name))
        postgres = runner.run(pool.open())
        try:
            runner.run(postgres.execute("CREATE TABLE canary AS SELECT 'tweet' AS word"))
            yield Database(runner, postgres)
        finally:
            runner.run(pool.close())
            runner.run(_drop(template_ready, name))


async def stored_or_refused(postgres: Postgres, key: str, write: Awaitable[Any]) -> bool:
    """Awaits the write: True when it stored, False when it was refused with `ValueError`, which
    only an empty key may be, and then nothing was written."""
    before = await counts(postgres)
    try:
        await write
    except ValueError:
        assert key == "", f"a non-empty key was refused: {key!r}"
        assert await counts(postgres) == before
        return False
    return True


@EXAMPLES
@given(identifier=hostile, key=hostile, value=hostile)
def test_configurations_store_hostile_identifiers_and_content_as_data(
    database: Database, identifier: str, key: str, value: str
) -> None:
    content = {key: value, "nested": [value, {key: identifier}], "n": 1}

    async def check(postgres: Postgres) -> None:
        repository = PostgresConfigurationRepository(postgres)
        if await stored_or_refused(postgres, identifier, repository.define(content, identifier)):
            assert await repository.load_raw(identifier) == content
            assert [snapshot.content for snapshot in await repository.history(identifier)] == [content]
            assert identifier in await repository.configurations()
            await repository.remove(identifier)
            assert await repository.load_raw(identifier) is None
        await database.intact(postgres)

    database.run(check)


@EXAMPLES
@given(name=hostile, description=hostile, text=hostile, value=hostile)
def test_instructions_store_hostile_names_and_templates_as_data(
    database: Database, name: str, description: str, text: str, value: str
) -> None:
    escaped = text.replace("{", "{{").replace("}", "}}")
    template = escaped + "{value}"  # the stored text, then one placeholder

    async def check(postgres: Postgres) -> None:
        repository = PostgresInstructionsRepository(postgres)
        try:
            declaration = InstructionsDeclaration(
                name,
                description=description,
                arguments=(InstructionsArgumentDeclaration(description or "x", description=text),),
                meta={text: value},
            )
        except ValueError:
            assert name == ""
            return
        if await stored_or_refused(postgres, name, repository.define(declaration, template)):
            assert await repository.load(name) == template
            # a value full of braces is put in as it is, never read as a template
            arguments = {description or "x": "given", "value": value}
            assert await repository.resolve(name, arguments) == text + value
            (revision,) = await repository.history(name)
            assert revision.declaration == declaration and revision.content == template
            assert declaration in await repository.available_instructions()
            await repository.remove(name)
            assert await repository.load(name) is None
        await database.intact(postgres)

    database.run(check)


@EXAMPLES
@given(identifier=hostile, text=hostile, key=hostile)
def test_memory_stores_hostile_identifiers_and_contents_as_data(
    database: Database, identifier: str, text: str, key: str
) -> None:
    items = (
        ModelInput(text, meta={key: text}),
        ModelOutput(key, tool_requests=(ToolRequest(text, key, {key: [text, None, 1.5]}),)),
        ModelInput("", tool_responses=(ToolResponse(text, key, identifier, error=True),)),
        ModelOutput(text),
    )
    variables = {key: identifier, text: [key]}

    async def check(postgres: Postgres) -> None:
        try:
            memory = PostgresModelMemory(identifier, postgres=postgres)
        except ValueError:
            assert identifier == ""
            return
        assert await stored_or_refused(postgres, identifier, memory.remember(*items, variables=variables))
        recall = await memory.recall()
        assert recall.identifier == identifier
        assert recall.context == items
        assert recall.variables == variables
        await memory.forget()
        assert (await memory.recall()).context == ()
        await database.intact(postgres)

    database.run(check)


async def test_no_identifier_can_name_a_system_catalog(postgres: Postgres) -> None:
    """pg_catalog is searched before every schema: a vector table called "pg_class" (a model
    class `PgClass`) would make `DELETE FROM "pg_class"` empty the system catalog of a superuser's
    database. Every name of a pg_catalog relation is refused, and every pg_ name with it."""
    catalog = await postgres.fetch(
        "SELECT relname::text AS name FROM pg_class WHERE relnamespace = 'pg_catalog'::regnamespace"
    )
    assert len(catalog) > 100
    for row in catalog:
        with pytest.raises(ValueError, match="nor with pg_"):
            render("DELETE FROM {table}", table=row["name"])
    assert render("DELETE FROM {table}", table="pgvector_chunk") == 'DELETE FROM "pgvector_chunk"'
