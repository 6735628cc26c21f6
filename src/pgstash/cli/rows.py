"""`pgstash vector list | get NAME KEY... | delete NAME --where/--keys | drop NAME [--yes]`.

`get` takes the `--key-field` values the rows were ingested with (a key of digits also matches
the integer key) or row ids (UUIDs); `delete --keys` takes key values. `get` prints one JSON object a line.
`drop` asks on a terminal and refuses elsewhere unless `--yes`.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Any

import orjson

from pgstash.cli.console import human_size, table
from pgstash.cli.ingest import Record, converter
from pgstash.cli.search import ingest_meta, shown_payload
from pgstash.cli.status import EXACT_BELOW, _count, pgstash_tables
from pgstash.cli.where import requirements
from pgstash.connection import Postgres
from pgstash.sql.catalogue import query
from pgstash.sql.composer import compose
from pgstash.vectors import PostgresVectorIndex
from pgstash.vectors.write.keys import row_ids, uuid_texts

__all__ = ["configure", "delete", "drop", "get", "listing"]


def configure(actions: Any, common: argparse.ArgumentParser) -> None:
    actions.add_parser("list", parents=[common], help="the vector tables: rows, dimension, embedding, size")
    get = actions.add_parser("get", parents=[common], help="rows by key or id, one JSON object a line")
    get.add_argument("name", help="a vector table")
    get.add_argument("keys", nargs="+", metavar="KEY", help="a --key-field value, or a row id")
    delete = actions.add_parser("delete", parents=[common], help="delete rows by --where or --keys")
    delete.add_argument("name", help="a vector table")
    delete.add_argument("--where", action="append", default=[], metavar="EXPR", help="as in vector search")
    delete.add_argument("--keys", help="comma-separated --key-field values")
    drop = actions.add_parser("drop", parents=[common], help="drop a vector table with its rows")
    drop.add_argument("name", help="a vector table")
    drop.add_argument("--yes", action="store_true", help="do not ask")


def _keys(texts: list[str]) -> list[str | int]:
    """Each key as typed, plus the integer for a key of digits."""
    keys: list[str | int] = []
    for text in texts:
        keys.append(text)
        if text.lstrip("-").isdigit():
            keys.append(int(text))
    return keys


def _ids(table_name: str, texts: list[str]) -> list[str]:
    ids = uuid_texts(row_ids(table_name, _keys(texts), unique=False))
    for text in texts:
        try:
            ids.append(uuid.UUID(text).hex)
        except ValueError:
            pass
    return ids


async def listing(postgres: Postgres, args: argparse.Namespace) -> int:
    found = await postgres.run("status_tables", table_names=pgstash_tables(), exact_below=EXACT_BELOW)
    rows = []
    for r in found:
        if r["dimension"] is None:
            continue
        meta = await ingest_meta(postgres, r["name"])
        embedding = (meta or {}).get("embedding") or ("ready vectors" if meta else "")
        count = (
            f"~{r['row_estimate']:,}" if r["row_estimate"] is not None else await _count(postgres, r["name"])
        )
        rows.append(
            (r["name"], count, r["dimension"], r["vector_precision"], embedding, human_size(r["size_bytes"]))
        )
    if not rows:
        print("no vector tables: pgstash vector create-table NAME makes one")
        return 0
    print(table(rows, ("table", "rows", "dimension", "precision", "embedding", "size"), right=(1, 2, 5)))
    return 0


async def get(postgres: Postgres, args: argparse.Namespace) -> int:
    statement = compose(
        query("vectors_rows_by_id"), slots={"table": args.name}, ids=_ids(args.name, args.keys)
    )
    found = await postgres.run_statement(statement)
    meta = await ingest_meta(postgres, args.name)
    key_field = (meta or {}).get("key_field")
    seen: set[str] = set()
    for row in found:
        payload = shown_payload(dict(row["payload"]), meta)
        key = payload.get(key_field) if key_field else None
        seen.update({str(key), str(row["id"])})
        line = {"id": str(row["id"]), "key": key, "payload": payload, "created": row["created"].isoformat()}
        print(orjson.dumps(line).decode())
    missing = [k for k in args.keys if k not in seen and str(_uuid_or_none(k)) not in seen]
    if missing:
        print(f"pgstash vector get: not found in {args.name}: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


def _uuid_or_none(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


async def delete(postgres: Postgres, args: argparse.Namespace) -> int:
    if bool(args.where) == bool(args.keys):
        raise ValueError("vector delete takes --where EXPR or --keys K1,K2 (one of them)")
    index = PostgresVectorIndex(postgres, converter=converter())
    if args.keys:
        texts = [k.strip() for k in args.keys.split(",") if k.strip()]
        deleted = await index.delete(Record, keys=_keys(texts), table=args.name)
    else:
        deleted = await index.delete(Record, requirements=requirements(args.where), table=args.name)
    print(f"deleted {deleted} rows from {args.name}")
    return 0


async def drop(postgres: Postgres, args: argparse.Namespace, rows: int) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            raise ValueError(f"vector drop {args.name} deletes its {rows:,} rows: pass --yes to confirm")
        answer = input(f"drop the vector table {args.name} and its {rows:,} rows? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("kept: nothing was dropped")
            return 1
    await postgres.run_statement(compose(query("vectors_drop"), slots={"table": args.name}))
    print(f"dropped {args.name} ({rows:,} rows)")
    return 0
