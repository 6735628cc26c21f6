"""Issue 12 #4: values the default configuration converter writes, it reads back; a type it
cannot read back is refused at `define` before anything is stored; no bare cattrs exception
escapes (`ConfigurationError` for a configuration that does not fit, `StoredDataError` for a
memory element)."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import pathlib
import uuid
from collections.abc import Hashable
from decimal import Decimal

import attrs
import cattrs
import orjson
import pytest

from pgstash import (
    ConfigurationError,
    MemoryElementError,
    PgstashError,
    Postgres,
    PostgresConfigurationRepository,
    PostgresModelMemory,
    StoredDataError,
)
from pgstash.converters import make_converter
from tests.support.faults import counts


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@attrs.frozen
class Typed:
    key: uuid.UUID
    price: Decimal
    day: datetime.date
    at: datetime.time
    when: datetime.datetime
    color: Color
    level: Level
    folder: pathlib.Path
    pure: pathlib.PurePosixPath
    optional: uuid.UUID | None = None


@dataclasses.dataclass(frozen=True)
class TypedData:
    key: uuid.UUID
    price: Decimal
    ids: tuple[uuid.UUID, ...]


TYPED = Typed(
    key=uuid.UUID("12345678-1234-5678-1234-567812345678"),
    price=Decimal("10.10"),
    day=datetime.date(2024, 2, 29),
    at=datetime.time(23, 59, 58, 123456),
    when=datetime.datetime(2024, 2, 29, 12, 0, tzinfo=datetime.UTC),
    color=Color.BLUE,
    level=Level.HIGH,
    folder=pathlib.Path("/srv/models"),
    pure=pathlib.PurePosixPath("a/b.txt"),
    optional=uuid.UUID(int=7),
)


@attrs.frozen
class Unreadable:
    name: str
    marker: Hashable  # cattrs writes a str here and has no hook to read it back


async def test_uuid_decimal_dates_times_enums_and_paths_round_trip(postgres: Postgres) -> None:
    repository = PostgresConfigurationRepository(postgres)
    await repository.define(TYPED)
    assert await repository.load(Typed) == TYPED
    data = TypedData(uuid.UUID(int=1), Decimal("-0.000001"), (uuid.UUID(int=2), uuid.UUID(int=3)))
    await repository.define(data)
    assert await repository.load(TypedData) == data
    assert (await repository.load_raw("Typed") or {})["price"] == "10.10"  # exact, as a string


def test_make_converter_is_the_same_hook_set_for_other_stores() -> None:
    converter = make_converter()
    for cl, value in ((Typed, TYPED), (TypedData, TypedData(uuid.UUID(int=1), Decimal("2.50"), ()))):
        stored = orjson.loads(orjson.dumps(converter.unstructure(value)))
        assert converter.structure(stored, cl) == value


async def test_a_type_the_converter_cannot_read_back_is_refused_before_anything_is_stored(
    postgres: Postgres,
) -> None:
    repository = PostgresConfigurationRepository(postgres)
    before = await counts(postgres)
    with pytest.raises(TypeError, match=r"'Unreadable' could not be read back as Unreadable.*marker"):
        await repository.define(Unreadable("n", "x"))
    assert await counts(postgres) == before


async def test_stored_data_that_does_not_fit_raises_a_pgstash_error_naming_identifier_and_field(
    postgres: Postgres,
) -> None:
    await postgres.execute(
        "INSERT INTO configurations (identifier, content) VALUES ('Typed', $1)",
        {**orjson.loads(orjson.dumps(make_converter().unstructure(TYPED))), "key": "not-a-uuid"},
    )
    repository = PostgresConfigurationRepository(postgres)
    with pytest.raises(ConfigurationError, match=r"'Typed' does not fit Typed.*\$\.key") as failure:
        await repository.load(Typed)
    assert not isinstance(failure.value, cattrs.BaseValidationError)
    await postgres.execute("INSERT INTO configurations (identifier, content) VALUES ('U', $1)", {"name": "n"})
    # a class the converter cannot read at all is the caller's to fix, not the stored data's
    with pytest.raises(TypeError, match=r"cannot structure Unreadable.*Hashable.*\$\.marker"):
        await repository.load(Unreadable, "U")


async def test_a_memory_element_that_cannot_be_read_back_is_stored_data_error(postgres: Postgres) -> None:
    memory = PostgresModelMemory("m", postgres=postgres)
    await memory.maintenance()
    await postgres.execute(
        "INSERT INTO memories_elements (identifier, content) VALUES ('m', '{\"type\": \"model_input\"}')"
    )
    with pytest.raises(StoredDataError, match=r"memory 'm'.*content") as failure:
        await memory.recall()
    assert isinstance(failure.value, MemoryElementError | PgstashError)
    assert not isinstance(failure.value, cattrs.BaseValidationError)
