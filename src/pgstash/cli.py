"""The `pgstash` command: migrate, status, queries, demo.

Every command takes `--dsn`, else `PGSTASH_DSN`, else the embedded server in `./.pgstash`.
Errors print one line without a traceback unless `--debug` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any

from pgstash import embedded
from pgstash.connection import DSN_VARIABLE, Postgres, PostgresConnectionPool
from pgstash.console import table
from pgstash.errors import PgstashError
from pgstash.migrations import applied, migrate, migrations
from pgstash.queries import catalogue, load_catalogue
from pgstash.resources import resource_dir

__all__ = ["main"]

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


@contextlib.asynccontextmanager
async def connect(args: argparse.Namespace) -> AsyncIterator[Postgres]:
    """The pool for a command: --dsn, else PGSTASH_DSN, else the embedded server."""
    dsn = args.dsn or os.environ.get(DSN_VARIABLE)
    async with contextlib.AsyncExitStack() as stack:
        if not dsn:
            server = await stack.enter_async_context(embedded.start(args.data_dir))
            dsn = server.dsn
        yield await stack.enter_async_context(PostgresConnectionPool.of(dsn=dsn))


async def cmd_migrate(args: argparse.Namespace) -> int:
    async with connect(args) as postgres:
        done = await migrate(postgres)
    print(
        "\n".join(f"applied {name}" for name in done) if done else "nothing to apply: the schema is current"
    )
    return 0


async def cmd_status(args: argparse.Namespace) -> int:
    async with connect(args) as postgres:
        facts = await postgres.run("server_facts")
        print(f"PostgreSQL {facts['server_version']}, pgvector {facts['vector_version'] or 'not installed'}")
        done = await applied(postgres)
        print("\nmigrations")
        print(
            table(
                [(m.name, "applied" if m.name in done else "pending") for m in migrations()],
                ("name", "state"),
            )
        )
        rows = await postgres.run("status_tables")
        print("\ntables")
        print(table([(r["name"], r["rows"], r["size"]) for r in rows], ("table", "rows", "size")))
        vectors = await postgres.run("status_vector_tables")
        if vectors:
            print("\nvector tables")
            print(
                table(
                    [(r["name"], r["dimension"], r["indexes"] or "none") for r in vectors],
                    ("table", "dimension", "indexes"),
                )
            )
    return 0


def file_header(source: str) -> list[str]:
    """The comment lines that open a queries/ file, before its first `-- name:` line."""
    header: list[str] = []
    for line in source.splitlines():
        if not line.startswith("--") or line.lstrip("- ").startswith("name:"):
            break
        header.append(line[2:].strip())
    return header


async def cmd_queries(args: argparse.Namespace) -> int:
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


async def cmd_demo(args: argparse.Namespace) -> int:
    from pgstash import demo

    async with connect(args) as postgres:
        return await demo.run(postgres, passages_limit=args.limit)


def configure_demo(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--limit", type=int, default=None, help="index at most this many docstrings")


async def cmd_vector(args: argparse.Namespace) -> int:
    from pgstash import vector_cli

    async with connect(args) as postgres:
        return await vector_cli.run(postgres, args)


def configure_vector(sub: argparse.ArgumentParser) -> None:
    from pgstash import vector_cli

    vector_cli.configure(sub)


COMMANDS: dict[str, tuple[str, Command, Callable[[argparse.ArgumentParser], None] | None]] = {
    "migrate": ("apply the schema/ migrations not yet applied", cmd_migrate, None),
    "status": ("migrations, tables with row counts and sizes, vector tables", cmd_status, None),
    "queries": (
        "every named query with its doc line, by file: the DBA's catalogue",
        cmd_queries,
        configure_queries,
    ),
    "demo": ("configurations, instructions, memory and vector search end to end", cmd_demo, configure_demo),
    "vector": ("vector tables: create-table NAME, ingest NAME FILE.jsonl", cmd_vector, configure_vector),
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="pgstash", description=__doc__.split("\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dsn", help=f"PostgreSQL DSN (default: ${DSN_VARIABLE}, else the embedded server)")
    common.add_argument("--data-dir", default=embedded.DEFAULT_DATA_DIR, help="embedded server folder")
    common.add_argument("--debug", action="store_true", help="show tracebacks and pgstash's query log")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (summary, _, configure) in COMMANDS.items():
        sub = commands.add_parser(name, parents=[common], help=summary, description=summary)
        if configure is not None:
            configure(sub)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(name)s: %(message)s"
    )
    _, command, _ = COMMANDS[args.command]
    try:
        return asyncio.run(command(args))
    except KeyboardInterrupt:
        return 130
    except (PgstashError, ValueError, OSError) as error:
        if args.debug:
            raise
        print(f"pgstash {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
