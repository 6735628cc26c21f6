"""Bad input gets a clear error and writes nothing: every store, every kind of bad value, with
the row count of every table compared before and after."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest

from pgstash import (
    AttributeRequirement,
    ConfigurationError,
    DatabaseError,
    DimensionMismatchError,
    InstructionsDeclaration,
    ModelInput,
    ModelOutput,
    Postgres,
    PostgresConfigurationRepository,
    PostgresInstructionsRepository,
    PostgresModelMemory,
    PostgresVectorIndex,
    SchemaMissingError,
    ToolRequest,
)
from tests.support.faults import TABLES, counts


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
    (
        "configuration: an object JSON cannot hold",
        lambda pg: configurations(pg).define({"x": object()}, "c"),
        TypeError,
        "'c' cannot be stored as JSON",
    ),
    (
        "configuration: a key that is not a string",
        lambda pg: configurations(pg).define({1: "one"}, "c"),
        TypeError,
        "'c'",
    ),
    (
        "configuration: an integer beyond 64 bits",
        lambda pg: configurations(pg).define({"x": 2**70}, "c"),
        TypeError,
        "64-bit",
    ),
    (
        "configuration: NaN",
        lambda pg: configurations(pg).define({"x": {"y": [1.0, NAN]}}, "c"),
        ValueError,
        "'c' cannot be stored as JSON: nan at $.x.y[1]",
    ),
    (
        "configuration: Infinity in an attrs instance",
        lambda pg: configurations(pg).define(Settings(INF, "m")),
        ValueError,
        "'Settings' cannot be stored as JSON: inf at $.temperature",
    ),
    (
        "configuration: an empty identifier",
        lambda pg: configurations(pg).define({"x": 1}, ""),
        ValueError,
        "must not be empty",
    ),
    (
        "instructions: meta JSON cannot hold",
        lambda pg: instructions(pg).define(declared(x={1, 2}), "t"),
        TypeError,
        "meta of 'i' cannot be stored as JSON",
    ),
    (
        "instructions: NaN in meta",
        lambda pg: instructions(pg).define(declared(x=NAN), "t"),
        ValueError,
        "meta of 'i' cannot be stored as JSON: nan at $.x",
    ),
    (
        "instructions: content that is not text",
        lambda pg: instructions(pg).define("i", b"bytes"),
        TypeError,
        "content must be a str",
    ),
    (
        "memory: an element whose meta JSON cannot hold",
        lambda pg: memory(pg).remember(ModelInput("ok"), ModelInput("x", meta={"f": print})),
        TypeError,
        "item 2 (ModelInput) cannot be stored as JSON",
    ),
    (
        "memory: NaN in a tool request's arguments",
        lambda pg: memory(pg).remember(ModelOutput("", tool_requests=(ToolRequest("1", "t", {"x": NAN}),))),
        (TypeError, ValueError),
        "item 1 (ModelOutput) cannot be stored as JSON: nan at $.tool_requests[0]",
    ),
    (
        "memory: Infinity in variables",
        lambda pg: memory(pg).remember(ModelInput("ok"), variables={"t": -INF}),
        (TypeError, ValueError),
        "variables cannot be stored as JSON: -inf at $.t",
    ),
    (
        "memory: variables that are not a mapping",
        lambda pg: memory(pg).maintenance(variables=[("a", 1)]),  # type: ignore[arg-type]
        TypeError,
        "variables must be a mapping",
    ),
    (
        "memory: an item that is not an element",
        lambda pg: memory(pg).remember(ModelInput("ok"), "text"),  # type: ignore[arg-type]
        TypeError,
        "item 2 is a str",
    ),
    (
        "any jsonb parameter: NaN (the codec refuses it too)",
        lambda pg: pg.execute(
            "INSERT INTO configurations (identifier, content) VALUES ('c', $1)", {"x": NAN}
        ),
        DatabaseError,
        "nan at $.x: JSON has no NaN or Infinity",
    ),
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


# -- the vector index -------------------------------------------------------------------------


@attrs.frozen
class Doc:
    text: str
    extra: Any = None


@attrs.frozen
class Uncreated:
    text: str


def vectors(postgres: Postgres) -> PostgresVectorIndex:
    return PostgresVectorIndex(postgres)


def ready(*rows: list[float]) -> Callable[[Doc], list[float]]:
    """An `attribute` giving the i-th document the i-th vector."""
    by_text = {f"d{i}": row for i, row in enumerate(rows)}
    return lambda doc: by_text[doc.text]


def docs(count: int, extra: Any = None) -> list[Doc]:
    return [Doc(f"d{i}", extra) for i in range(count)]


VECTOR_CASES: list[tuple[str, Call, type[Exception] | tuple[type[Exception], ...], str]] = [
    (
        "a vector of the wrong dimension",
        lambda pg: vectors(pg).index(Doc, values=docs(1), attribute=ready([1.0, 0.0])),
        DimensionMismatchError,
        "expected vectors of dimension 3, got 2",
    ),
    (
        "one wrong vector after good ones",
        lambda pg: vectors(pg).index(
            Doc, values=docs(3), attribute=ready([1, 0, 0], [0, 1, 0], [1, 0, 0, 0])
        ),
        DimensionMismatchError,
        "dimension 3, got 4",
    ),
    (
        "NaN in a vector",
        lambda pg: vectors(pg).index(Doc, values=docs(2), attribute=ready([1, 0, 0], [NAN, 0, 1])),
        ValueError,
        "NaN or infinite",
    ),
    (
        "Infinity in a vector",
        lambda pg: vectors(pg).index(Doc, values=docs(1), attribute=ready([INF, 0, 1])),
        ValueError,
        "NaN or infinite",
    ),
    (
        "a query vector with NaN",
        lambda pg: vectors(pg).search(Doc, query=[NAN, 0, 1]),
        ValueError,
        "NaN or infinite",
    ),
    (
        "a query vector of the wrong dimension",
        lambda pg: vectors(pg).search(Doc, query=[1, 0]),
        DimensionMismatchError,
        "dimension 3, got 2",
    ),
    ("limit 0", lambda pg: vectors(pg).search(Doc, query=[1, 0, 0], limit=0), ValueError, "limit"),
    ("limit -1", lambda pg: vectors(pg).search(Doc, limit=-1), ValueError, "limit"),
    (
        "score_threshold above 1",
        lambda pg: vectors(pg).search(Doc, query=[1, 0, 0], score_threshold=1.5),
        ValueError,
        "[-1, 1]",
    ),
    (
        "score_threshold below -1",
        lambda pg: vectors(pg).search(Doc, query=[1, 0, 0], score_threshold=-1.01),
        ValueError,
        "[-1, 1]",
    ),
    (
        "score_threshold NaN",
        lambda pg: vectors(pg).search(Doc, query=[1, 0, 0], score_threshold=NAN),
        ValueError,
        "[-1, 1]",
    ),
    (
        "a payload JSON cannot hold",
        lambda pg: vectors(pg).index(
            Doc, values=docs(2, extra=object()), attribute=ready([1, 0, 0], [0, 1, 0])
        ),
        TypeError,
        "payload 0 is not JSON",
    ),
    (
        "NaN in a payload",
        lambda pg: vectors(pg).index(Doc, values=docs(1, extra={"x": NAN}), attribute=ready([1, 0, 0])),
        ValueError,
        "payload 0 cannot be stored as JSON: nan at $.extra.x",
    ),
    (
        "Infinity in meta",
        lambda pg: vectors(pg).index(Doc, values=docs(1), attribute=ready([1, 0, 0]), meta={"w": INF}),
        ValueError,
        "inf",
    ),
    (
        "NaN in a requirement",
        lambda pg: vectors(pg).search(Doc, requirements=AttributeRequirement.equal("extra", NAN)),
        ValueError,
        "not a JSON number",
    ),
    ("delete without requirements", lambda pg: vectors(pg).delete(Doc), ValueError, "everything=True"),
    (
        "a model whose table does not exist (index)",
        lambda pg: vectors(pg).index(Uncreated, values=[Uncreated("x")], attribute=lambda _: [1, 0, 0]),
        SchemaMissingError,
        'table "uncreated" does not exist: create it with `await PostgresVectorIndex()',
    ),
    (
        "a model whose table does not exist (search)",
        lambda pg: vectors(pg).search(Uncreated, query=[1, 0, 0]),
        SchemaMissingError,
        "create_table(Uncreated",
    ),
    (
        "a model whose table does not exist (delete)",
        lambda pg: vectors(pg).delete(Uncreated, everything=True),
        SchemaMissingError,
        "create_table(Uncreated",
    ),
    (
        "a table name outside the whitelist",
        lambda pg: vectors(pg).search(Doc, query=[1, 0, 0], table="doc; DROP TABLE doc"),
        ValueError,
        "invalid table",
    ),
    (
        "a table name PostgreSQL resolves to a system catalog",
        lambda pg: vectors(pg).delete(Doc, everything=True, table="pg_class"),
        ValueError,
        "nor with pg_",
    ),
]


@pytest.mark.parametrize(("case", "call", "error", "words"), VECTOR_CASES, ids=[c[0] for c in VECTOR_CASES])
async def test_bad_vector_input_is_refused_with_a_clear_error_and_writes_nothing(
    postgres: Postgres, case: str, call: Call, error: type[Exception], words: str
) -> None:
    await vectors(postgres).create_table(Doc, dimension=3)
    await vectors(postgres).index(Doc, values=[Doc("kept")], attribute=lambda _: [1.0, 1.0, 1.0])
    before = await counts(postgres, (*TABLES, "doc"))
    with pytest.raises(error) as failure:
        await call(postgres)
    assert words in str(failure.value), f"{case}: {failure.value}"
    assert await counts(postgres, (*TABLES, "doc")) == before


async def test_indexing_nothing_is_a_no_op_returning_zero(postgres: Postgres) -> None:
    assert await vectors(postgres).index(Uncreated, values=[], attribute="text") == 0  # no table needed
    await vectors(postgres).create_table(Doc, dimension=3)
    assert await vectors(postgres).index(Doc, values=iter([]), attribute="text") == 0
    assert await postgres.fetch_value("SELECT count(*) FROM doc") == 0
