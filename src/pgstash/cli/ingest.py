"""`pgstash vector ingest NAME FILE.jsonl`: JSON lines into a vector table, every row or none.

Each JSON line is one row: its object is the stored payload (`Record`). Its vector is the field
named by `--vector-field` (a list of numbers), or the text of `--text-field` (a string) embedded
with the lexical `HashingEmbedding` of the table's dimension. Every line is checked before it is
sent, an error naming FILE:LINE (physical lines, blank ones counted). `-` is stdin. A line longer
than `MAX_LINE_BYTES` (16 MiB) is refused before it is read whole (it would take several times its
size in memory as Python objects), naming FILE:LINE and the limit: nothing is written.

One file is one transaction (`PostgresVectorIndex.loading`). Into a table with an HNSW/IVFFlat
index, the file's rows are estimated before the first write (all of them when it has at most
`BATCH` rows; else from its first `BATCH` rows and its size; from standard input, the first
`BATCH` rows only): when that is large next to the table (the rule of `index`, vectors/write/bulk.py)
the index is dropped in a short transaction first, every batch is copied without it in the one
transaction, and the index is built from the data at its end; otherwise the rows go into the
index as they come.
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from collections.abc import Iterator
from typing import IO, Any

import attrs
import cattrs
import orjson

from pgstash.cli.console import progress
from pgstash.connection import Postgres
from pgstash.embeddings import HashingEmbedding
from pgstash.errors import PgstashError
from pgstash.vectors import PostgresVectorIndex

__all__ = ["BATCH", "MAX_LINE_BYTES", "InputError", "Record", "converter", "ingest", "size_of"]

BATCH = 1000
MAX_LINE_BYTES = 16 << 20  # one JSON line: a 16,000-dimension vector as text is ~0.3 MB


@attrs.frozen
class Record:
    """A JSON object stored as the payload, as it is."""

    payload: dict[str, Any]


def converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_unstructure_hook(Record, lambda record: record.payload)
    converter.register_structure_hook(Record, lambda value, _: Record(dict(value)))
    return converter


class InputError(ValueError):
    """A line of the input that cannot be stored; the message names FILE:LINE."""


def _lines(stream: IO[bytes], name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(physical line number, JSON object) for every non-blank line; a line over
    `MAX_LINE_BYTES` raises `InputError` having read no more than that of it."""
    for number, line in enumerate(iter(lambda: stream.readline(MAX_LINE_BYTES + 1), b""), 1):
        if len(line) > MAX_LINE_BYTES:
            raise InputError(
                f"{name}:{number}: the line is longer than {MAX_LINE_BYTES:,} bytes, the most "
                "pgstash reads as one row"
            )
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise InputError(f"{name}:{number}: not JSON: {error}") from None
        if not isinstance(row, dict):
            raise InputError(f"{name}:{number}: each line must be a JSON object, not {type(row).__name__}")
        yield number, row


def _nul_path(value: Any, path: str = "") -> str | None:
    """The JSON path of the first string or key holding a NUL character (PostgreSQL refuses it)."""
    if isinstance(value, str):
        return path or "(the value)" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                return where
            if (found := _nul_path(item, where)) is not None:
                return found
    if isinstance(value, list):
        for position, item in enumerate(value):
            if (found := _nul_path(item, f"{path}[{position}]")) is not None:
                return found
    return None


def _check(name: str, number: int, row: dict[str, Any], args: argparse.Namespace, dimension: int) -> None:
    """Refuses a row before anything is sent, naming FILE:LINE and the field."""
    where = f"{name}:{number}"
    field = args.text_field or args.vector_field
    if field not in row:
        raise InputError(f"{where}: no field {field!r}")
    value = row[field]
    if args.text_field is not None and not isinstance(value, str):
        raise InputError(f"{where}: --text-field {field!r} must be a string, got {type(value).__name__}")
    if args.vector_field is not None:
        if not isinstance(value, list) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in value
        ):
            raise InputError(f"{where}: --vector-field {field!r} must be a list of finite numbers")
        if len(value) != dimension:
            raise InputError(
                f"{where}: --vector-field {field!r} has {len(value)} numbers, "
                f"the table's dimension is {dimension}"
            )
    if (path := _nul_path(row)) is not None:
        raise InputError(f"{where}: field {path!r} holds a NUL character, which PostgreSQL cannot store")
    if args.key_field is not None:
        key = row.get(args.key_field)
        if not isinstance(key, str | int) or isinstance(key, bool) or key == "":
            raise InputError(
                f"{where}: --key-field {args.key_field!r} must be a non-empty string or an integer"
            )


def size_of(stream: IO[bytes]) -> int | None:
    try:
        return stream.seek(0, 2) or None
    finally:
        stream.seek(0)


async def ingest(
    postgres: Postgres,
    args: argparse.Namespace,
    stream: IO[bytes],
    name: str,
    size: int | None,
    dimension: int,
) -> int:
    """Every line in one transaction (`PostgresVectorIndex.loading`, sized by `_expected`), BATCH
    rows per COPY; any error rolls all of them back."""
    index = PostgresVectorIndex(postgres, embedding=HashingEmbedding(dimension), converter=converter())
    field = args.text_field or args.vector_field
    started = time.perf_counter()
    written = 0
    try:
        with progress(f"ingest {args.name}", size, "rows") as advance:
            rows = _checked(_lines(stream, name), name, args, dimension)
            first = list(itertools.islice(rows, BATCH))
            expected = _expected(len(first), stream.tell() if size else 0, size)
            async with index.loading(Record, rows=max(1, expected), table=args.name):
                batch: list[tuple[int, dict[str, Any]]] = []
                for number, row in itertools.chain(first, rows):
                    batch.append((number, row))
                    if len(batch) == BATCH:
                        written += await _write(index, args.name, field, batch, name, args.key_field)
                        batch = []
                        advance(stream.tell() if size else 0, written)
                if batch:
                    written += await _write(index, args.name, field, batch, name, args.key_field)
    except InputError as error:
        raise InputError(f"{error}; nothing was written") from None
    except (PgstashError, ValueError, OSError) as error:
        raise InputError(f"{name}: {error}; nothing was written") from error
    seconds = time.perf_counter() - started
    print(
        f"ingested {written} rows into {args.name} in {seconds:.2f} s"
        f" ({written / max(seconds, 1e-9):,.0f} rows/s), in one transaction"
    )
    return 0


def _checked(
    rows: Iterator[tuple[int, dict[str, Any]]], name: str, args: argparse.Namespace, dimension: int
) -> Iterator[tuple[int, dict[str, Any]]]:
    """The rows, each checked (`_check`), with `--key-field` one row per key."""
    keys: dict[object, int] = {}  # the line of each key
    for number, row in rows:
        _check(name, number, row, args, dimension)
        if args.key_field is not None:
            first = keys.setdefault(row[args.key_field], number)
            if first != number:
                raise InputError(f"{name}:{number}: key {row[args.key_field]!r} again (line {first})")
        yield number, row


def _expected(read: int, position: int, size: int | None) -> int:
    """The rows the input holds: all of them when fewer than BATCH were there; else extrapolated
    from the bytes those took (`position`) and the file's size; without a size (stdin), `read`."""
    if read < BATCH or not size or not position:
        return read
    return max(read, read * size // position)


async def _write(
    index: PostgresVectorIndex,
    table: str,
    field: str,
    batch: list[tuple[int, dict[str, Any]]],
    name: str,
    key: str | None,
) -> int:
    try:
        return await index.index(
            Record,
            values=[Record(row) for _, row in batch],
            attribute=lambda r: r.payload[field],
            table=table,
            key=key,
        )
    except ValueError as error:
        raise InputError(f"{name}:{batch[0][0]}-{batch[-1][0]}: {error}") from error
