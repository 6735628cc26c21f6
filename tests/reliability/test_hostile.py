"""Hostile input: hypothesis-generated strings full of SQL and format syntax (quotes, backslashes,
`$1`, `{}`, `%`, `_`, `--`, `;`, any NUL-free unicode) in every position a user controls. Each is
stored and read back as data, or refused with `ValueError` before anything is written; a canary
table, and the set of tables, survive every case."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgstash import (
    AttributeRequirement,
    InstructionsArgumentDeclaration,
    InstructionsDeclaration,
    ModelInput,
    ModelOutput,
    Postgres,
    PostgresConfigurationRepository,
    PostgresConnectionPool,
    PostgresInstructionsRepository,
    PostgresModelMemory,
    PostgresVectorIndex,
    ToolRequest,
    ToolResponse,
)
from pgstash.sql.templates import IDENTIFIER, render
from tests.support.databases import TEMPLATE_DATABASE, clone, drop, with_database
from tests.support.faults import MIGRATED_TABLES, counts

PIECES = [
    "'",
    "''",
    '"',
    "\\",
    "\\'",
    "$1",
    "$2::text",
    "$$",
    "$tag$",
    "{}",
    "{0}",
    "{",
    "}",
    "{{",
    "%",
    "%s",
    "%%",
    "_",
    "--",
    ";",
    "/*",
    "*/",
    "'; DROP TABLE canary; --",
    '"); DROP TABLE canary; --',
    "E'\\x41'",
    "\\x00",
    "\\u0000",
    "NULL",
    "null",
    "\n",
    "\r\n",
    "\t",
    " ",
    ".",
    "->",
    "#>>",
    "?|",
    "@>",
    "ü",
    "漢字",
    "🦆",
    "\u2028",
    "\ufeff",
    "a" * 70,
]
CHARACTERS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
hostile = st.lists(st.one_of(st.sampled_from(PIECES), st.text(CHARACTERS, max_size=6)), max_size=6).map(
    "".join
)
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

    async def intact(self, postgres: Postgres, *extra: str) -> None:
        """The canary's row is there, and no table came or went (but `extra`)."""
        assert await postgres.fetch_value("SELECT string_agg(word, ',') FROM canary") == "tweet"
        tables = await postgres.fetch_value(
            "SELECT array_agg(relname::text ORDER BY relname) FROM pg_class "
            "WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
        )
        assert tables == sorted([*MIGRATED_TABLES, "canary", "pgstash_migrations", *extra])


@pytest.fixture
def database(template_ready: str) -> Iterator[Database]:
    with asyncio.Runner() as runner:
        name = runner.run(clone(template_ready, TEMPLATE_DATABASE))
        pool = PostgresConnectionPool.of(dsn=with_database(template_ready, name))
        postgres = runner.run(pool.open())
        try:
            runner.run(postgres.execute("CREATE TABLE canary AS SELECT 'tweet' AS word"))
            yield Database(runner, postgres)
        finally:
            runner.run(pool.close())
            runner.run(drop(template_ready, name))


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


# -- the vector index: table names, filter paths and values -----------------------------------


@attrs.frozen
class Row:
    data: dict[str, Any]
    number: int


KEYWORDS = [
    "select",
    "user",
    "order",
    "table",
    "from",
    "where",
    "group",
    "limit",
    "end",
    "null",
    "true",
    "current_user",
    "session_user",
    "_",
    "a" * 63,
    "x1",
    "row",
]


@EXAMPLES
@given(name=st.one_of(st.sampled_from(KEYWORDS), hostile))
def test_vector_table_names_are_plain_identifiers_or_refused(database: Database, name: str) -> None:
    async def check(postgres: Postgres) -> None:
        index = PostgresVectorIndex(postgres)
        try:
            await index.create_table(Row, dimension=3, index=None, table=name)
        except ValueError:
            assert not IDENTIFIER.fullmatch(name), f"a plain identifier was refused: {name!r}"
            await database.intact(postgres)
            return
        assert IDENTIFIER.fullmatch(name)
        row = Row({"name": name}, 1)
        assert await index.index(Row, values=[row], attribute=lambda _: [1.0, 0.0, 0.0], table=name) == 1
        assert await index.search(Row, query=[1.0, 0.0, 0.0], table=name) == [row]
        assert await postgres.fetch_value("SELECT to_regclass(quote_ident($1)) IS NOT NULL", name)
        assert await index.delete(Row, everything=True, table=name) == 1
        await postgres.execute(f'DROP TABLE "{name}"')  # the name is a plain identifier: safe
        await database.intact(postgres)

    database.run(check)


def _at(payload: Any, path: tuple[str, ...]) -> tuple[bool, Any]:
    """Whether the payload has the key path, and the value there."""
    for key in path:
        if not isinstance(payload, dict) or key not in payload:
            return False, None
        payload = payload[key]
    return True, payload


@EXAMPLES
@given(key=hostile, value=hostile, other=hostile, dotted=st.booleans())
def test_filter_paths_and_values_are_data(
    database: Database, key: str, value: str, other: str, dotted: bool
) -> None:
    rows = [Row({key: value}, 0), Row({key: other}, 1), Row({other: value}, 2), Row({key: [value, 3]}, 3)]
    path: Any = f"data.{key}" if dotted else ("data", key)
    keys = tuple(path.split(".")) if dotted else path

    def expected(test: Callable[[bool, Any], bool]) -> set[int]:
        return {row.number for row in rows if test(*_at(attrs.asdict(row), keys))}

    checks: list[tuple[AttributeRequirement, set[int] | None]] = [
        (AttributeRequirement.equal(path, value), expected(lambda has, at: has and at == value)),
        (~AttributeRequirement.equal(path, value), expected(lambda has, at: not (has and at == value))),
        (AttributeRequirement.exists(path), expected(lambda has, at: has)),
        (
            AttributeRequirement.contained_in(path, [value, other]),
            expected(lambda has, at: has and at in (value, other)),
        ),
        (
            AttributeRequirement.contains(path, value),
            expected(lambda has, at: has and isinstance(at, list) and value in at),
        ),
        (AttributeRequirement.text_match(path, value), None),  # case folding: checked below
    ]

    async def check(postgres: Postgres) -> None:
        index = PostgresVectorIndex(postgres)
        await index.create_table(Row, dimension=3)
        await index.index(Row, values=rows, attribute=lambda row: [1.0, row.number, 0.5])
        try:
            for requirement, wanted in checks:
                found = {row.number for row in await index.search(Row, requirements=requirement, limit=10)}
                if wanted is not None:
                    assert found == wanted, requirement
                else:  # a field equal to the text holds it, whatever the case folding
                    assert expected(lambda has, at: has and at == value) <= found, requirement
        finally:
            await index.delete(Row, everything=True)
        await database.intact(postgres, "row")

    database.run(check)
