"""search_path: another role that may CREATE in a schema of the application's search_path
(`public` on PostgreSQL 13 and 14, and on clusters upgraded from them) defines functions and
operators that would win PostgreSQL's overload resolution over pg_catalog's (an exact argument
match beats one needing an implicit cast, a concrete type beats a polymorphic one). Each of them,
were it ever run, copies its arguments into that role's table. The stores then run as the
application's role with the README's grants, and the table stays empty (docs/security.md).

The control proves the traps bite: the statements as they were written before (unqualified,
`hashtextextended(..., 0)`, `unnest(jsonb[])`, `(position - 1) * INTERVAL`) run them."""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import attrs
import numpy as np
import pytest

from pgstash import AttributeRequirement as R
from pgstash import (
    ModelInput,
    ModelOutput,
    PostgresConfigurationRepository,
    PostgresConnectionPool,
    PostgresInstructionsRepository,
    PostgresModelMemory,
    PostgresVectorIndex,
)
from pgstash.sql.catalogue import catalogue, load_catalogue
from pgstash.sql.resources import resource_dir
from tests.support.readme import deployment_grants
from tests.support.roles import as_role, login_roles

# The types pgstash's statements compute with, and the operators they use.
TYPES = (
    "text", "name", "integer", "bigint", "double precision", "numeric", "jsonb", "jsonb[]",
    "text[]", "timestamp with time zone", "interval", "boolean", "oid", '"char"', "vector",
)  # fmt: skip
LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
OPERATORS = ("=", "<>", "<", ">", "<=", ">=", "-", "+", "*", "||", "@>", "#>", "#>>", "~~*", "<=>")
COMPARISONS = {"=", "<>", "<", ">", "<=", ">=", "@>", "~~*"}
RETURNS = {"||": "text", "#>>": "text", "<=>": "double precision"}  # other operators: the left type
# asyncpg's own type introspection (driver SQL, run on a connection's first jsonb[] parameter)
# compares `oid <> 0` unqualified, so any `oid <> ...` there breaks or hijacks it: only the
# deployment closes that (docs/security.md). pgstash's own SQL never writes `oid <>`.
DRIVER_OPERATORS = {("oid", "<>")}
# Likewise its type introspection calls array_agg(text ORDER BY ...) and array_agg(oid ORDER BY
# ...) unqualified: any array_agg overload breaks it (not unique), so none is planted (pgstash's
# own calls, in vectors_table_facts, are qualified).
DRIVER_FUNCTIONS = {"array_agg"}
OWNED_FILES = {
    "configurations.sql", "instructions.sql", "memory.sql", "migrations.sql", "status.sql",
    "vectors.sql", "filters.sql", "vector_table.sql",
}  # fmt: skip
# The traps, and functions whose pg_catalog version takes "any" or a polymorphic type.
NAMED_TRAPS = (
    ("hashtextextended", ("text", "integer"), "bigint"),
    ("json_build_object", ("text", "text", "text", "text"), "json"),
    ("pg_notify", ("text", "json"), "void"),
    ("cardinality", ("jsonb[]",), "integer"),
    ("string_agg", ("name", "text"), "text"),
    ("pg_advisory_lock", ("integer",), "void"),
)


def called_functions() -> set[str]:
    """The names of the functions the owned query files call."""
    names: set[str] = set()
    for named in [*catalogue().values(), *load_catalogue(resource_dir("schema") / "templates").values()]:
        if named.source.name in OWNED_FILES:
            names.update(re.findall(r"pg_catalog\.(\w+)\(", named.sql))
    return names


def trap(name: str, arguments: tuple[str, ...], returns: str, serial: int, label: str = "") -> str:
    """A function that records its call in attacker_loot (as its owner) and returns NULL."""
    parameters = ", ".join(f"a{i} {kind}" for i, kind in enumerate(arguments))
    label = (label or f"{name}({', '.join(arguments)})").replace("'", "''")
    if returns == "setof jsonb":
        body = (
            f"INSERT INTO public.attacker_loot SELECT '{label}', e::text FROM pg_catalog.unnest(a0) AS e; "
            "SELECT e FROM pg_catalog.unnest(a0) AS e"
        )
    else:
        body = f"INSERT INTO public.attacker_loot VALUES ('{label}', NULL); SELECT NULL::{returns}"
    return (
        f"CREATE FUNCTION public.{name}({parameters}) RETURNS {returns} LANGUAGE sql "
        f"SECURITY DEFINER AS $trap{serial}$ {body} $trap{serial}$"
    )


def traps() -> list[str]:
    statements: list[str] = []
    serial = itertools.count()
    for operator, (left, right) in itertools.product(OPERATORS, itertools.product(TYPES, repeat=2)):
        if (left, operator) in DRIVER_OPERATORS or left == right == "vector":
            continue  # pgvector's own vector-vector operators live in public (docs/security.md)
        returns = "boolean" if operator in COMPARISONS else RETURNS.get(operator, left)
        function = f"attacker_op_{next(serial)}"
        statements.append(trap(function, (left, right), returns, next(serial), f"{left} {operator} {right}"))
        statements.append(
            f"CREATE OPERATOR public.{operator} (LEFTARG = {left}, RIGHTARG = {right}, "
            f"FUNCTION = public.{function})"
        )
    named = {(name, arguments): returns for name, arguments, returns in NAMED_TRAPS}
    named[("unnest", ("jsonb[]",))] = "setof jsonb"  # the issue's: copies every element away
    for name in called_functions():
        for kind in TYPES:
            if name not in DRIVER_FUNCTIONS:
                named.setdefault((name, (kind,)), "text")
    for (name, arguments), returns in sorted(named.items()):
        statements.append(trap(name, arguments, returns, next(serial)))
    return statements


@pytest.fixture
async def hijacked(database_dsn: str) -> AsyncIterator[tuple[str, asyncpg.Connection]]:
    """The application's role (README grants) and, as the superuser, a connection; an attacker
    role with CREATE on public has planted its traps there."""
    admin = await asyncpg.connect(database_dsn)
    try:
        async with login_roles(admin, "pgstash_app", "attacker") as (app, attacker):
            await admin.execute(f"GRANT CREATE ON SCHEMA public TO {attacker}")  # PostgreSQL 13/14's default
            await admin.execute(deployment_grants()[0].replace("pgstash_app", app))
            await admin.execute(f"SET ROLE {attacker}")
            async with admin.transaction():
                await admin.execute("CREATE TABLE public.attacker_loot (called TEXT, stolen TEXT)")
                await admin.execute(";\n".join(traps()))
            await admin.execute("RESET ROLE")
            yield app, admin
    finally:
        await admin.close()


async def loot(admin: asyncpg.Connection) -> list[str]:
    rows = await admin.fetch("SELECT called FROM public.attacker_loot")
    return sorted({row["called"] for row in rows})


async def test_no_function_or_operator_of_another_role_runs_in_any_store_call(
    database_dsn: str, hijacked: tuple[str, asyncpg.Connection]
) -> None:
    app, admin = hijacked
    try:
        await _calls(database_dsn, app)
    finally:
        print("LOOT", await loot(admin))
    assert await loot(admin) == []


@attrs.frozen
class Chunk:
    text: str
    topic: str
    rank: int
    tags: list[str]


# Every filter operator, and the and/or/not that nest them.
REQUIREMENTS = (
    R.equal("topic", "a"), R.not_equal("topic", "a"), R.greater("rank", 3), R.greater("text", "t"),
    R.greater_or_equal("rank", 3), R.less("rank", 3), R.less_or_equal("text", "t 5"),
    R.contained_in("topic", ["a", "b"]), R.contains("tags", "x"), R.contains_any("tags", ["x", "y"]),
    R.text_match("text", "T 1"), R.exists("tags"), R.equal("topic", "a") & R.exists("rank"),
    R.equal("topic", "a") | R.less("rank", 2), ~R.equal("topic", "b"),
)  # fmt: skip


async def _vector_calls(database_dsn: str, app: str) -> None:
    """create_table as the owner (templates), then ingest, every filter, search and delete as the
    application's role."""
    async with PostgresConnectionPool.of(dsn=database_dsn) as owner:
        await PostgresVectorIndex(owner).create_table(Chunk, dimension=3)
        await owner.execute(deployment_grants()[1].replace("pgstash_app", app))
    vectors = np.random.default_rng(7).standard_normal((20, 3)).astype(np.float32)
    chunks = [Chunk(f"t {i}", "ab"[i % 2], i, ["x"] if i % 3 else ["y"]) for i in range(20)]
    async with PostgresConnectionPool.of(dsn=as_role(database_dsn, app)) as postgres:
        index = PostgresVectorIndex(postgres)
        await index.index(Chunk, values=chunks, attribute=lambda chunk: vectors[chunk.rank])
        assert len(await index.search(Chunk, query=vectors[0], limit=3)) == 3
        for requirement in REQUIREMENTS:
            found = await index.search(Chunk, query=vectors[0], requirements=requirement, limit=50)
            assert found, requirement
            assert await index.search(Chunk, requirements=requirement, limit=50)
        scored = await index.search_scored(Chunk, query=vectors[1], limit=2, score_threshold=-1.0)
        assert scored[0][0].rank == 1 and scored[0][1] > 0.99
        assert await index.delete(Chunk, requirements=R.equal("topic", "a")) == 10
        assert await index.delete(Chunk, everything=True) == 10


async def _calls(database_dsn: str, app: str) -> None:
    await _vector_calls(database_dsn, app)
    async with PostgresConnectionPool.of(dsn=as_role(database_dsn, app)) as postgres:
        assert await postgres.fetch_value("SELECT current_setting('search_path')") == '"$user", public'
        configurations = PostgresConfigurationRepository(postgres)
        await configurations.define({"model": "m-1", "card": "4111 1111 1111 1111"}, "app")
        await configurations.define({"model": "m-2"}, "app")
        assert await configurations.load_raw("app") == {"model": "m-2"}
        assert list(await configurations.configurations()) == ["app"]
        assert len(await configurations.history("app")) == 2
        assert await postgres.run("configurations_prune", keep=1, older_than=None) == 1

        instructions = PostgresInstructionsRepository(postgres)
        await instructions.define("greet", "Hello {name}")
        await instructions.define("greet", "Hi {name}")
        assert await instructions.resolve("greet", {"name": "Ada"}) == "Hi Ada"
        assert [declaration.name for declaration in await instructions.available_instructions()] == ["greet"]
        assert await postgres.run("instructions_prune", keep=5, older_than=LONG_AGO) == 0

        memory = PostgresModelMemory("chat", postgres=postgres)
        await memory.remember(ModelInput("my card is 4111 1111 1111 1111"), ModelOutput("noted"))
        await memory.maintenance(variables={"turn": 2})
        recall = await memory.recall()
        assert [element.content for element in recall.context] == ["my card is 4111 1111 1111 1111", "noted"]
        assert (await memory.recall(limit=1)).variables == {"turn": 2}
        async with postgres.transaction():
            for lock_only in (True, False):
                await postgres.run("memory_forget_idle", idle_before=LONG_AGO, lock_only=lock_only)
        await memory.forget()
        await configurations.remove("app")
        await instructions.remove("greet")


async def test_the_traps_catch_the_statements_as_they_were(
    database_dsn: str, hijacked: tuple[str, asyncpg.Connection]
) -> None:
    """The control: unqualified calls and inexact operand types run the other role's code."""
    app, admin = hijacked
    connection = await asyncpg.connect(as_role(database_dsn, app))
    try:
        await connection.fetchval("SELECT hashtextextended('configurations/' || $1::TEXT, 0)", "k")
        await connection.fetchval("SELECT array(SELECT unnest($1::JSONB[]))", ['{"secret": 1}'])
        await connection.fetchval("SELECT now() + ($1::BIGINT - 1) * INTERVAL '1 microsecond'", 3)
        await connection.fetchval("SELECT 1 - $1::FLOAT8", 0.5)
    finally:
        await connection.close()
    assert {
        "hashtextextended(text, integer)",
        "unnest(jsonb[])",
        "bigint * interval",
        "integer - double precision",
    } <= set(await loot(admin))
