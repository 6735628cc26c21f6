"""`pgstash vector create-table NAME --dimension D` and `pgstash vector ingest NAME FILE.jsonl`.

Each JSON line is one row: its object is the stored payload. Its vector is the field named by
`--vector-field` when given (a list of numbers), else the text of `--text-field` embedded with the
lexical `HashingEmbedding` of the table's dimension.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import attrs
import cattrs
import orjson

from pgstash.connection import Postgres
from pgstash.console import progress
from pgstash.embeddings import HashingEmbedding
from pgstash.vectors import PostgresVectorIndex

BATCH = 1000


@attrs.frozen
class Record:
    """A JSON object stored as the payload, as it is."""

    payload: dict[str, Any]


def _converter() -> cattrs.Converter:
    converter = cattrs.Converter()
    converter.register_unstructure_hook(Record, lambda record: record.payload)
    converter.register_structure_hook(Record, lambda value, _: Record(dict(value)))
    return converter


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create-table", help="create a vector table and its indexes")
    create.add_argument("name", help="table name: a-z, 0-9 and _, at most 63 characters")
    create.add_argument("--dimension", type=int, required=True)
    create.add_argument("--index", choices=("hnsw", "ivfflat", "none"), default="hnsw")
    ingest = actions.add_parser("ingest", help="load a JSON-lines file into a vector table")
    ingest.add_argument("name")
    ingest.add_argument("file", type=Path)
    source = ingest.add_mutually_exclusive_group(required=True)
    source.add_argument("--text-field", help="embed this field's text with HashingEmbedding")
    source.add_argument("--vector-field", help="use this field's ready vector")


def _read(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not JSON: {error}") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: each line must be a JSON object")
            rows.append(row)
    return rows


async def run(postgres: Postgres, args: argparse.Namespace) -> int:
    if args.action == "create-table":
        index = PostgresVectorIndex(postgres, converter=_converter())
        await index.create_table(
            Record,
            dimension=args.dimension,
            index=None if args.index == "none" else args.index,
            table=args.name,
        )
        print(f"table {args.name}: vector({args.dimension}), index {args.index}")
        return 0
    rows = _read(args.file)
    field = args.text_field or args.vector_field
    missing = [n for n, row in enumerate(rows, 1) if field not in row]
    if missing:
        raise ValueError(f"{len(missing)} row(s) have no field {field!r}, the first at line {missing[0]}")
    dimension = await postgres.run("vector_table_dimension", table_name=args.name)
    if dimension is None:
        raise ValueError(
            f"no vector table {args.name!r}: run `pgstash vector create-table {args.name}` first"
        )
    index = PostgresVectorIndex(postgres, embedding=HashingEmbedding(dimension), converter=_converter())
    started = time.perf_counter()
    written = 0
    for offset in range(0, len(rows), BATCH):
        batch = [Record(row) for row in rows[offset : offset + BATCH]]
        written += await index.index(
            Record, values=batch, attribute=lambda r: r.payload[field], table=args.name
        )
        progress("", written, len(rows), started)
    seconds = time.perf_counter() - started
    print(
        f"ingested {written} rows into {args.name} in {seconds:.2f} s"
        f" ({written / max(seconds, 1e-9):,.0f} rows/s)"
    )
    return 0
