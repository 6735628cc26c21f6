"""`pgstash vector create-table NAME --dimension D [--precision float16] [--text-field F]`,
`pgstash vector ingest NAME FILE.jsonl [--key-field K]` and `pgstash vector search NAME QUERY [--mode M]`.

Each JSON line is one row: its object is the stored payload. Its vector is the field named by
`--vector-field` (a list of numbers), or the text of `--text-field` (a string) embedded with the
lexical `HashingEmbedding` of the table's dimension. One file is one transaction: every row is
written, or none; an error names FILE:LINE (physical lines, blank ones counted). `-` is stdin.
With `--key-field`, rows whose key is already stored replace them. `search` embeds its query with
the same `HashingEmbedding` (vector and hybrid modes).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

import attrs
import cattrs
import orjson

from pgstash.connection import Postgres
from pgstash.console import progress, table
from pgstash.embeddings import HashingEmbedding
from pgstash.errors import PgstashError
from pgstash.filters import AttributeRequirement
from pgstash.templates import validate_identifier
from pgstash.vectors import PostgresVectorIndex

BATCH = 1000

INDEXES_HELP = (
    "the index on embedding that serves nearest-neighbour search: hnsw (default; best recall and "
    "speed, slower to build), ivfflat (faster to build, build it after loading), or none (exact "
    "search, any dimension). The GIN index on payload serves equality and contains filters; the "
    "B-tree on created serves listing newest first; both are made with any --index."
)


@attrs.frozen
class Record:
    """A JSON object stored as the payload, as it is."""

    payload: dict[str, Any]


def _converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_unstructure_hook(Record, lambda record: record.payload)
    converter.register_structure_hook(Record, lambda value, _: Record(dict(value)))
    return converter


def configure(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create-table",
        parents=[common],
        help="create a vector table and its indexes",
        description=INDEXES_HELP,
    )
    create.add_argument("name", help="table name: a-z, 0-9 and _, at most 63 characters, not pg_...")
    create.add_argument("--dimension", type=int, required=True, help="the vectors' length")
    create.add_argument("--index", choices=("hnsw", "ivfflat", "none"), default="hnsw", help=INDEXES_HELP)
    create.add_argument(
        "--precision",
        choices=("float32", "float16"),
        default="float32",
        help="float32 stores vector (default); float16 stores halfvec: half the table and index "
        "size, HNSW and IVFFlat up to 4,000 dimensions, components within +-65,504",
    )
    create.add_argument(
        "--text-field",
        help="also index this payload field (a dotted path) for full-text and hybrid search: a "
        "tsvector column the server generates from it, and a GIN index (rewrites a table holding rows)",
    )
    create.add_argument(
        "--language",
        default="english",
        help="the text search configuration of --text-field (default english)",
    )
    ingest = actions.add_parser(
        "ingest",
        parents=[common],
        help="load a JSON-lines file into a vector table, all rows or none",
        description="Loads one JSON object per line, in one transaction: every row, or none.",
    )
    ingest.add_argument("name", help="an existing vector table (pgstash vector create-table)")
    ingest.add_argument("file", help="a JSON-lines file, or - for standard input")
    source = ingest.add_mutually_exclusive_group(required=True)
    source.add_argument("--text-field", help="embed this field's text (a string) with HashingEmbedding")
    source.add_argument("--vector-field", help="use this field's ready vector (a list of numbers)")
    ingest.add_argument(
        "--key-field",
        help="the field (a string or integer) that identifies a row: a row whose key is stored "
        "already replaces it, so loading a file again changes nothing",
    )
    search = actions.add_parser(
        "search",
        parents=[common],
        help="search a vector table: vector, full-text or hybrid",
        description="Prints the best rows with their scores. The vector and hybrid modes embed QUERY "
        "with HashingEmbedding of the table's dimension (lexical: shared words, not meaning), as "
        "ingest --text-field does; the text and hybrid modes need a table made with "
        "create-table --text-field.",
    )
    search.add_argument("name", help="a vector table")
    search.add_argument("query", help="the text to search for (web-search syntax in text mode)")
    search.add_argument("--mode", choices=("vector", "text", "hybrid"), default="vector")
    search.add_argument("--limit", type=int, default=10, help="how many rows (default 10)")
    search.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="only rows whose payload field PATH equals VALUE (JSON, else text); repeatable",
    )


class InputError(ValueError):
    """A line of the input that cannot be stored; the message names FILE:LINE."""


def _lines(stream: IO[bytes], name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(physical line number, JSON object) for every non-blank line."""
    for number, line in enumerate(stream, 1):
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


async def _table_dimension(postgres: Postgres, name: str, action: str) -> int | None:
    """The vector table's dimension; None when no table has that name. A table of that name that
    is not a vector table is refused here, with one line."""
    validate_identifier(name)
    found = await postgres.run("status_relation", table_name=name)
    if found is None:
        return None
    if found["dimension"] is None:
        raise ValueError(
            f"table {name!r} exists and is not a vector table (no vector column `embedding`): "
            f"{action} needs another name"
        )
    dimension: int = found["dimension"]
    return dimension


async def create_table(postgres: Postgres, args: argparse.Namespace) -> int:
    await _table_dimension(postgres, args.name, "create-table")
    index = PostgresVectorIndex(postgres, converter=_converter())
    await index.create_table(
        Record,
        dimension=args.dimension,
        index=None if args.index == "none" else args.index,
        table=args.name,
        text=args.text_field,
        language=args.language,
        precision=args.precision,
    )
    text = f", text {args.text_field!r} ({args.language})" if args.text_field else ""
    kind = "halfvec" if args.precision == "float16" else "vector"
    print(f"table {args.name}: {kind}({args.dimension}) ({args.precision}), index {args.index}{text}")
    return 0


def _requirements(pairs: list[str]) -> AttributeRequirement | None:
    """`--where PATH=VALUE ...`: every field equal to its value (JSON, else the text as it is)."""
    found: AttributeRequirement | None = None
    for pair in pairs:
        path, separator, text = pair.partition("=")
        if not separator or not path:
            raise ValueError(f"--where takes PATH=VALUE, got {pair!r}")
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = text
        requirement = AttributeRequirement.equal(path, value)
        found = requirement if found is None else found & requirement
    return found


async def search(postgres: Postgres, args: argparse.Namespace) -> int:
    where = _requirements(args.where)
    dimension = await _table_dimension(postgres, args.name, "search")
    if dimension is None:
        raise ValueError(f"no vector table {args.name!r}: run pgstash vector create-table {args.name} first")
    embedding = HashingEmbedding(dimension)
    index = PostgresVectorIndex(postgres, embedding=embedding, converter=_converter())
    found = await index.search_scored(
        Record, query=args.query, mode=args.mode, limit=args.limit, requirements=where, table=args.name
    )
    rows = [
        (rank, f"{score:.4f}", orjson.dumps(record.payload).decode()[:100])
        for rank, (record, score) in enumerate(found, 1)
    ]
    print(table(rows, ("#", "score", "payload")))
    return 0


async def run(postgres: Postgres, args: argparse.Namespace) -> int:
    if args.action == "create-table":
        return await create_table(postgres, args)
    if args.action == "search":
        return await search(postgres, args)
    dimension = await _table_dimension(postgres, args.name, "ingest")
    if dimension is None:
        raise ValueError(
            f"no vector table {args.name!r}: run pgstash vector create-table {args.name} --dimension D first"
        )
    if args.file == "-":
        return await ingest(postgres, args, sys.stdin.buffer, "<stdin>", None, dimension)
    with open(args.file, "rb") as stream:
        return await ingest(postgres, args, stream, args.file, _size(stream), dimension)


def _size(stream: IO[bytes]) -> int | None:
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
    """Every line in one transaction, BATCH rows per COPY; any error rolls all of them back."""
    index = PostgresVectorIndex(postgres, embedding=HashingEmbedding(dimension), converter=_converter())
    field = args.text_field or args.vector_field
    started = time.perf_counter()
    written = 0
    try:
        with progress(f"ingest {args.name}", size, "rows") as advance:
            async with postgres.transaction():
                batch: list[tuple[int, dict[str, Any]]] = []
                keys: dict[object, int] = {}  # --key-field: the line of each key, one row per key
                for number, row in _lines(stream, name):
                    _check(name, number, row, args, dimension)
                    if args.key_field is not None:
                        first = keys.setdefault(row[args.key_field], number)
                        if first != number:
                            raise InputError(
                                f"{name}:{number}: key {row[args.key_field]!r} again (line {first})"
                            )
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
