"""`pgstash queries`: the catalogue of named queries by file, each statement as sent (`--sql`),
and the whole statement one call sends, composed (`--show NAME --with POINT=VALUE`)."""

from __future__ import annotations

import argparse
import sys

from pgstash.sql.catalogue import catalogue, load_catalogue
from pgstash.sql.resources import resource_dir
from pgstash.sql.show import show

__all__ = ["cmd_queries", "configure_queries", "file_header"]


def file_header(source: str) -> list[str]:
    """The comment lines that open a queries/ file, before its first `-- name:` line."""
    header: list[str] = []
    for line in source.splitlines():
        if not line.startswith("--") or line.lstrip("- ").startswith("name:"):
            break
        header.append(line[2:].strip())
    return header


async def cmd_queries(args: argparse.Namespace) -> int:
    if args.show:
        given: dict[str, str] = {}
        for item in args.with_ or ():
            key, equals, value = item.partition("=")
            if not equals or not key:
                raise SystemExit(f"pgstash queries: --with takes POINT=VALUE, got {item!r}")
            given[key] = value
        try:
            print(show(args.show, given).text())
        except (ValueError, TypeError) as error:
            print(f"pgstash queries --show: {error}", file=sys.stderr)
            return 2
        return 0
    root = resource_dir("queries").parent
    templates = resource_dir("schema") / "templates"
    every = [*catalogue().values(), *(load_catalogue(templates).values() if templates.is_dir() else ())]
    current = None
    for named in sorted(every, key=lambda q: str(q.source)):  # stable: file order
        if named.source != current:
            current = named.source
            print(f"\n{named.source.relative_to(root).as_posix()}")
            for line in file_header(named.source.read_text(encoding="utf-8")):
                print(f"  | {line}".rstrip())
        params = ", ".join(named.parameters)
        if named.kind == "fragment":  # spliced into statements at {name} points, never run alone
            points = "".join(f" {{{point}}}" for point in named.splice_points)
            print(f"  fragment {named.name}({params}){points}\n      {named.doc}")
        else:
            print(f"  {named.name}({params})\n      {named.doc}")
        if args.sql:
            print("\n".join(f"        {line}".rstrip() for line in named.sql.strip().splitlines()))
    print("\nWhich method runs which query, and the indexes that serve them: docs/queries.md")
    return 0


def configure_queries(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--sql", action="store_true", help="also print each statement as sent ($1, $2, ...), ready to EXPLAIN"
    )
    sub.add_argument(
        "--show",
        metavar="NAME",
        help="print the whole statement one query or template sends, composed, with what each $n binds",
    )
    sub.add_argument(
        "--with",
        dest="with_",
        action="append",
        metavar="POINT=VALUE",
        help="with --show: fill a {point}: an identifier (table=chunk), a fragment "
        "(requirements=filter_equal; its own points as requirements.lhs=...), digits or 'text'",
    )
