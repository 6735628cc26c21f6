"""Issue 12 #10, #11, #15: hostile and careless input is refused up front.

- NUL characters (PostgreSQL text and jsonb cannot hold them) anywhere a caller puts text:
  `ValueError` naming the field (and the element's position for memory), nothing written.
- Keys (configuration identifiers, instructions names, memory identifiers) go through one check,
  `pgstash.validators.require_key`, with one documented maximum, `MAX_KEY_LENGTH` characters: above
  it `ValueError`; at it, any character (quotes, backslashes, control characters, 4-byte UTF-8)
  defines, invalidates other processes' caches (its NOTIFY payload fits) and removes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest

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
from pgstash.validators import MAX_KEY_LENGTH, require_key
from tests.support.caches import eventually, sneak
from tests.support.faults import counts


@attrs.frozen
class Settings:
    model: str


def configurations(postgres: Postgres) -> PostgresConfigurationRepository:
    return PostgresConfigurationRepository(postgres)


def instructions(postgres: Postgres) -> PostgresInstructionsRepository:
    return PostgresInstructionsRepository(postgres)


def memory(postgres: Postgres, identifier: str = "m") -> PostgresModelMemory:
    return PostgresModelMemory(identifier, postgres=postgres)


Call = Callable[[Postgres], Awaitable[Any]]
NUL = "a\x00b"
# (case, the call, words the ValueError must hold)
NUL_CASES: list[tuple[str, Call, str]] = [
    (
        "memory content",
        lambda pg: memory(pg).remember(ModelInput("ok"), ModelOutput(NUL)),
        "item 2 (ModelOutput)",
    ),
    ("memory content (where)", lambda pg: memory(pg).remember(ModelInput(NUL)), "at $.content"),
    ("memory meta", lambda pg: memory(pg).remember(ModelInput("x", meta={"k": NUL})), "item 1"),
    (
        "memory tool request",
        lambda pg: memory(pg).remember(ModelOutput("", tool_requests=(ToolRequest("1", "t", {"q": NUL}),))),
        "$.tool_requests[0].arguments.q",
    ),
    (
        "memory tool response",
        lambda pg: memory(pg).remember(ModelInput("", tool_responses=(ToolResponse("1", "t", NUL),))),
        "$.tool_responses[0].content",
    ),
    ("memory identifier", lambda pg: memory(pg, NUL).remember(ModelInput("x")), "identifier"),
    ("variable key", lambda pg: memory(pg).remember(ModelInput("x"), variables={NUL: 1}), "variables"),
    ("variable value", lambda pg: memory(pg).maintenance(variables={"k": [NUL]}), "variables"),
    ("configuration value", lambda pg: configurations(pg).define({"a": {"b": NUL}}, "c"), "'c'"),
    ("configuration value (where)", lambda pg: configurations(pg).define({"a": {"b": NUL}}, "c"), "$.a.b"),
    ("configuration attrs value", lambda pg: configurations(pg).define(Settings(NUL)), "$.model"),
    ("configuration identifier", lambda pg: configurations(pg).define({"a": 1}, NUL), "identifier"),
    (
        "instructions meta",
        lambda pg: instructions(pg).define(InstructionsDeclaration("i", meta={"m": NUL}), "t"),
        "meta of 'i'",
    ),
    (
        "instructions description",
        lambda pg: instructions(pg).define(InstructionsDeclaration("i", description=NUL), "t"),
        "description",
    ),
    (
        "instructions argument description",
        lambda pg: instructions(pg).define(
            InstructionsDeclaration("i", arguments=(InstructionsArgumentDeclaration("a", description=NUL),)),
            "t",
        ),
        "description",
    ),
    (
        "instructions argument name",
        lambda pg: instructions(pg).define(
            InstructionsDeclaration("i", arguments=(InstructionsArgumentDeclaration(NUL),)), "t"
        ),
        "name",
    ),
    ("instructions name", lambda pg: instructions(pg).define(NUL, "t"), "name"),
    ("instructions content", lambda pg: instructions(pg).define("i", NUL), "content"),
]


@pytest.mark.parametrize(("case", "call", "words"), NUL_CASES, ids=[case[0] for case in NUL_CASES])
async def test_nul_characters_are_refused_up_front_naming_the_field(
    postgres: Postgres, case: str, call: Call, words: str
) -> None:
    before = await counts(postgres)
    with pytest.raises(ValueError, match="NUL") as failure:
        await call(postgres)
    assert words in str(failure.value), f"{case}: {failure.value}"
    assert await counts(postgres) == before


WORST = ['"', "\\", "\x01", "\x1f", "\n", "\U0001f986", "'", "\u2028"]


def test_one_key_check_with_a_documented_maximum() -> None:
    assert MAX_KEY_LENGTH == 512
    assert require_key("k" * MAX_KEY_LENGTH, "key") == "k" * MAX_KEY_LENGTH
    with pytest.raises(ValueError, match=f"at most {MAX_KEY_LENGTH} characters"):
        require_key("k" * (MAX_KEY_LENGTH + 1), "key")
    for refused in ("", "a\x00"):
        with pytest.raises(ValueError):
            require_key(refused, "key")
    with pytest.raises(TypeError):
        require_key(b"k", "key")


KEYED: list[tuple[str, Call]] = [
    ("configuration identifier", lambda pg: configurations(pg).define({"a": 1}, "k" * (MAX_KEY_LENGTH + 1))),
    ("configuration remove", lambda pg: configurations(pg).remove("k" * (MAX_KEY_LENGTH + 1))),
    ("instructions name", lambda pg: instructions(pg).define("k" * (MAX_KEY_LENGTH + 1), "t")),
    ("memory identifier", lambda pg: memory(pg, "k" * (MAX_KEY_LENGTH + 1)).remember(ModelInput("x"))),
    ("memory identifier (maintenance)", lambda pg: memory(pg, "\\" * (MAX_KEY_LENGTH + 1)).maintenance()),
]


@pytest.mark.parametrize(("case", "call"), KEYED, ids=[case[0] for case in KEYED])
async def test_a_key_over_the_maximum_is_refused_before_anything_is_written(
    postgres: Postgres, case: str, call: Call
) -> None:
    before = await counts(postgres)
    with pytest.raises(ValueError, match=f"at most {MAX_KEY_LENGTH} characters"):
        await call(postgres)
    assert await counts(postgres) == before


@pytest.mark.parametrize("character", WORST, ids=[repr(character) for character in WORST])
async def test_any_key_at_the_maximum_defines_invalidates_and_removes(
    postgres: Postgres, database_dsn: str, character: str
) -> None:
    key = character * MAX_KEY_LENGTH
    async with PostgresConnectionPool.of(dsn=database_dsn) as elsewhere:  # another process's pool
        here_c, there_c = configurations(postgres), configurations(elsewhere)
        here_i, there_i = instructions(postgres), instructions(elsewhere)
        await here_c.define({"v": 1}, key)
        await here_i.define(key, "first")
        assert await there_c.load_raw(key) == {"v": 1}  # now cached there
        assert await there_i.load(key) == "first"
        await sneak(postgres, key, {"v": 99})  # no NOTIFY: the cache there still serves v=1
        assert await there_c.load_raw(key) == {"v": 1}

        await here_c.define({"v": 2}, key)  # its NOTIFY must reach the other pool
        await here_i.define(key, "second")

        async def configuration_seen() -> bool:
            return await there_c.load_raw(key) == {"v": 2}

        async def instructions_seen() -> bool:
            return await there_i.load(key) == "second"

        await eventually(configuration_seen, within=5.0)
        await eventually(instructions_seen, within=5.0)
        assert key in await there_c.configurations()

        await here_c.remove(key)
        await here_i.remove(key)

        async def removed() -> bool:
            return await there_c.load_raw(key) is None and await there_i.load(key) is None

        await eventually(removed, within=5.0)

    conversation = memory(postgres, key)
    await conversation.remember(ModelInput("hi"), variables={key: key})
    recalled = await conversation.recall()
    assert recalled.identifier == key and recalled.variables == {key: key}
    await conversation.forget()
    assert await counts(postgres) == {table: 0 for table in await counts(postgres)}
