"""Binary codecs set on pooled connections: jsonb <-> Python values (orjson), and pgvector's
vector, halfvec and sparsevec through pgvector-python's `Vector`/`HalfVector`/`SparseVector`
binary formats, decoded to numpy arrays (the contract promises numpy, not pgvector's classes).

The vector codecs can only be set once `CREATE EXTENSION vector` ran. A connection opened before
that (application pods start before the migration job) gets them later: `lifecycle` calls
`register_vector_codecs` when a statement's vector argument failed to encode on the client, which
provably sent nothing, and runs the statement again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import numpy as np
import orjson
from numpy.typing import NDArray
from pgvector import HalfVector, SparseVector, Vector

from pgstash.jsonvalue import dumps_json

__all__ = [
    "VECTOR_TYPES",
    "decode_jsonb",
    "encode_jsonb",
    "register_codecs",
    "register_jsonb",
    "register_vector_codecs",
]

_JSONB_VERSION = b"\x01"
VECTOR_TYPES = ("vector", "halfvec", "sparsevec")


def encode_jsonb(value: Any) -> bytes:
    """jsonb's binary format: a version byte, then the JSON text (NaN, Infinity and NUL refused)."""
    return _JSONB_VERSION + dumps_json(value, "a jsonb parameter")


def decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


def _dense(value: Any, dtype: type[np.floating[Any]]) -> NDArray[Any]:
    array = np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, dtype=dtype)
    if array.ndim != 1:
        raise ValueError(f"a vector must be one-dimensional, got shape {array.shape}")
    return array


def encode_vector(value: Any) -> bytes:
    return (value if isinstance(value, Vector) else Vector(_dense(value, np.float32))).to_binary()


def decode_vector(data: bytes) -> NDArray[np.float32]:
    return Vector.from_binary(data).to_numpy()


def encode_halfvec(value: Any) -> bytes:
    return (value if isinstance(value, HalfVector) else HalfVector(_dense(value, np.float16))).to_binary()


def decode_halfvec(data: bytes) -> NDArray[np.float16]:
    return HalfVector.from_binary(data).to_numpy()


def encode_sparsevec(value: Any) -> bytes:
    sparse = value if isinstance(value, SparseVector) else SparseVector(_dense(value, np.float32))
    return sparse.to_binary()


def decode_sparsevec(data: bytes) -> NDArray[np.float32]:
    return SparseVector.from_binary(data).to_numpy().astype(np.float32, copy=False)


_VECTOR_CODECS: dict[str, tuple[Callable[[Any], bytes], Callable[[bytes], Any]]] = {
    "vector": (encode_vector, decode_vector),
    "halfvec": (encode_halfvec, decode_halfvec),
    "sparsevec": (encode_sparsevec, decode_sparsevec),
}


async def register_jsonb(connection: asyncpg.Connection) -> None:
    await connection.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=encode_jsonb, decoder=decode_jsonb, format="binary"
    )


async def register_vector_codecs(
    connection: asyncpg.Connection, types: Callable[[], Awaitable[list[Any]]]
) -> bool:
    """Sets the codec of each pgvector type `types()` lists (rows of `typname`, `nspname`, from
    the named query `vector_types`); whether the database has the `vector` type yet."""
    rows = await types()
    for row in rows:
        encoder, decoder = _VECTOR_CODECS[row["typname"]]
        await connection.set_type_codec(
            row["typname"], schema=row["nspname"], encoder=encoder, decoder=decoder, format="binary"
        )
    return any(row["typname"] == "vector" for row in rows)


async def register_codecs(connection: asyncpg.Connection) -> None:
    """Every codec on a connection of the caller's own (outside a pool: the benches' raw
    asyncpg baseline), so that both sides decode the same values."""
    from pgstash.sql.catalogue import query

    await register_jsonb(connection)
    types = query("vector_types").bind(names=list(VECTOR_TYPES))
    await register_vector_codecs(connection, lambda: connection.fetch(types.sql, *types.args))
