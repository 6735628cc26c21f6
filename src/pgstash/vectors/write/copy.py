"""Binary COPY for `index`: the rows in PostgreSQL's binary COPY format, built by numpy a batch at a
time, for the `vectors_copy` statement of queries/vectors.sql (sent by `Postgres.copy`).

Encoding only, 20,000 x 384 on the 2-core test machine: this vectorised encoder 450-570 ms,
pgvector-python's `Vector(row).to_binary()` per row plus the row framing 1,010-1,460 ms (2.2x
slower), so the numpy layout stays.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "COPY_COLUMNS",
    "DOCUMENT_COPY_COLUMNS",
    "KEYED_COPY_COLUMNS",
    "copy_stream",
    "microseconds_since_2000",
]

# COPY column order (queries/vectors.sql, vectors_copy): the fixed-size fields of a row first,
# then the JSON ones (see copy_stream).
COPY_COLUMNS = ("embedding", "created", "meta", "payload")
KEYED_COPY_COLUMNS = ("id", *COPY_COLUMNS)  # vectors_copy_keyed: ids derived from keys (keys.py)
DOCUMENT_COPY_COLUMNS = (*COPY_COLUMNS, "document")  # vectors_copy_documents (documents.py)
_MICROSECOND = timedelta(microseconds=1)
_POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # timestamptz's binary zero
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_COPY_BATCH = 2048  # rows per chunk handed to the connection


def microseconds_since_2000(moment: datetime) -> int:
    """`moment` as timestamptz's binary value."""
    return (moment - _POSTGRES_EPOCH) // _MICROSECOND


async def copy_stream(
    vectors: NDArray[np.float32] | NDArray[np.float16],
    first: int,
    metas: Sequence[bytes],
    payloads: Iterator[bytes],
    ids: NDArray[np.uint8] | None = None,
    documents: Sequence[bytes] | None = None,
) -> AsyncIterator[bytes]:
    """The rows in PostgreSQL's binary COPY format (columns `COPY_COLUMNS`, or with `ids` (n, 16)
    `KEYED_COPY_COLUMNS`), built a batch at a time: numpy lays out each row's fixed part (field
    count, the row's uuid, the vector as pgvector's binary `vector` (float32 rows) or `halfvec`
    (float16 rows: the same header, 2-byte components), `created` as
    microseconds since 2000-01-01, `first` plus the row's position), then its meta and payload
    jsonb fields follow, and with `documents` each row's document field (length and text, already
    framed: `DOCUMENT_COPY_COLUMNS`). No per-row encoder calls: the connection only forwards the
    bytes."""
    count, dimension = vectors.shape
    width = vectors.dtype.itemsize  # float32: pgvector's vector, float16: its halfvec (same layout)
    keyed = [("id_size", ">i4"), ("id", "u1", (16,))] if ids is not None else []
    layout = np.dtype(
        [
            ("fields", ">i2"),
            *keyed,
            ("vector_size", ">i4"),
            ("dimension", ">u2"),
            ("unused", ">u2"),
            ("vector", f">f{width}", (dimension,)),
            ("created_size", ">i4"),
            ("created", ">i8"),
        ]
    )
    size = layout.itemsize
    yield _COPY_HEADER
    for start in range(0, count, _COPY_BATCH):
        stop = min(count, start + _COPY_BATCH)
        block = np.empty(stop - start, dtype=layout)
        block["fields"] = len(COPY_COLUMNS) + (ids is not None) + (documents is not None)
        if ids is not None:
            block["id_size"] = 16
            block["id"] = ids[start:stop]
        block["vector_size"] = 4 + width * dimension
        block["dimension"] = dimension
        block["unused"] = 0
        block["vector"] = vectors[start:stop]
        block["created_size"] = 8
        block["created"] = np.arange(first + start, first + stop, dtype=np.int64)
        fixed = memoryview(block.tobytes())
        parts: list[bytes | memoryview] = []
        for row in range(stop - start):
            parts += (fixed[row * size : (row + 1) * size], metas[start + row], next(payloads))
            if documents is not None:
                parts.append(documents[start + row])
        yield b"".join(parts)
    yield _COPY_TRAILER
