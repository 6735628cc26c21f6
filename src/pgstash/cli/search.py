"""`pgstash vector search NAME QUERY | --vector FILE|-`: the best rows with their scores.

The query text is embedded with the embedding the table's rows were ingested with (recorded in
their meta by `vector ingest`); a table of ready vectors is searched with `--vector` (a JSON array)
or `--mode text`, never by hashing the text. Output: a table, or `--json` (one JSON object a line:
id, score, payload; the id is the `--key-field` value, else the row's id, both as `vector get`
takes them); `--fields a,b` keeps those payload fields. The stored vector of a `--vector-field`
ingest is never shown, and the `--where` fields are shown whole.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from typing import Any

import orjson

from pgstash.cli.console import table
from pgstash.cli.ingest import Record, converter
from pgstash.cli.where import paths_of, requirements
from pgstash.connection import Postgres
from pgstash.embedding_models import embedding_named
from pgstash.embeddings import HashingEmbedding
from pgstash.errors import ConfigurationError
from pgstash.sql import names
from pgstash.sql.composer import compose
from pgstash.vectors import PostgresVectorIndex

__all__ = ["MISSING", "configure", "ingest_meta", "lookup", "search", "shown_payload"]

MISSING = object()


def configure(search: argparse.ArgumentParser) -> None:
    search.add_argument("name", help="a vector table")
    search.add_argument("query", nargs="?", help="the text to search for (web-search syntax in text mode)")
    search.add_argument(
        "--vector", metavar="FILE", help="search by this vector instead: a JSON array of numbers, - for stdin"
    )
    search.add_argument("--mode", choices=("vector", "text", "hybrid"), default="vector")
    search.add_argument("--limit", type=int, default=10, help="how many rows (default 10)")
    search.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="EXPR",
        help="only rows whose payload matches: PATH=VALUE, PATH!=VALUE, PATH>N, >=, <, <=, "
        "'PATH in (A,B)'; VALUE is JSON, else text; repeatable (all must hold)",
    )
    search.add_argument("--fields", help="show only these payload fields: a,b,c (dotted paths)")
    search.add_argument("--json", action="store_true", help="one JSON object a line: id, score, payload")


async def ingest_meta(postgres: Postgres, name: str) -> dict[str, Any] | None:
    """The meta `vector ingest` recorded on the table's newest row; None for an empty table."""
    row = await postgres.run_statement(compose(names.vectors_ingest_meta, slots={"table": name}))
    return None if row is None else dict(row["meta"] or {})


def lookup(payload: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(payload, dict) or part not in payload:
            return MISSING
        payload = payload[part]
    return payload


def shown_payload(payload: dict[str, Any], meta: dict[str, Any] | None) -> dict[str, Any]:
    """The payload without the stored vector of a --vector-field ingest."""
    field = (meta or {}).get("vector_field")
    return {k: v for k, v in payload.items() if k != field}


def _read_vector(source: str, dimension: int) -> list[float]:
    text = sys.stdin.read() if source == "-" else open(source, encoding="utf-8").read()
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise ValueError(f"--vector {source}: not JSON ({error}): give a JSON array of numbers") from None
    if not isinstance(value, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in value
    ):
        raise ValueError(f"--vector {source}: give a JSON array of finite numbers")
    if len(value) != dimension:
        raise ValueError(f"--vector {source} has {len(value)} numbers: the table's dimension is {dimension}")
    return [float(x) for x in value]


def _query_embedding(name: str, meta: dict[str, Any] | None, dimension: int) -> Any:
    if meta is None:  # an empty table: any embedding of its dimension finds nothing
        return HashingEmbedding(dimension)
    recorded = meta.get("embedding")
    if recorded is None:
        raise ConfigurationError(
            f"table {name!r} records no embedding (ready vectors from --vector-field, or rows written "
            "from Python): search it with --vector FILE (a JSON array) or --mode text"
        )
    return embedding_named(str(recorded))


async def search(postgres: Postgres, args: argparse.Namespace, dimension: int) -> int:
    where = requirements(args.where)
    if (args.query is None) == (args.vector is None):
        raise ValueError("vector search takes a QUERY text or --vector FILE (not both)")
    meta = await ingest_meta(postgres, args.name)
    embedding = None
    target: Any = args.query
    if args.vector is not None:
        if args.mode != "vector":
            raise ValueError("--vector searches in --mode vector only")
        target = _read_vector(args.vector, dimension)
    elif args.mode != "text":
        embedding = _query_embedding(args.name, meta, dimension)
    index = PostgresVectorIndex(postgres, embedding=embedding, converter=converter())
    found = await index.search_scored(
        Record, query=target, mode=args.mode, limit=args.limit, requirements=where, table=args.name
    )
    fields = [f.strip() for f in args.fields.split(",") if f.strip()] if args.fields else []
    key_field = (meta or {}).get("key_field")
    results = []
    for record, score in found:
        payload = shown_payload(record.payload, meta)
        if fields:
            payload = {f: v for f in fields if (v := lookup(payload, f)) is not MISSING}
        key = lookup(record.payload, key_field) if key_field else MISSING
        results.append((None if key is MISSING else key, score, payload, record.payload))
    if args.json:
        ids = await _row_ids(postgres, args.name, [stored for key, _, _, stored in results if key is None])
        for key, score, payload, _ in results:
            key = ids.pop(0) if key is None else key
            print(orjson.dumps({"id": key, "score": round(score, 6), "payload": payload}).decode())
        return 0
    print(_as_table(results, paths_of(args.where), fields, key_field is not None))
    return 0


async def _row_ids(postgres: Postgres, name: str, payloads: list[dict[str, Any]]) -> list[str | None]:
    """The row id (a UUID text, as `vector get` takes it) of each found payload that has no key,
    in order; rows storing the same payload get distinct ids, oldest first. None only for a row
    no longer stored as it was found (deleted or changed since)."""
    if not payloads:
        return []
    texts = [orjson.dumps(payload).decode() for payload in payloads]
    statement = compose(names.vectors_ids_by_payload, slots={"table": name}, payloads=texts, most=len(texts))
    rows = {row["position"]: list(row["ids"]) for row in await postgres.run_statement(statement)}
    taken: dict[str, int] = {}
    ids: list[str | None] = []
    for position, text in enumerate(texts, 1):
        matching = rows.get(position, [])
        nth = taken.get(text, 0)
        taken[text] = nth + 1
        ids.append(str(matching[nth]) if nth < len(matching) else None)
    return ids


def _text(value: Any) -> str:
    if value is MISSING:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _as_table(results: list[Any], filtered: list[str], fields: list[str], keyed: bool) -> str:
    columns = list(dict.fromkeys([*filtered, *fields]))
    header = ["#", "score", *(["id"] if keyed else []), *columns]
    rows: list[list[Any]] = []
    for rank, (key, score, payload, stored) in enumerate(results, 1):
        row: list[Any] = [rank, f"{score:.4f}", *([_text(key)] if keyed else [])]
        row += [_text(lookup(stored, c)) for c in columns]
        if not fields:
            rest = {k: v for k, v in payload.items() if k not in columns}
            row.append(_text(rest))
        rows.append(row)
    if not fields:
        header.append("payload")
        width = shutil.get_terminal_size((160, 24)).columns
        used = sum(max(len(str(r[i])) for r in rows) + 2 for i in range(len(header) - 1)) if rows else 0
        room = max(40, width - used)
        for row in rows:
            row[-1] = row[-1] if len(row[-1]) <= room else row[-1][: room - 1] + "…"
    if not rows:
        return "no rows found"
    return table(rows, header, right=(0, 1))
