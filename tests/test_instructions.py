"""PostgresInstructionsRepository on a real PostgreSQL: declarations, revisions, resolve's
argument rules, concurrent writers, the seed's verbatim table and the newest-revision index."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from pgstash import (
    InstructionsArgumentDeclaration,
    InstructionsDeclaration,
    InstructionsNotFoundError,
    InstructionsRevision,
    MissingArgumentError,
    Postgres,
    PostgresConnectionPool,
    PostgresInstructionsRepository,
    StoredDataError,
)
from pgstash.sql.catalogue import query

GREETING = InstructionsDeclaration(
    "greeting",
    description="Greets the user",
    arguments=(
        InstructionsArgumentDeclaration("user", description="who to greet"),
        InstructionsArgumentDeclaration("tone", required=False),
    ),
    meta={"owner": "team-a", "tags": ["x"]},
)


async def test_define_load_and_resolve(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    await repository.define(GREETING, "Say hello to {user} in a {tone} tone. Use {{braces}}.")

    assert await repository.load("greeting") == "Say hello to {user} in a {tone} tone. Use {{braces}}."
    assert await repository.resolve("greeting", {"user": "Ada", "tone": "warm"}) == (
        "Say hello to Ada in a warm tone. Use {braces}."
    )
    assert await repository.resolve("greeting", {"user": "Ada"}) == (
        "Say hello to Ada in a  tone. Use {braces}."
    )


async def test_resolve_fills_name_placeholders_and_brace_escapes_only(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    await repository.define("fmt", "{n}|{item}|{{literal}}|}}{{")
    resolved = await repository.resolve("fmt", {"n": 7, "item": {"name": "tea"}})
    assert resolved == "7|{'name': 'tea'}|{literal}|}{"
    await repository.define("plain", "no placeholders {{here}}")
    assert await repository.resolve("plain") == "no placeholders {here}"
    for template in ("{n:>4}", "{item[name]}", "{user.upper}", "{0}", "{}", "{a!r}", "{", "}", "{a"):
        with pytest.raises(ValueError, match="position 0"):
            await repository.define("fmt", template)
    assert len(await repository.history("fmt")) == 1


async def test_a_missing_required_argument_is_named(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    await repository.define(GREETING, "Hello {user}")
    with pytest.raises(MissingArgumentError, match=r"'greeting'.*'user'") as failure:
        await repository.resolve("greeting", {"tone": "dry"})
    assert isinstance(failure.value, KeyError) and failure.value.argument == "user"

    # a required argument the content never uses is still required
    await repository.define(GREETING, "Hello")
    with pytest.raises(MissingArgumentError, match="'user'"):
        await repository.resolve("greeting")


async def test_an_undeclared_placeholder_without_a_value_is_a_missing_argument(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    await repository.define("bare", "Hi {name}")
    with pytest.raises(MissingArgumentError, match="'name'"):
        await repository.resolve("bare", {})
    assert await repository.resolve("bare", {"name": "Bo"}) == "Hi Bo"


async def test_unknown_instructions(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    assert await repository.load("nope") is None
    with pytest.raises(InstructionsNotFoundError, match="'nope'") as failure:
        await repository.resolve("nope")
    assert isinstance(failure.value, LookupError)
    assert await repository.history("nope") == ()


async def test_available_instructions_are_the_newest_declarations_sorted(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    assert await repository.available_instructions() == ()
    await repository.define("zeta", "z")
    await repository.define(InstructionsDeclaration("alpha", description="old"), "a1")
    await repository.define(GREETING, "g")
    await repository.define(InstructionsDeclaration("alpha", description="new"), "a2")

    available = await repository.available_instructions()
    assert [declaration.name for declaration in available] == ["alpha", "greeting", "zeta"]
    assert available[0] == InstructionsDeclaration("alpha", description="new")
    assert available[1] == GREETING
    assert available[1].meta == {"owner": "team-a", "tags": ["x"]}


async def test_history_keeps_every_revision_newest_first(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    await repository.define("story", "v1")
    await repository.define(InstructionsDeclaration("story", description="second"), "v2")
    history = await repository.history("story")
    assert all(isinstance(revision, InstructionsRevision) for revision in history)
    assert [(revision.declaration.description, revision.content) for revision in history] == [
        ("second", "v2"),
        (None, "v1"),
    ]
    assert history[0].created > history[1].created


async def test_remove_deletes_every_revision(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    await repository.define("temp", "v1")
    await repository.define("temp", "v2")
    await repository.define("kept", "k")
    await repository.remove("temp")
    assert await repository.load("temp") is None
    assert [declaration.name for declaration in await repository.available_instructions()] == ["kept"]
    assert await postgres.fetch_value("SELECT count(*) FROM instructions WHERE name = 'temp'") == 0


def test_declarations_are_validated_frozen_values() -> None:
    declaration = InstructionsDeclaration("n", arguments=[InstructionsArgumentDeclaration("a")])
    assert declaration.arguments == (InstructionsArgumentDeclaration("a", None, True),)
    assert declaration.meta == {}
    with pytest.raises(AttributeError):
        declaration.name = "m"  # type: ignore[misc]
    with pytest.raises(TypeError):
        declaration.meta["k"] = "v"  # type: ignore[index]
    with pytest.raises(ValueError):
        InstructionsDeclaration("")
    with pytest.raises(TypeError):
        InstructionsDeclaration("n", arguments=["a"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="twice"):
        InstructionsDeclaration(
            "n", arguments=(InstructionsArgumentDeclaration("a"), InstructionsArgumentDeclaration("a"))
        )
    with pytest.raises(TypeError):
        InstructionsArgumentDeclaration("a", required="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        InstructionsDeclaration("n", meta=["not", "a", "mapping"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda r: r.define("n", 5), TypeError),
        (lambda r: r.define("n", "nul\x00"), ValueError),
        (lambda r: r.define("", "c"), ValueError),
        (lambda r: r.define(5, "c"), TypeError),
        (lambda r: r.define(InstructionsDeclaration("n", meta={"x": object()}), "c"), TypeError),
        (lambda r: r.resolve("n", ["a"]), TypeError),
        (lambda r: r.load(""), ValueError),
        (lambda r: r.remove(None), TypeError),
    ],
)
async def test_bad_input_is_refused_before_anything_is_written(
    postgres: Postgres, call: Any, error: type
) -> None:
    repository = PostgresInstructionsRepository(postgres)
    with pytest.raises(error):
        await call(repository)
    assert await postgres.fetch_value("SELECT count(*) FROM instructions") == 0


async def test_fifty_concurrent_defines_on_one_name_are_all_kept(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    await asyncio.gather(*(repository.define("busy", f"revision {index}") for index in range(50)))
    history = await repository.history("busy")
    assert sorted(int(revision.content.split()[1]) for revision in history) == list(range(50))
    assert len({revision.created for revision in history}) == 50
    assert await repository.load("busy") == history[0].content


async def test_a_malformed_stored_declaration_names_the_instructions(postgres: Postgres) -> None:
    await postgres.execute(
        "INSERT INTO instructions (name, content, arguments) VALUES ('broken', 'x', '[{\"nom\": 1}]')"
    )
    repository = PostgresInstructionsRepository(postgres)
    with pytest.raises(StoredDataError, match="'broken'"):
        await repository.load("broken")


# Verbatim from seed.md.
SEED_INSTRUCTIONS = """
CREATE TABLE instructions (
    name TEXT NOT NULL,
    description TEXT DEFAULT NULL,
    content TEXT NOT NULL,
    arguments JSONB NOT NULL DEFAULT '[]'::jsonb,
    meta JSONB NOT NULL DEFAULT '{}'::jsonb,
    created TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (name, created)
);
"""


async def test_the_seeds_verbatim_table_is_enough(empty_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=empty_dsn) as postgres:
        await postgres.execute(SEED_INSTRUCTIONS)
        # a row another writer stored with the table's defaults
        await postgres.execute("INSERT INTO instructions (name, content) VALUES ('legacy', 'Hi {who}')")
        repository = PostgresInstructionsRepository()  # the current pool
        assert await repository.resolve("legacy", {"who": "there"}) == "Hi there"
        await asyncio.gather(*(repository.define(GREETING, f"Hello {{user}} {index}") for index in range(20)))
        assert len(await repository.history("greeting")) == 20
        await repository.define(GREETING, "Hello {user}!")
        assert await repository.resolve("greeting", {"user": "Ada"}) == "Hello Ada!"
        assert [declaration.name for declaration in await repository.available_instructions()] == [
            "greeting",
            "legacy",
        ]
        await repository.remove("greeting")
        assert await repository.load("greeting") is None


async def test_the_newest_revision_lookup_is_a_primary_key_scan(postgres: Postgres) -> None:
    await postgres.execute(
        "INSERT INTO instructions (name, content, created) "
        "SELECT 'prompt-' || i, 'revision ' || v, timestamptz '2024-01-01' + make_interval(secs => v) "
        "FROM generate_series(1, 10000) AS i, generate_series(1, 10) AS v"
    )
    await postgres.execute("ANALYZE instructions")
    statement = query("instructions_newest").sql
    document = await postgres.fetch_value(f"EXPLAIN (FORMAT JSON) {statement}", "prompt-7")
    plan = json.loads(document)[0]["Plan"]
    nodes = [plan, *plan.get("Plans", [])]
    types = {node["Node Type"] for node in nodes}
    assert "Seq Scan" not in types and "Sort" not in types, types
    scan = next(node for node in nodes if node["Node Type"] in ("Index Scan", "Index Only Scan"))
    assert scan["Index Name"] == "instructions_pkey" and scan["Scan Direction"] == "Backward"
    assert await PostgresInstructionsRepository(postgres).load("prompt-7") == "revision 10"


async def test_raw_syntax_stores_what_the_grammar_refuses(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    with pytest.raises(ValueError, match="refused"):
        await repository.define("framework", "Hi {user.name}, {0}, {score:>5}")
    await repository.define("framework", "Hi {user.name}, {0}, {score:>5}", syntax="raw")
    assert await repository.load("framework") == "Hi {user.name}, {0}, {score:>5}"
    with pytest.raises(ValueError, match="syntax"):
        await repository.define("framework", "x", syntax="jinja")


async def test_available_instructions_pages_by_name(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    for name in ("d", "a", "c", "b", "e"):
        await repository.define(name, f"content of {name}")
    first = await repository.available_instructions(limit=2)
    assert [each.name for each in first] == ["a", "b"]
    second = await repository.available_instructions(after=first[-1].name, limit=2)
    assert [each.name for each in second] == ["c", "d"]
    last = await repository.available_instructions(after="d", limit=2)
    assert [each.name for each in last] == ["e"]
    assert [each.name for each in await repository.available_instructions(after="bb")] == ["c", "d", "e"]
