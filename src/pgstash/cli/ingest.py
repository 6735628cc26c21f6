"""`pgstash vector ingest NAME FILE.jsonl`: JSON lines into a vector table, every row or none.

Each JSON line is one row: its object is the stored payload (`Record`). Its vector is the field
named by `--vector-field` (a list of numbers), or the text of `--text-field` (a string) embedded
with `--embedding` (default: WordLlama when `pgstash[embed]` is installed, else the lexical
`HashingEmbedding` of the table's dimension). Each row's `meta` records the embedding (and the key
and vector fields), so that `vector search` embeds its query the same way.

With `--key-field`, a row whose stored payload and meta are the same as the line's is left as it
is (not embedded, not written): loading an unchanged file again says "unchanged". Every line is
checked before it is sent, an error naming FILE:LINE (physical lines, blank ones counted). `-` is
stdin. A line longer than `MAX_LINE_BYTES` (16 MiB) is refused before it is read whole (it would
take several times its size in memory as Python objects), naming FILE:LINE and the limit: nothing
is written.

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
from pgstash.embedding_models import EMBED_HINT, WordLlamaEmbedding, wordllama_installed
from pgstash.embeddings import HashingEmbedding
from pgstash.errors import ConfigurationError, PgstashError
from pgstash.sql.catalogue import query
from pgstash.sql.composer import compose
from pgstash.vectors import PostgresVectorIndex
from pgstash.vectors.write.keys import row_ids

__all__ = [
    "BATCH",
    "MAX_LINE_BYTES",
    "InputError",
    "Record",
    "choose_embedding",
    "converter",
    "ingest",
    "size_of",
]

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


def choose_embedding(choice: str | None, dimension: int) -> Any:
    """`--embedding`: wordllama (the default when installed) or hashing; a table whose dimension
    the choice cannot give is refused naming the fix."""
    if choice is None:
        choice = "wordllama" if wordllama_installed() and dimension == 256 else "hashing"
    if choice == "hashing":
        return HashingEmbedding(dimension)
    if not wordllama_installed():
        raise ConfigurationError(f"--embedding wordllama needs its extra: {EMBED_HINT}")
    if dimension != 256:
        raise ConfigurationError(
            f"WordLlama gives 256 dimensions and the table has {dimension}: create a table with "
            "--dimension 256, or pass --embedding hashing"
        )
    return WordLlamaEmbedding()


def _row_meta(args: argparse.Namespace, embedding: Any) -> dict[str, str]:
    meta = {"embedding": embedding.name} if args.text_field else {"vector_field": args.vector_field}
    if args.key_field is not None:
        meta["key_field"] = args.key_field
    return meta


async def _changed(
    postgres: Postgres, table: str, key: str, meta: dict[str, str], batch: list[tuple[int, dict[str, Any]]]
) -> list[tuple[int, dict[str, Any]]]:
    """The rows of a keyed batch whose stored payload or meta differ from the line (or that are new)."""
    ids = [bytes(row).hex() for row in row_ids(table, [row[key] for _, row in batch])]
    statement = compose(query("vectors_rows_by_id"), slots={"table": table}, ids=ids)
    stored = {str(r["id"]).replace("-", ""): r for r in await postgres.run_statement(statement)}
    return [
        (number, row)
        for (number, row), id_ in zip(batch, ids, strict=True)
        if (old := stored.get(id_)) is None or old["payload"] != row or old["meta"] != meta
    ]


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
    embedding = choose_embedding(getattr(args, "embedding", None), dimension) if args.text_field else None
    index = PostgresVectorIndex(postgres, embedding=embedding, converter=converter())
    meta = _row_meta(args, embedding)
    field = args.text_field or args.vector_field
    started = time.perf_counter()
    written = read = 0
    try:
        with progress(f"ingest {args.name}", size, "rows") as shown:
            shown.phase(f"reading {name}")
            rows = _checked(_lines(stream, name), name, args, dimension)
            first = list(itertools.islice(rows, BATCH))
            expected = _expected(len(first), stream.tell() if size else 0, size)
            if args.key_field is not None and first:
                changed = await _changed(postgres, args.name, args.key_field, meta, first)
                expected = expected * len(changed) // len(first)
            async with index.loading(Record, rows=max(1, expected), table=args.name):
                batch: list[tuple[int, dict[str, Any]]] = []
                for number, row in itertools.chain(first, rows):
                    batch.append((number, row))
                    if len(batch) == BATCH:
                        read += len(batch)
                        written += await _write(index, args, field, batch, name, meta, shown)
                        batch = []
                        shown.advance(stream.tell() if size else 0, read)
                if batch:
                    read += len(batch)
                    written += await _write(index, args, field, batch, name, meta, shown)
                shown.advance(size or 0, read)
                if written:
                    shown.phase("building index and committing")
            shown.phase("done")
    except InputError as error:
        raise InputError(f"{error}; nothing was written") from None
    except (PgstashError, ValueError, OSError) as error:
        raise InputError(f"{name}: {error}; nothing was written") from error
    seconds = time.perf_counter() - started
    if args.key_field is not None and written == 0:
        print(f"unchanged: the {read} rows of {name} are stored in {args.name} as they are ({seconds:.2f} s)")
        return 0
    kept = f", {read - written} unchanged" if read != written else ""
    print(
        f"ingested {written} rows into {args.name} in {seconds:.2f} s"
        f" ({written / max(seconds, 1e-9):,.0f} rows/s){kept}, in one transaction"
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
    args: argparse.Namespace,
    field: str,
    batch: list[tuple[int, dict[str, Any]]],
    name: str,
    meta: dict[str, str],
    shown: Any,
) -> int:
    if args.key_field is not None:
        assert index.postgres is not None  # the command's own pool
        batch = await _changed(index.postgres, args.name, args.key_field, meta, batch)
        if not batch:
            return 0
    shown.phase("writing")
    try:
        return await index.index(
            Record,
            values=[Record(row) for _, row in batch],
            attribute=lambda r: r.payload[field],
            meta=meta,
            table=args.name,
            key=args.key_field,
        )
    except ValueError as error:
        raise InputError(f"{name}:{batch[0][0]}-{batch[-1][0]}: {error}") from error
