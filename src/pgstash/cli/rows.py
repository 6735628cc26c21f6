"""`pgstash vector list [NAME ...] | get NAME ... | delete NAME --where/--keys | drop NAME [--yes]`.

`list` without NAME lists the vector tables; `list NAME` and `get` read rows (reads.py).
`delete --keys` takes key values (a key of digits also matches the integer key). `drop` asks on a
terminal and refuses elsewhere unless `--yes`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pgstash.cli import reads
from pgstash.cli.console import human_size, table
from pgstash.cli.ingest import Record, converter
from pgstash.cli.search import ingest_meta
from pgstash.cli.status import EXACT_BELOW, _count, pgstash_tables
from pgstash.cli.where import requirements
from pgstash.connection import Postgres
from pgstash.sql import names
from pgstash.sql.composer import compose
from pgstash.vectors import PostgresVectorIndex
from pgstash.vectors.reads import MAX_PAGE

__all__ = ["configure", "delete", "drop", "listing"]


def configure(actions: Any, common: argparse.ArgumentParser) -> None:
    listed = actions.add_parser(
        "list",
        parents=[common],
        help="the vector tables; with NAME, a table's rows a page at a time",
        description="Without NAME: the vector tables (rows, dimension, embedding, size). With NAME: "
        "one page of its rows, oldest first, one JSON object a line (id, key, payload), and, when "
        "there may be more, the command printing the next page on stderr (... --after CURSOR).",
    )
    listed.add_argument("name", nargs="?", help="a vector table: list its rows")
    listed.add_argument("--where", action="append", default=[], metavar="EXPR", help="as in vector search")
    listed.add_argument(
        "--limit", type=reads.limit, help=f"rows a page, 1 to {MAX_PAGE:,} (default {reads.DEFAULT_LIMIT})"
    )
    listed.add_argument(
        "--after", type=reads.cursor, metavar="CURSOR", help="the cursor the previous page printed"
    )
    get = actions.add_parser(
        "get",
        parents=[common],
        help="rows by key or id, one JSON object a line in the order asked",
        description="One line per key or id asked, in the order asked: the row (id, key, payload), "
        "or null where there is none; the missing ones are then named on stderr (exit status 1).",
    )
    get.add_argument("name", help="a vector table")
    get.add_argument("keys", nargs="*", metavar="KEY", help="a --key-field value, else a row id")
    get.add_argument(
        "--keys",
        dest="keys_option",
        action="append",
        default=[],
        metavar="K1,K2",
        help="comma-separated --key-field values (a key of digits: the string key, else the integer)",
    )
    get.add_argument(
        "--ids",
        type=reads.ids,
        action="append",
        default=[],
        metavar="ID1,ID2",
        help="comma-separated row ids",
    )
    delete = actions.add_parser("delete", parents=[common], help="delete rows by --where or --keys")
    delete.add_argument("name", help="a vector table")
    delete.add_argument("--where", action="append", default=[], metavar="EXPR", help="as in vector search")
    delete.add_argument("--keys", help="comma-separated --key-field values")
    drop = actions.add_parser("drop", parents=[common], help="drop a vector table with its rows")
    drop.add_argument("name", help="a vector table")
    drop.add_argument("--yes", action="store_true", help="do not ask")


def _keys(texts: list[str]) -> list[str | int]:
    """Each key as typed, plus the integer for a whole number (`reads.key_forms`, as `get`)."""
    return [key for text in texts for key in reads.key_forms(text)]


async def listing(postgres: Postgres, args: argparse.Namespace) -> int:
    found = await postgres.run(names.status_tables, table_names=pgstash_tables(), exact_below=EXACT_BELOW)
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
    await postgres.run_statement(compose(names.vectors_drop, slots={"table": args.name}))
    print(f"dropped {args.name} ({rows:,} rows)")
    return 0
