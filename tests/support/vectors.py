"""Vector rows for tests: unit vectors, chunks that carry them, the exact answer, and the plan of
the statement a call ran."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np
from numpy.typing import NDArray
from tests.support.statements import sent

from pgstash import Postgres, PostgresVectorIndex


@attrs.frozen
class Chunk:
    identifier: str
    text: str
    topic: str = "general"
    rank: int = 0


def unit_rows(count: int, dimension: int, seed: int = 0) -> NDArray[np.float32]:
    """`count` random vectors of length 1 (the same ones for the same seed)."""
    rows = np.random.default_rng(seed).standard_normal((count, dimension)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def chunks_for(vectors: NDArray[np.float32], topics: Sequence[str] = ("general",)) -> list[Chunk]:
    return [Chunk(f"c{i}", f"text {i}", topic=topics[i % len(topics)], rank=i) for i in range(len(vectors))]


async def load(
    index: PostgresVectorIndex, vectors: NDArray[np.float32], topics: Sequence[str] = ("general",)
) -> list[Chunk]:
    chunks = chunks_for(vectors, topics)
    by_id = {chunk.identifier: vector for chunk, vector in zip(chunks, vectors, strict=True)}
    await index.index(Chunk, values=chunks, attribute=lambda chunk: by_id[chunk.identifier])
    return chunks


def brute_force(
    vectors: NDArray[np.float32],
    query: NDArray[np.float32],
    limit: int,
    allowed: Sequence[bool] | None = None,
) -> list[tuple[str, float]]:
    """The exact cosine top `limit` (ids `c<row>`, scores), among the `allowed` rows."""
    matrix = vectors.astype(np.float64)
    q = query.astype(np.float64)
    scores = matrix @ q / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(q))
    order = [int(i) for i in np.argsort(-scores, kind="stable") if allowed is None or allowed[int(i)]]
    return [(f"c{i}", float(scores[i])) for i in order[:limit]]


async def plan_of(postgres: Postgres, call: Any, name: str | None = None) -> str:
    """The EXPLAIN of the statement that `call()` runs (the last one but delete's check for a bulk
    delete, `vectors_table_rows`; or the last one named `name`), as JSON text."""
    with sent(postgres) as statements:
        await call()
    sql, args = [
        (s.sql, list(s.args)) for s in statements if s.name != "vectors_table_rows" and name in (None, s.name)
    ][-1]
    plan = await postgres.fetch_value(f"EXPLAIN (FORMAT JSON) {sql}", *args)
    return plan if isinstance(plan, str) else json.dumps(plan)
