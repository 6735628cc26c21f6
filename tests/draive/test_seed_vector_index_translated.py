"""draive 0.89.5's own tests of its Postgres vector index (tests/test_postgres_vector_index.py
upstream: the connection, `Postgres.fetch`/`execute` and the embedding mocked, the SQL text
inspected) as scenarios on the real database through pgstash.draive. Where upstream asserts on
the statement it sent (INSERT INTO chunk, `embedding <#> $1`, one WHERE, DELETE FROM chunk), this
asserts on what a user relies on: the rows in draive's `chunk` table, the order and threshold of
search, the rows a requirement selects and the rows a delete leaves behind."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest

from tests.support.draive import DIMENSION, SEED_CHUNK_TABLE, SEEDS, exact_pool, seed_only

pytestmark = seed_only


def _axis(*weights: float) -> list[float]:
    """A unit vector in the first len(weights) dimensions (the rest zero)."""
    vector = [*weights, *([0.0] * (DIMENSION - len(weights)))]
    norm = sum(value * value for value in vector) ** 0.5
    return [value / norm for value in vector]


# Each text has a fixed vector: "relevant" is the query's direction, "close" at cosine 0.8 of it,
# "far" orthogonal to it; "match"/"other"/"first"/"second" share the query's direction.
VECTORS = {
    "prompt": _axis(1.0),
    "relevant": _axis(1.0),
    "close": _axis(0.8, 0.6),
    "far": _axis(0.0, 1.0),
}


def _vector(text: str) -> list[float]:
    return VECTORS.get(text, _axis(1.0))


if SEEDS:
    from draive.parameters import DataModel

    class Chunk(DataModel):
        text: str


async def _embed(values: Sequence[Any], /, attribute: Any = None, **extra: Any) -> list[Any]:
    from draive.embedding import Embedded

    return [
        Embedded(value=value, vector=_vector(value if attribute is None else attribute(value)))
        for value in values
    ]


def _scope(dsn: str, exact: bool = False) -> Any:
    """`exact`: searches probe every list of the seed's index (`exact_pool`)."""
    from draive import ctx
    from draive.embedding import TextEmbedding

    import pgstash.draive as ours

    return ctx.scope(
        "vectors",
        ours.PostgresVectorIndex(),
        TextEmbedding(embedding=_embed),
        disposables=(exact_pool(dsn) if exact else ours.PostgresConnectionPool.of(dsn=dsn),),
    )


def _postgres() -> Any:
    from draive import ctx

    import pgstash.draive as ours

    return ctx.state(ours.PostgresState).postgres


async def _index(*texts: str) -> None:
    from draive.utils import VectorIndex

    await _postgres().execute(SEED_CHUNK_TABLE)
    await VectorIndex.index(
        Chunk, attribute=Chunk._.text, values=[Chunk(text=text) for text in texts], namespace="docs"
    )


async def _stored_texts() -> list[str]:
    rows = await _postgres().fetch("SELECT payload::TEXT AS payload FROM chunk")
    return sorted(Chunk.from_json(row["payload"]).text for row in rows)


async def test_index_persists_entries(database_dsn: str) -> None:
    """Upstream: two chunks become two INSERTs into `chunk` with the vector, the payload and a
    created time. Here: two rows in draive's table, each with the embedding's vector, the model's
    JSON as payload, and a created time."""
    async with _scope(database_dsn):
        await _index("first", "second")
        rows = await _postgres().fetch("SELECT embedding::TEXT, payload::TEXT AS payload, created FROM chunk")
    assert len(rows) == 2
    assert sorted(Chunk.from_json(row["payload"]).text for row in rows) == ["first", "second"]
    for row in rows:
        stored = [float(value) for value in row["embedding"].strip("[]").split(",")]
        assert stored == pytest.approx(_axis(1.0))
        assert isinstance(row["created"], datetime)


async def test_search_orders_by_similarity(database_dsn: str) -> None:
    """Upstream: a query with a score threshold and a limit orders by the vector distance and
    returns the stored chunk. Here: the nearest chunk first, the limit honoured, and a chunk below
    the threshold never returned (the first of three: searched exactly)."""
    from draive.utils import VectorIndex

    async with _scope(database_dsn, exact=True):
        await _index("far", "close", "relevant")
        first = await VectorIndex.search(Chunk, query="prompt", limit=1, score_threshold=0.5)
        above = await VectorIndex.search(Chunk, query="prompt", limit=10, score_threshold=0.5)
        every = await VectorIndex.search(Chunk, query="prompt", limit=10)
    assert first == (Chunk(text="relevant"),)
    assert above == (Chunk(text="relevant"), Chunk(text="close"))
    assert every == (Chunk(text="relevant"), Chunk(text="close"), Chunk(text="far"))


async def test_search_applies_requirements(database_dsn: str) -> None:
    """Upstream: a requirement on `Chunk._.text` becomes one WHERE on the payload, its value bound.
    Here: of chunks equally near the query, only the one the requirement names is returned."""
    from draive.utils import VectorIndex
    from haiway import AttributeRequirement

    async with _scope(database_dsn):
        await _index("match", "other", "match-not")
        found = await VectorIndex.search(
            Chunk, query="prompt", requirements=AttributeRequirement.equal("match", Chunk._.text), limit=2
        )
    assert found == (Chunk(text="match"),)


async def test_delete_uses_resolved_where_clause(database_dsn: str) -> None:
    """Upstream: delete with a requirement is one DELETE FROM chunk with that WHERE. Here: only
    the rows the requirement selects are gone; the others stay."""
    from draive.utils import VectorIndex
    from haiway import AttributeRequirement

    async with _scope(database_dsn):
        await _index("match", "other", "match")
        await VectorIndex.delete(Chunk, requirements=AttributeRequirement.equal("match", Chunk._.text))
        assert await _stored_texts() == ["other"]
        assert await VectorIndex.search(Chunk, query="prompt", limit=10) == (Chunk(text="other"),)
