"""Bad input gets a clear error and writes nothing: every store, every kind of bad value, with
the row count of every table compared before and after."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest

from pgstash import (
    ConfigurationError,
    DatabaseError,
    InstructionsDeclaration,
    ModelInput,
    ModelOutput,
    Postgres,
    PostgresConfigurationRepository,
    PostgresInstructionsRepository,
    PostgresModelMemory,
    ToolRequest,
)
from tests.reliability.faults import counts


@attrs.frozen
class Settings:
    temperature: float
    model: str


NAN, INF = math.nan, math.inf

def configurations(postgres: Postgres) -> PostgresConfigurationRepository:
    return PostgresConfigurationRepository(postgres)


def instructions(postgres: Postgres) -> PostgresInstructionsRepository:
    return PostgresInstructionsRepository(postgres)


def memory(postgres: Postgres) -> PostgresModelMemory:
    return PostgresModelMemory("m", postgres=postgres)


def declared(**meta: Any) -> InstructionsDeclaration:
    return InstructionsDeclaration("i", meta=meta)


# (case, the call, the error it must raise, words its message must hold)
Call = Callable[[Postgres], Awaitable[Any]]
CASES: list[tuple[str, Call, type[Exception] | tuple[type[Exception], ...], str]] = [
    ("configuration: an object JSON cannot hold",
     lambda pg: configurations(pg).define({"x": object()}, "c"), TypeError, "'c' cannot be stored as JSON"),
    ("configuration: a key that is not a string",
     lambda pg: configurations(pg).define({1: "one"}, "c"), TypeError, "'c'"),
    ("configuration: an integer beyond 64 bits",
     lambda pg: configurations(pg).define({"x": 2**70}, "c"), TypeError, "64-bit"),
    ("configuration: NaN",
     lambda pg: configurations(pg).define({"x": {"y": [1.0, NAN]}}, "c"), ValueError,
     "'c' cannot be stored as JSON: nan at $.x.y[1]"),
    ("configuration: Infinity in an attrs instance",
     lambda pg: configurations(pg).define(Settings(INF, "m")), ValueError,
     "'Settings' cannot be stored as JSON: inf at $.temperature"),
    ("configuration: an empty identifier",
     lambda pg: configurations(pg).define({"x": 1}, ""), ValueError, "must not be empty"),
    ("instructions: meta JSON cannot hold",
     lambda pg: instructions(pg).define(declared(x={1, 2}), "t"), TypeError,
     "meta of 'i' cannot be stored as JSON"),
    ("instructions: NaN in meta",
     lambda pg: instructions(pg).define(declared(x=NAN), "t"), ValueError,
     "meta of 'i' cannot be stored as JSON: nan at $.x"),
    ("instructions: content that is not text",
     lambda pg: instructions(pg).define("i", b"bytes"), TypeError, "content must be a str"),
    ("memory: an element whose meta JSON cannot hold",
     lambda pg: memory(pg).remember(ModelInput("ok"), ModelInput("x", meta={"f": print})), TypeError,
     "item 2 (ModelInput) cannot be stored as JSON"),
    ("memory: NaN in a tool request's arguments",
     lambda pg: memory(pg).remember(ModelOutput("", tool_requests=(ToolRequest("1", "t", {"x": NAN}),))),
     (TypeError, ValueError), "item 1 (ModelOutput) cannot be stored as JSON: nan at $.tool_requests[0]"),
    ("memory: Infinity in variables",
     lambda pg: memory(pg).remember(ModelInput("ok"), variables={"t": -INF}), (TypeError, ValueError),
     "variables cannot be stored as JSON: -inf at $.t"),
    ("memory: variables that are not a mapping",
     lambda pg: memory(pg).maintenance(variables=[("a", 1)]),  # type: ignore[arg-type]
     TypeError, "variables must be a mapping"),
    ("memory: an item that is not an element",
     lambda pg: memory(pg).remember(ModelInput("ok"), "text"),  # type: ignore[arg-type]
     TypeError, "item 2 is a str"),
    ("any jsonb parameter: NaN (the codec refuses it too)",
     lambda pg: pg.execute("INSERT INTO configurations (identifier, content) VALUES ('c', $1)", {"x": NAN}),
     DatabaseError, "nan at $.x: JSON has no NaN or Infinity"),
    ("memory: recall limit 0", lambda pg: memory(pg).recall(limit=0), ValueError, "positive int"),
    ("memory: recall limit -1", lambda pg: memory(pg).recall(limit=-1), ValueError, "positive int"),
]


@pytest.mark.parametrize(("case", "call", "error", "words"), CASES, ids=[case[0] for case in CASES])
async def test_bad_input_is_refused_with_a_clear_error_and_writes_nothing(
    postgres: Postgres, case: str, call: Call, error: type[Exception], words: str
) -> None:
    before = await counts(postgres)
    with pytest.raises(error) as failure:
        await call(postgres)
    assert words in str(failure.value), f"{case}: {failure.value}"
    assert await counts(postgres) == before


async def test_a_configuration_that_does_not_fit_its_type_names_the_identifier_and_the_field(
    postgres: Postgres,
) -> None:
    """(tests/test_configurations.py covers the misfits in depth; here: the error is clear and
    the stored snapshot stays as it is.)"""
    repository = PostgresConfigurationRepository(postgres)
    await repository.define({"temperature": "hot", "model": "m"}, "Settings")
    before = await counts(postgres)
    with pytest.raises(ConfigurationError, match=r"'Settings' does not fit Settings.*temperature"):
        await repository.load(Settings)
    assert await counts(postgres) == before
    assert await repository.load_raw("Settings") == {"temperature": "hot", "model": "m"}
