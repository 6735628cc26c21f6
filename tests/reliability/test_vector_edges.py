"""The vector index under hostile and careless input (issue 12: 4, 12, 13, 14): vectors whose
cosine is undefined in float32, unbounded limits, payloads nested too deep or that cannot be read
back, tables without a primary key, and IVFFlat trained on no rows."""

from __future__ import annotations

import datetime
import decimal
import enum
import pathlib
import uuid
import warnings
from typing import Any

import attrs
import cattrs
import cattrs.preconf.orjson
import numpy as np
import pytest

from pgstash import AttributeRequirement, PgstashError, Postgres, PostgresVectorIndex
from pgstash.vectors.write import bulk, tables


@attrs.frozen
class Doc:
    text: str
    extra: Any = None


async def rows(postgres: Postgres, table: str = "doc") -> int:
    count: int = await postgres.fetch_value(f"SELECT count(*) FROM {table}")
    return count


# -- 12: vector edge cases ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vector", "words"),
    [
        ([1e-30, 1e-30, 1e-30], "squared norm of 0.0"),  # each square underflows float32
        ([1e-23, 0.0, 0.0], "squared norm of 0.0"),
        ([1e20, 1.0, 0.0], "squared norm of inf"),  # overflows float32
    ],
)
async def test_vectors_with_no_float32_norm_are_refused_like_zero_vectors(
    postgres: Postgres, vector: list[float], words: str
) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Doc, dimension=3)
    with pytest.raises(ValueError, match=words):
        await index.index(
            Doc, values=[Doc("a"), Doc("b")], attribute=lambda d: [1.0, 0, 0] if d.text == "a" else vector
        )
    assert await rows(postgres) == 0
    await index.index(Doc, values=[Doc("a")], attribute=lambda _: [1.0, 0.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the ValueError alone: no numpy overflow warning before it
        with pytest.raises(ValueError, match=words):
            await index.search(Doc, query=vector)


async def test_limit_and_rerank_candidates_are_bounded(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres, mmr_multiplier=8)
    await index.create_table(Doc, dimension=3)
    await index.index(Doc, values=[Doc("a")], attribute=lambda _: [1.0, 0.0, 0.0])
    for limit in (2**62, 10_001):
        with pytest.raises(ValueError, match="limit must be an integer from 1 to 10,000"):
            await index.search(Doc, query=[1.0, 0.0, 0.0], limit=limit)
        with pytest.raises(ValueError, match="limit must be an integer from 1 to 10,000"):
            await index.search(Doc, limit=limit)  # newest first
    with pytest.raises(ValueError, match="1251 \\* 8 candidates"):
        await index.search(Doc, query=[1.0, 0.0, 0.0], limit=1251, rerank=True)
    assert len(await index.search(Doc, query=[1.0, 0.0, 0.0], limit=10_000)) == 1
    assert len(await index.search(Doc, query=[1.0, 0.0, 0.0], limit=1250, rerank=True)) == 1


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"x": value}
    return value


@pytest.mark.parametrize("depth", [300, 5_000])
async def test_payloads_nested_too_deep_are_refused_with_value_error(postgres: Postgres, depth: int) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Doc, dimension=3)
    with pytest.raises(ValueError, match="nests deeper than 255 levels"):
        await index.index(Doc, values=[Doc("a", nested(depth))], attribute=lambda _: [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="nests deeper than 255 levels"):
        await index.index(
            Doc, values=[Doc("a")], attribute=lambda _: [1.0, 0.0, 0.0], meta={"deep": nested(depth)}
        )
    assert await rows(postgres) == 0
    await index.index(Doc, values=[Doc("a", nested(200))], attribute=lambda _: [1.0, 0.0, 0.0])
    assert (await index.search(Doc))[0].extra == nested(200)


# -- 4: payloads that read back ----------------------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"


@attrs.frozen
class Typed:
    key: uuid.UUID
    price: decimal.Decimal
    day: datetime.date
    at: datetime.time
    stamp: datetime.datetime
    colour: Colour
    path: pathlib.Path


async def test_standard_types_round_trip_through_the_default_converter(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Typed, dimension=3)
    typed = Typed(
        uuid.uuid4(),
        decimal.Decimal("10.10"),
        datetime.date(2026, 1, 2),
        datetime.time(3, 4, 5, 6),
        datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
        Colour.RED,
        pathlib.Path("/srv/data/a.txt"),
    )
    await index.index(Typed, values=[typed], attribute=lambda _: [1.0, 0.0, 0.0])
    assert await index.search(Typed, query=[1.0, 0.0, 0.0]) == [typed]
    assert await index.search(Typed) == [typed]
    found = await index.search(Typed, requirements=AttributeRequirement.equal("key", str(typed.key)))
    assert found == [typed]


@attrs.frozen
class Keyed:
    key: uuid.UUID


async def test_a_payload_that_cannot_be_read_back_is_refused_or_named(postgres: Postgres) -> None:
    preset = PostgresVectorIndex(postgres, converter=cattrs.preconf.orjson.make_converter())
    await preset.create_table(Keyed, dimension=3)  # the preset writes a UUID, has no hook to read it
    with pytest.raises(TypeError, match=r'table "keyed" cannot be read back as Keyed \(field key\)'):
        await preset.index(Keyed, values=[Keyed(uuid.uuid4())], attribute=lambda _: [1.0, 0.0, 0.0])
    assert await rows(postgres, "keyed") == 0
    # a row written by hand (or by older code) that does not fit the model
    index = PostgresVectorIndex(postgres)
    await index.create_table(Doc, dimension=3)
    await postgres.execute(
        "INSERT INTO doc (embedding, payload, meta) VALUES ('[1,0,0]', '{\"extra\": 1}', '{}')"
    )
    for call in (index.search(Doc, query=[1.0, 0.0, 0.0]), index.search(Doc)):
        with pytest.raises(PgstashError, match=r'table "doc" cannot be read back as Doc.*text') as error:
            await call
        assert "cattrs" not in type(error.value).__module__


# -- 13: a primary key, also on tables made before it ------------------------------------------------

SEED_TABLE = """
    CREATE TABLE doc (
        id UUID NOT NULL DEFAULT gen_random_uuid(),
        embedding VECTOR(3) NOT NULL,
        payload JSONB NOT NULL,
        meta JSONB NOT NULL,
        created TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
    )
"""


async def test_vector_tables_have_a_primary_key_and_delete_in_a_publication(postgres: Postgres) -> None:
    await postgres.execute(SEED_TABLE)
    index = PostgresVectorIndex(postgres)
    await index.index(Doc, values=[Doc("a"), Doc("b")], attribute=lambda d: [1.0, 0.0, float(d.text == "b")])
    await postgres.execute("CREATE PUBLICATION everything FOR ALL TABLES")
    try:
        with pytest.raises(Exception, match="replica identity"):
            await index.delete(Doc, requirements=AttributeRequirement.equal("text", "a"))
        await index.create_table(Doc, dimension=3)  # adds the key to the existing table
        assert await index.delete(Doc, requirements=AttributeRequirement.equal("text", "a")) == 1
        await index.create_table(Doc, dimension=3, table="fresh")
        for table in ("doc", "fresh"):
            key = await postgres.fetch_value(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = $1::regclass AND contype = 'p'",
                table,
            )
            assert key == "PRIMARY KEY (id)"
    finally:
        await postgres.execute("DROP PUBLICATION everything")


# -- 14: IVFFlat is trained on rows ---------------------------------------------------------------


async def methods(postgres: Postgres) -> list[str]:
    found: list[str] = [
        row["amname"]
        for row in await postgres.fetch(
            "SELECT am.amname FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid "
            "JOIN pg_am am ON am.oid = ic.relam WHERE i.indrelid = 'doc'::regclass AND i.indisvalid "
            "ORDER BY 1"
        )
    ]
    return found


async def test_ivfflat_is_built_by_the_index_call_that_brings_enough_rows(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Doc, dimension=3, index="ivfflat")
    assert "ivfflat" not in await methods(postgres)  # no lists trained on an empty table
    vectors = np.random.default_rng(1).standard_normal((tables.IVFFLAT_MIN_ROWS, 3)).astype(np.float32)
    first = [Doc(f"d{i}") for i in range(tables.IVFFLAT_MIN_ROWS - 1)]
    small = bulk.BULK_MIN_ROWS - 1  # small calls: no bulk load (which would build it at once)
    for start in range(0, len(first), small):
        batch = first[start : start + small]
        await index.index(Doc, values=batch, attribute=lambda d: vectors[int(d.text[1:])])
    assert "ivfflat" not in await methods(postgres)
    assert len(await index.search(Doc, query=[1.0, 0.0, 0.0], limit=5)) == 5  # exact meanwhile
    await index.index(Doc, values=[Doc("last")], attribute=lambda _: vectors[-1])
    assert "ivfflat" in await methods(postgres)
    assert len(await index.search(Doc, query=[1.0, 0.0, 0.0], limit=5)) == 5


async def test_ivfflat_on_a_table_with_rows_is_built_at_once(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Doc, dimension=3, index=None)
    vectors = np.random.default_rng(2).standard_normal((tables.IVFFLAT_MIN_ROWS, 3)).astype(np.float32)
    docs = [Doc(f"d{i}") for i in range(tables.IVFFLAT_MIN_ROWS)]
    await index.index(Doc, values=docs, attribute=lambda d: vectors[int(d.text[1:])])
    await index.create_table(Doc, dimension=3, index="ivfflat")  # the explicit call
    assert await methods(postgres) == ["btree", "btree", "gin", "ivfflat"]


# -- 5: a requirement on an aliased attrs field --------------------------------------------------


@attrs.frozen
class Aliased:
    identifier: str = attrs.field(alias="id")


async def test_a_requirement_on_an_aliased_field_matches_the_key_the_converter_writes(
    postgres: Postgres,
) -> None:
    index = PostgresVectorIndex(postgres, converter=cattrs.Converter(use_alias=True))
    await index.create_table(Aliased, dimension=3)
    await index.index(
        Aliased,
        values=[Aliased(id="a"), Aliased(id="b")],
        attribute=lambda a: [1.0, 0.0, float(a.identifier == "b")],
    )
    assert await postgres.fetch_value("SELECT count(*) FROM aliased WHERE payload ? 'id'") == 2
    only_a = AttributeRequirement.equal(attrs.fields(Aliased).identifier, "a")
    assert await index.search(Aliased, query=[1.0, 0.0, 0.0], requirements=only_a) == [Aliased(id="a")]
    assert await index.search(Aliased, requirements=only_a) == [Aliased(id="a")]
    assert await index.delete(Aliased, requirements=only_a) == 1
