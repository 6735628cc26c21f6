"""Binary codecs registered once on every pooled connection: jsonb <-> Python values (orjson),
and pgvector's vector, halfvec and sparsevec <-> numpy arrays."""

from __future__ import annotations

import dataclasses
import math
import struct
from typing import Any

import asyncpg
import numpy as np
import orjson
from numpy.typing import NDArray

from pgstash.queries import query

__all__ = ["decode_jsonb", "dumps_json", "encode_jsonb", "encode_vector", "register_codecs"]

_JSONB_VERSION = b"\x01"
_VECTOR_HEAD = struct.Struct(">HH")
_SPARSE_HEAD = struct.Struct(">iii")


def dumps_json(value: Any) -> bytes:
    """`value` as JSON text (orjson). NaN and +-Infinity raise `ValueError` naming where they
    are: orjson would write them as `null`, storing another value than the caller's, silently.
    (Only text holding `null` is searched for them, so the common case costs one scan.)"""
    data = orjson.dumps(value)
    if b"null" in data:
        found = _non_finite(value, "$")
        if found is not None:
            path, number = found
            raise ValueError(f"{number} at {path}: JSON has no NaN or Infinity (orjson would store null)")
    return data


def _non_finite(value: Any, path: str) -> tuple[str, float] | None:
    """The path and value of the first NaN or infinite float in a JSON-bound value, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, value)
    if isinstance(value, dict):
        items: Any = ((f"{path}.{key}", item) for key, item in value.items())
    elif isinstance(value, list | tuple):
        items = ((f"{path}[{index}]", item) for index, item in enumerate(value))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = ((f"{path}.{field.name}", getattr(value, field.name)) for field in dataclasses.fields(value))
    else:
        return None
    for where, item in items:
        found = _non_finite(item, where)
        if found is not None:
            return found
    return None


def encode_jsonb(value: Any) -> bytes:
    """jsonb's binary format: a version byte, then the JSON text (NaN and Infinity refused)."""
    return _JSONB_VERSION + dumps_json(value)


def decode_jsonb(data: bytes) -> Any:
    return orjson.loads(data[1:])


def _dense(value: Any, dtype: str) -> NDArray[Any]:
    array = np.asarray(value.to_numpy() if hasattr(value, "to_numpy") else value, dtype=dtype)
    if array.ndim != 1:
        raise ValueError(f"a vector must be one-dimensional, got shape {array.shape}")
    return array


def encode_vector(value: Any) -> bytes:
    array = _dense(value, ">f4")
    return _VECTOR_HEAD.pack(array.shape[0], 0) + array.tobytes()


def decode_vector(data: bytes) -> NDArray[np.float32]:
    (dimension, _) = _VECTOR_HEAD.unpack_from(data)
    return np.frombuffer(data, dtype=">f4", count=dimension, offset=4).astype(np.float32)


def encode_halfvec(value: Any) -> bytes:
    array = _dense(value, ">f2")
    return _VECTOR_HEAD.pack(array.shape[0], 0) + array.tobytes()


def decode_halfvec(data: bytes) -> NDArray[np.float16]:
    (dimension, _) = _VECTOR_HEAD.unpack_from(data)
    return np.frombuffer(data, dtype=">f2", count=dimension, offset=4).astype(np.float16)


def encode_sparsevec(value: Any) -> bytes:
    array = _dense(value, "<f4")
    (indices,) = np.nonzero(array)
    head = _SPARSE_HEAD.pack(array.shape[0], indices.shape[0], 0)
    return head + indices.astype(">i4").tobytes() + array[indices].astype(">f4").tobytes()


def decode_sparsevec(data: bytes) -> NDArray[np.float32]:
    dimension, count, _ = _SPARSE_HEAD.unpack_from(data)
    indices = np.frombuffer(data, dtype=">i4", count=count, offset=12)
    values = np.frombuffer(data, dtype=">f4", count=count, offset=12 + 4 * count)
    dense = np.zeros(dimension, dtype=np.float32)
    dense[indices] = values
    return dense


_VECTOR_CODECS = {
    "vector": (encode_vector, decode_vector),
    "halfvec": (encode_halfvec, decode_halfvec),
    "sparsevec": (encode_sparsevec, decode_sparsevec),
}


async def register_codecs(connection: asyncpg.Connection) -> None:
    """Pool `init`: jsonb always; each pgvector type the database has (after `CREATE EXTENSION
    vector`, which `migrate` runs; the pool re-registers on new connections after migrating)."""
    await connection.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=encode_jsonb, decoder=decode_jsonb, format="binary"
    )
    vector_types = query("vector_types")
    rows = await connection.fetch(vector_types.sql, *vector_types.arguments({"names": list(_VECTOR_CODECS)}))
    for row in rows:
        encoder, decoder = _VECTOR_CODECS[row["typname"]]
        await connection.set_type_codec(
            row["typname"], schema=row["nspname"], encoder=encoder, decoder=decoder, format="binary"
        )
