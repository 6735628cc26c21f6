"""Helpers for tests/draive (Python 3.13, one draive generation per venv): which generation is
installed, the seed's vector table, a deterministic embedding, draive's model inputs and outputs,
draive.postgres's own pool, and the scenarios both generations run alike (the seed's vector index
snippet, requirements selected in SQL as haiway's `check()` selects) on the generation's own model
class and names. tests/draive/conftest.py holds the fixtures."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from draive.embedding import Embedded
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pgstash.draive

DIMENSION = 16
SEED_LISTS = 100
SEED_CHUNK_TABLE = f"""
CREATE TABLE chunk (
    id UUID NOT NULL DEFAULT gen_random_uuid(),
    embedding VECTOR(16) NOT NULL,
    payload JSONB NOT NULL,
    meta JSONB NOT NULL,
    created TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS chunk_embedding_idx ON chunk USING ivfflat (embedding vector_cosine_ops)
WITH (lists = {SEED_LISTS});
"""
# The seed's DDL builds its IVFFlat index on an empty table, so pgvector picks the SEED_LISTS centres
# at random, and a search probes the one list nearest to the query (ivfflat.probes = 1) before the
# iterative scan moves on: with fewer rows asked for than the table holds, which row comes first
# then depends on those random centres, not on distance alone (one run in ten found the farther
# row). Probing every list is an exact search (pgvector's README: the planner then leaves the index
# aside), with the seed's index left as it is: a test that asserts the nearest rows among more
# than it asks for opens its pool with EXACT_SEARCH (`exact_pool`). A search whose limit covers
# every row needs none (the iterative scan reaches every list; the rows come back by distance).
EXACT_SEARCH = {"ivfflat.probes": str(SEED_LISTS)}

SEEDS = pgstash.draive.DRAIVE_GENERATION == "0.89"
seed_only = pytest.mark.skipif(not SEEDS, reason="draive 0.89.x API")
newest_only = pytest.mark.skipif(SEEDS, reason="the newest draive's API")


def exact_pool(dsn: str) -> Any:
    """pgstash.draive's pool on `dsn` whose searches probe every list of the seed's index."""
    return pgstash.draive.PostgresConnectionPool.of(dsn=dsn, server_settings=EXACT_SEARCH)


def vector_of(text: str | bytes) -> list[float]:
    """A bag of hashed words: texts sharing words are near, deterministic, never zero."""
    data = text.decode("latin-1") if isinstance(text, bytes) else text
    vector = np.full(DIMENSION, 0.01)
    for word in re.findall(r"\w+", data.lower()) or [data]:
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % DIMENSION] += 1.0
    return [float(value) for value in vector / np.linalg.norm(vector)]


async def embed(values: Sequence[Any], /, attribute: Any = None, **extra: Any) -> list[Any]:
    """draive's embedding callable, by `vector_of`."""
    return [
        Embedded(value=value, vector=vector_of(value if attribute is None else attribute(value)))
        for value in values
    ]


def said(text: str) -> Any:
    """A user's input of text."""
    from draive import ModelInput
    from draive.multimodal import MultimodalContent

    return ModelInput.of(MultimodalContent.of(text))


def answered(text: str) -> Any:
    """The model's output of text."""
    from draive import ModelOutput
    from draive.multimodal import MultimodalContent

    return ModelOutput.of(MultimodalContent.of(text))


def haiway_pool(dsn: str) -> Any:
    """draive.postgres's own pool (haiway's) on the DSN's server: its DSN parser reads no
    `?host=` socket folder, so the parts are given one by one."""
    import glob
    import os
    from urllib.parse import parse_qs, urlsplit

    import draive.postgres as theirs

    parts = urlsplit(dsn)
    host = parse_qs(parts.query).get("host", [parts.hostname or "localhost"])[-1]
    port = str(parts.port or 5432)
    if host.startswith("/"):
        sockets = glob.glob(os.path.join(host, ".s.PGSQL.*"))
        port = sockets[0].rsplit(".", 1)[-1] if sockets else port
    return theirs.PostgresConnectionPool(
        host=host,
        port=port,
        database=parts.path.lstrip("/"),
        user=parts.username or "postgres",
        password=parts.password or "",
        ssl="disable",
    )


async def the_vector_index_snippet(dsn: str, embeddings: Any, postgres: Any, chunk: Any, index: Any) -> None:
    """The seed's vector index snippet (`chunk`: the generation's `Chunk` model with an `identifier`
    aliased "id" and a `text`; `index`: its `VectorIndex`), with what a user reads back: the nearest
    above the threshold, the newest first, a payload filter, a delete by full-text match."""
    from draive import ctx
    from haiway import AttributeRequirement

    from pgstash.draive import PostgresConnectionPool, PostgresVectorIndex

    await postgres.execute(SEED_CHUNK_TABLE)
    async with ctx.scope(
        "pgvector-demo",
        PostgresVectorIndex(),
        *embeddings,
        disposables=(PostgresConnectionPool.of(dsn=dsn),),
    ):
        await index.index(
            chunk,
            values=[
                chunk(identifier="doc-1", text="hello world"),
                chunk(identifier="doc-2", text="cats purr"),
            ],
            attribute=chunk._.text,
        )
        results: Sequence[Any] = await index.search(
            chunk,
            query="hello",
            limit=3,
            score_threshold=0.6,  # optional cosine similarity cutoff
            rerank=True,
        )
        assert [each.identifier for each in results] == ["doc-1"]
        newest = await index.search(chunk, limit=5)
        assert [each.identifier for each in newest] == ["doc-2", "doc-1"]
        only = await index.search(chunk, requirements=AttributeRequirement.equal("doc-1", chunk._.identifier))
        assert [each.text for each in only] == ["hello world"]
        await index.delete(chunk, requirements=AttributeRequirement.text_match("cats", chunk._.text))
        assert [each.identifier for each in await index.search(chunk)] == ["doc-1"]
    stored = await postgres.fetch("SELECT payload FROM chunk")
    assert [row["payload"] for row in stored] == [{"id": "doc-1", "text": "hello world"}]


WORDS = st.sampled_from(["cat", "Cat", "concatenate", "dog", "big", "a", "b_c", "x1"])
TEXTS = st.lists(WORDS | st.sampled_from([" ", ", ", "-", "!"]), max_size=6).map("".join)
NAMES = st.sampled_from(["a", "b", "c"])


def requirements_on(model: Any) -> Any:
    """haiway's requirements on `model`'s `name`, `tags` and `text`, combined with & and |."""
    from haiway import AttributeRequirement as R

    leaves = st.one_of(
        st.builds(lambda v: R.equal(v, model._.name), NAMES),
        st.builds(lambda v: R.not_equal(v, model._.name), NAMES),
        st.builds(lambda v: R.contained_in(v, model._.name), st.lists(NAMES, max_size=2)),
        st.builds(lambda v: R.contains(v, model._.tags), WORDS),
        st.builds(lambda v: R.contains_any(v, model._.tags), st.lists(WORDS, max_size=2)),
        st.builds(lambda v: R.text_match(v, model._.text), TEXTS),
    )
    return st.recursive(
        leaves,
        lambda inner: st.builds(lambda a, b, o: a & b if o else a | b, inner, inner, st.booleans()),
        max_leaves=4,
    )


def check_requirements_select_what_haiway_checks(dsn: str, model: Any) -> None:
    """For up to six rows of `model` (name, text, tags) and any requirement of `requirements_on`,
    pgstash's search with the translated requirement (limit 100, on the seed's table) returns
    exactly the rows haiway's own `check()` accepts."""
    from draive import ctx

    import pgstash.draive as ours
    from pgstash.draive.models import requirement_of, state_converter
    from pgstash.vectors import PostgresVectorIndex as Index

    def scope() -> Any:
        return ctx.scope("filters", disposables=(ours.PostgresConnectionPool.of(dsn=dsn),))

    async def create() -> None:
        async with scope():
            await ctx.state(ours.PostgresState).postgres.execute(
                SEED_CHUNK_TABLE.replace("chunk", "filtered")
            )

    async def run(rows: list[Any], requirement: Any) -> None:
        async with scope():
            postgres = ctx.state(ours.PostgresState).postgres
            await postgres.execute("TRUNCATE filtered")
            index = Index(postgres, converter=state_converter())
            await index.index(model, values=rows, attribute=lambda row: vector_of(row.text), table="filtered")
            found = await index.search(
                model, requirements=requirement_of(requirement), limit=100, table="filtered"
            )
        expected = sorted(row.to_json() for row in rows if requirement.check(row, raise_exception=False))
        assert sorted(row.to_json() for row in found) == expected

    asyncio.run(create())

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        rows=st.lists(
            st.builds(model, name=NAMES, text=TEXTS, tags=st.lists(WORDS, max_size=3)), min_size=1, max_size=6
        ),
        requirement=requirements_on(model),
    )
    def check(rows: list[Any], requirement: Any) -> None:
        asyncio.run(run(rows, requirement))

    check()
