"""`pgstash vector get NAME --keys K1,K2 | --ids ID1,ID2 | KEY...` and `pgstash vector list NAME
[--where EXPR] [--limit N] [--after CURSOR]`: a table's rows back, through
`PostgresVectorIndex.get` and the rows `.page` reads, with their ids (vectors/reads.py,
`page_records`).

Both print one JSON object a line, `{"id": ROW ID, "key": KEY, "payload": {...}}` (`key` is the
`--key-field` value the rows were ingested with, null without one; the stored vector of a
`--vector-field` ingest is left out, as in search). `get` is one statement and prints one line per
key or id asked, in the order asked: `null` where there is no row (the library's `None` in that
place), and then names the missing ones on stderr and exits 1. A `--keys` key of digits is the
string key if such a row exists, else the integer key (as `delete --keys` matches both); KEY...
(the older form) is each a key, else a row id.

`list NAME` prints one page, oldest first (keyset by `(created, id)`: a row written meanwhile never
shifts a page), and, when the page is full, the command that prints the next one on stderr:
`next page: pgstash vector list NAME ... --after CURSOR`. A page after the last row is empty.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import uuid
from typing import Any

import orjson

from pgstash import embedded
from pgstash.cli.ingest import Record, converter
from pgstash.cli.search import MISSING, ingest_meta, lookup, shown_payload
from pgstash.cli.where import requirements
from pgstash.connection import Postgres
from pgstash.connection.pool import redact
from pgstash.vectors import PostgresVectorIndex
from pgstash.vectors.reads import MAX_PAGE, page_records, parse_cursor
from pgstash.vectors.table import VectorTable
from pgstash.vectors.write.keys import row_ids, uuid_texts

__all__ = ["DEFAULT_LIMIT", "cursor", "get", "ids", "key_forms", "limit", "page"]

DEFAULT_LIMIT = 100
_INTEGER = re.compile(r"-?[0-9]+")


def key_forms(text: str) -> list[str | int]:
    """The keys a key typed on the command line may be: the text, and for a whole number (an
    optional minus and ASCII digits) the integer too (a row ingested with an integer key)."""
    return [text, int(text)] if _INTEGER.fullmatch(text) else [text]


def limit(text: str) -> int:
    """An argparse type: a page size from 1 to `MAX_PAGE`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= MAX_PAGE:
        raise argparse.ArgumentTypeError(f"takes 1 to {MAX_PAGE:,} rows a page, got {value}")
    return value


def cursor(text: str) -> str:
    """An argparse type: the cursor a page printed (`CREATED/ID`), checked before connecting."""
    try:
        parse_cursor(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"takes the cursor the previous page printed (its next page: ... --after CURSOR), got {text!r}"
        ) from None
    return text


def ids(text: str) -> list[str]:
    """An argparse type: comma-separated row ids (UUIDs), as `str(UUID)`."""
    found = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            found.append(str(uuid.UUID(part)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"takes row ids (UUIDs), got {part!r}") from None
    return found


def _key_ids(name: str, keys: list[str | int]) -> list[str]:
    return [str(uuid.UUID(text)) for text in uuid_texts(row_ids(name, keys, unique=False))]


def _candidates(args: argparse.Namespace) -> tuple[list[str], list[list[str]]]:
    """What was asked (as typed, for messages) and, for each, the row ids that may hold it, in
    the order they are preferred: a key's id as `index(..., key=...)` derives it (for a key of
    digits the string key's, then the integer key's), then, for the older KEY... form, the text
    as a row id."""
    keys = [k.strip() for group in args.keys_option for k in group.split(",") if k.strip()]
    asked_ids = [text for group in args.ids for text in group]
    given = [form for form in (args.keys, keys, asked_ids) if form]
    if len(given) != 1:
        raise ValueError("vector get takes --keys K1,K2, --ids ID1,ID2 or KEY... (one of them)")
    if asked_ids:
        return asked_ids, [[text] for text in asked_ids]
    asked = args.keys or keys
    candidates = []
    for text in asked:
        choices = _key_ids(args.name, key_forms(text))
        if args.keys:  # KEY...: a key, else a row id
            try:
                choices.append(str(uuid.UUID(text)))
            except ValueError:
                pass
        candidates.append(choices)
    return asked, candidates


def _line(row_id: str | None, payload: dict[str, Any], meta: dict[str, Any] | None) -> str:
    key_field = (meta or {}).get("key_field")
    key = lookup(payload, key_field) if key_field else MISSING
    shown = shown_payload(payload, meta)
    return orjson.dumps({"id": row_id, "key": None if key is MISSING else key, "payload": shown}).decode()


async def get(postgres: Postgres, args: argparse.Namespace) -> int:
    asked, candidates = _candidates(args)
    flat = [row_id for choices in candidates for row_id in choices]
    index = PostgresVectorIndex(postgres, converter=converter())
    found = dict(zip(flat, await index.get(Record, ids=flat, table=args.name), strict=True))
    meta = await ingest_meta(postgres, args.name)
    missing = []
    for text, choices in zip(asked, candidates, strict=True):
        hit = next((row_id for row_id in choices if found[row_id] is not None), None)
        if hit is None:
            missing.append(text)
            print("null")
            continue
        record = found[hit]
        assert record is not None
        print(_line(hit, record.payload, meta))
    if missing:
        print(f"pgstash vector get: not found in {args.name}: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


async def page(postgres: Postgres, args: argparse.Namespace) -> int:
    size = DEFAULT_LIMIT if args.limit is None else args.limit
    table = VectorTable.of({}, Record, args.name, postgres, converter(), None, None)  # as the index's
    rows, after = await page_records(table, requirements(args.where), args.after, size)
    meta = await ingest_meta(postgres, args.name)
    for row in rows:
        print(_line(str(row["id"]), row["payload"], meta))
    if after is not None:
        print(f"next page: {next_command(args, after)}", file=sys.stderr)
    return 0


def next_command(args: argparse.Namespace, after: str) -> str:
    """The command that prints the page after this one: this one's table, filters and page size
    (and its --dsn, its password masked, or its --data-dir when not the one found by default)."""
    words = ["pgstash", "vector", "list", args.name]
    for expression in args.where:
        words += ["--where", expression]
    if args.limit is not None:
        words += ["--limit", str(args.limit)]
    words += ["--after", after]
    if args.dsn:
        words += ["--dsn", redact(args.dsn)]
    elif args.data_dir and args.data_dir != str(embedded.find_data_dir()):
        words += ["--data-dir", args.data_dir]
    return shlex.join(words)
