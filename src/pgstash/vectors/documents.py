"""Documents as chunk sets: `index(model, values=..., document=<field or callable>)`.

A table made with `create_table(..., documents=True)` has a `document` column. Every row written
with `document=` carries its document key in the table's `document` column
(the key's JSON text, as `keys.py` writes keys: `"doc-1"` with its quotes, `42` without), which a
partial B-tree serves (schema/templates/vector_table.sql). One `index` call replaces the whole
chunk set of each document it names, in one transaction under the table's keyed-ingest lock
(`vectors_keys_lock`): the old rows of those documents deleted, the new ones COPYed. A document
re-chunked from 12 chunks to 9 leaves 9 rows; a concurrent ingest of the same document waits and
then replaces this one's set. `delete(documents=[...])` deletes whole sets.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Iterable, Sequence

from pgstash.connection import Postgres
from pgstash.errors import ConfigurationError
from pgstash.sql import names
from pgstash.sql.composer import compose
from pgstash.vectors.facts import TableFacts, index_name
from pgstash.vectors.table import VectorTable
from pgstash.vectors.write.keys import key_text, swap_rows

__all__ = ["check_table", "delete", "delete_documents", "document_texts", "framed", "replace_documents"]


def document_texts(keys: Sequence[object]) -> list[str]:
    """Each row's document key as its JSON text; a key that is not a str (no NUL, at most 1,000
    characters) or an int raises before anything is written."""
    return [key_text(key, position) for position, key in enumerate(keys)]


def framed(texts: Sequence[str]) -> list[bytes]:
    """Each text as a binary COPY field: its length, then its UTF-8 bytes."""
    encoded = [text.encode() for text in texts]
    return [struct.pack(">i", len(raw)) + raw for raw in encoded]


def check_table(facts: TableFacts, name: str) -> None:
    """`ConfigurationError` for a table made before documents (no `document` column and index)."""
    if index_name(name, "document_idx") not in facts.indexes:
        raise ConfigurationError(
            f'table "{name}" has no document column: run create_table(..., documents=True) for it '
            "(it adds the column, which rewrites nothing, and its index, concurrently)"
        )


async def replace_documents(
    postgres: Postgres, name: str, documents: Sequence[str], rows: AsyncIterator[bytes]
) -> int:
    """One transaction (a savepoint inside the caller's): the keyed-ingest lock, the old chunk
    sets of `documents` deleted, the binary COPY of `rows` (`ingest.DOCUMENT_COPY_COLUMNS`).
    Returns the rows copied."""
    delete = compose(names.vectors_delete_documents, slots={"table": name}, documents=list(documents))
    return await swap_rows(postgres, name, delete, names.vectors_copy_documents, rows)


async def delete_documents(postgres: Postgres, name: str, documents: Iterable[object]) -> int:
    """Deletes the chunk sets of `documents` (their keys, as `index(..., document=...)` read
    them); how many rows it deleted."""
    if isinstance(documents, str | bytes):
        raise TypeError("documents is a collection of document keys, not one key: documents=[key]")
    texts = document_texts(list(documents))
    status: str = await postgres.run_statement(
        compose(names.vectors_delete_documents, slots={"table": name}, documents=texts)
    )
    return int(status.rsplit(" ", 1)[-1])


async def delete(table: VectorTable, documents: Iterable[object], *others: object) -> int:
    """`PostgresVectorIndex.delete(documents=...)` on `table`; `others` (its requirements,
    everything and keys) must be unset."""
    if others[0] is not None or others[1] or others[2] is not None:
        raise ValueError("pass one of documents, keys, requirements or everything=True to delete")
    with table.required():
        return await delete_documents(table.postgres, table.name, documents)
