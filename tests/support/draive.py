"""Helpers for tests/draive (Python 3.13, one draive generation per venv): which generation is
installed, the seed's vector table, a deterministic embedding, draive's model inputs and outputs,
and draive.postgres's own pool. tests/draive/conftest.py holds the fixtures."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from draive.embedding import Embedded

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
