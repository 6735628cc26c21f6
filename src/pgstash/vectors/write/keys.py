"""Upserts by key: each keyed row's `id` is a UUID derived from its table and its key, so that
`index(..., key=...)` replaces the rows of the keys it writes and `delete(keys=...)` finds them by
the primary key.

    id = uuid5(uuid5(NAMESPACE_URL, "pgstash:vectors:" + table), key_text)

`key_text` is the key's JSON text (`"doc-1"` with its quotes, `42` without), so the string "42" and
the integer 42 are different keys. A key is a str (no NUL, at most 1,000 characters) or an int.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any

import attrs
import numpy as np
from numpy.typing import NDArray

from pgstash.connection import Postgres
from pgstash.jsonvalue import dumps_json
from pgstash.sql import names
from pgstash.sql.catalogue import Query
from pgstash.sql.composer import compose
from pgstash.sql.statements import Statement
from pgstash.vectors.filters import KeyOf, path_of

__all__ = ["MAX_KEY_LENGTH", "delete_keys", "key_reader", "key_text", "replace_rows", "row_ids", "uuid_texts"]

MAX_KEY_LENGTH = 1_000


def _namespace(table: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"pgstash:vectors:{table}")


def key_text(key: object, position: int | None) -> str:
    """The key's JSON text; a key that is not a str (non-empty, no NUL, at most 1,000
    characters) or an int raises `ValueError` or `TypeError` naming its position."""
    where = "" if position is None else f" of value {position}"
    if isinstance(key, str):
        if "\x00" in key or not key or len(key) > MAX_KEY_LENGTH:
            raise ValueError(
                f"the key{where} must be a non-empty string of at most {MAX_KEY_LENGTH:,} characters "
                f"without NUL, got {key[:40]!r}"
            )
        return dumps_json(key).decode()
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    raise TypeError(f"the key{where} is a str or an int, not {type(key).__name__} ({key!r})")


def row_ids(table: str, keys: Sequence[object], *, unique: bool = True) -> NDArray[np.uint8]:
    """Each key's row id as 16 bytes, one row per key (uuid.uuid5's result, 7x faster: one SHA-1
    per key from a copied prefix, the version and variant bits set for all rows at once). With
    `unique`, two equal keys raise `ValueError` naming both positions (before anything is
    written: one call cannot write two rows of one key)."""
    prefix = hashlib.sha1(_namespace(table).bytes, usedforsecurity=False)
    digests = bytearray()
    seen: dict[str, int] = {}
    for position, key in enumerate(keys):
        text = key_text(key, position)
        if unique:
            first = seen.setdefault(text, position)
            if first != position:
                raise ValueError(
                    f"values {first} and {position} have the same key {key!r}: one index() call "
                    "writes one row per key; nothing was written"
                )
        digest = prefix.copy()
        digest.update(text.encode())
        digests += digest.digest()[:16]
    ids = np.frombuffer(bytes(digests), dtype=np.uint8).reshape(-1, 16).copy()
    ids[:, 6] = (ids[:, 6] & 0x0F) | 0x50  # version 5
    ids[:, 8] = (ids[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    return ids


def uuid_texts(ids: NDArray[np.uint8]) -> list[str]:
    """The ids as hex text for a uuid[] parameter (asyncpg parses text ids 2x faster than it
    takes UUID objects, which also cost 2 us each to make)."""
    raw = ids.tobytes()
    return [raw[start : start + 16].hex() for start in range(0, len(raw), 16)]


def key_reader(key: Any, key_of: KeyOf | None = None) -> Callable[[Any, Any], object]:
    """How to read a value's key, as a function of (value, its stored payload): `key(value)` for
    a callable, else the payload at `key`, a path as a requirement's (a dotted string, an attrs
    field mapped by `key_of` to the key the converter writes, or a sequence)."""
    if callable(key) and not isinstance(key, attrs.Attribute | dataclasses.Field):
        return lambda value, _: key(value)
    try:
        path = path_of(key, key_of)
    except (TypeError, ValueError):
        raise TypeError(
            f"key is a field name, a dotted path, an attrs field or a callable, not {key!r}"
        ) from None

    def read(_: Any, payload: Any) -> object:
        found = payload
        for step in path:
            if not isinstance(found, dict) or step not in found:
                raise ValueError(f"a value's payload has no {'.'.join(path)!r} to key its row by")
            found = found[step]
        return found

    return read


async def replace_rows(
    postgres: Postgres, name: str, ids: NDArray[np.uint8], rows: AsyncIterator[bytes]
) -> int:
    """One transaction (a savepoint inside the caller's): the per-table keys lock, the rows of
    these ids deleted, then the binary COPY of `rows` (`ingest.KEYED_COPY_COLUMNS`). The lock (the
    table's own SHARE UPDATE EXCLUSIVE: only a role that may write the table can hold it) makes a
    concurrent ingest of the same keys wait and then replace these rows: without it, its
    DELETE would not see them and its COPY would fail on the primary key. Returns the rows copied.
    Inside a bulk load's transaction (`bulk.py`) the lock is held already and the indexes are
    built after this, in the same transaction."""
    delete = compose(names.vectors_delete_ids, slots={"table": name}, ids=uuid_texts(ids))
    return await swap_rows(postgres, name, delete, names.vectors_copy_keyed, rows)


async def swap_rows(
    postgres: Postgres, name: str, delete: Statement, copy: Query, rows: AsyncIterator[bytes]
) -> int:
    """The keyed writes' one transaction (a savepoint inside the caller's): the keys lock, the
    `delete` of the rows being replaced, the binary COPY of `rows` by `copy`. Returns the rows
    copied. `replace_rows` (by key) and `documents.replace_documents` (by document) both use it."""
    async with postgres.transaction():
        await postgres.run_statement(compose(names.vectors_keys_lock, slots={"table": name}))
        await postgres.run_statement(delete)
        statement = compose(copy, slots={"table": name})
        copied: int = await postgres.copy(attrs.evolve(statement, kind="copy"), rows)  # aiosql: COPY is "!"
    return copied


async def delete_keys(postgres: Postgres, name: str, keys: Iterable[object]) -> int:
    """Deletes the rows of `keys` (as `index(..., key=...)` wrote them); how many it deleted."""
    if isinstance(keys, str | bytes):
        raise TypeError("keys is a collection of keys, not one key: keys=[key]")
    ids = uuid_texts(row_ids(name, list(keys), unique=False))
    status: str = await postgres.run_statement(
        compose(names.vectors_delete_ids, slots={"table": name}, ids=ids)
    )
    return int(status.rsplit(" ", 1)[-1])
