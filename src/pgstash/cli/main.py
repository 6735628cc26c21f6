"""The `pgstash` command: migrate, status, queries, prune, demo, vector, instructions, server.

Every command takes `--dsn`, else `PGSTASH_DSN`, else the embedded server in `./.pgstash`; the
options `--dsn`, `--data-dir` and `--debug` go before or after the command. Errors print one line
without a traceback unless `--debug` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from pgstash import __version__, embedded
from pgstash.cli import passwords
from pgstash.cli.prune import cmd_prune, configure_prune, positive, prune_arguments
from pgstash.cli.session import cli_words, connect, kept, say
from pgstash.connection import DSN_VARIABLE
from pgstash.errors import PgstashError
from pgstash.migrations import migrate
from pgstash.sql.catalogue import catalogue, load_catalogue
from pgstash.sql.resources import resource_dir

__all__ = ["main"]

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


async def cmd_migrate(args: argparse.Namespace) -> int:
    async with connect(args) as postgres:
        done = await migrate(postgres)
    print(
        "\n".join(f"applied {name}" for name in done) if done else "nothing to apply: the schema is current"
    )
    return 0


async def cmd_status(args: argparse.Namespace) -> int:
    from pgstash.cli import status

    replicas = args.replica or os.environ.get(status.REPLICAS_VARIABLE, "").split()
    async with connect(args, writes=False, replicas=replicas) as postgres:
        print(await status.report(postgres, args.dsn or os.environ.get(DSN_VARIABLE), args.data_dir))
    return 0


def configure_status(sub: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--replica",
        action="append",
        metavar="DSN",
        help="a hot standby of the server to report on (repeat for several; default: the DSNs in "
        "PGSTASH_REPLICAS, separated by spaces)",
    )


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
    from pgstash.cli import demo

    async with connect(args, bulk=True) as postgres:
        return await demo.run(postgres, passages_limit=args.limit)


def configure_demo(sub: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    sub.add_argument("--limit", type=positive, default=None, help="index at most this many docstrings (>= 1)")


async def cmd_vector(args: argparse.Namespace) -> int:
    from pgstash.cli import vector as vector_cli

    writes = args.action in vector_cli.CREATING
    async with connect(args, writes=writes, bulk=args.action in vector_cli.BULK) as postgres:
        return await vector_cli.run(postgres, args)


def configure_vector(sub: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    from pgstash.cli import vector as vector_cli

    vector_cli.configure(sub, common)


async def cmd_instructions(args: argparse.Namespace) -> int:
    from pgstash.cli import instructions as instructions_cli

    async with connect(args, writes=args.action in ("move", "rollback")) as postgres:
        return await instructions_cli.run(postgres, args)


def configure_instructions(sub: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    from pgstash.cli import instructions as instructions_cli

    instructions_cli.configure(sub, common)


async def cmd_server(args: argparse.Namespace) -> int:
    from pgstash.cli import server as server_cli

    return await asyncio.to_thread(server_cli.run, args)


def configure_server(sub: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    from pgstash.cli import server as server_cli

    server_cli.configure(sub, common)


def configure_queries_command(sub: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    configure_queries(sub)


Configure = Callable[[argparse.ArgumentParser, argparse.ArgumentParser], None]
COMMANDS: dict[str, tuple[str, Command, Configure | None]] = {
    "migrate": ("apply the schema/ migrations not yet applied", cmd_migrate, None),
    "status": (
        "the server, migrations, pgstash's tables and vector tables with row counts and sizes",
        cmd_status,
        configure_status,
    ),
    "queries": (
        "every named query with its doc line, by file: the DBA's catalogue",
        cmd_queries,
        configure_queries_command,
    ),
    "prune": (
        "retention: prune configurations|instructions --keep N | --older-than AGE; prune memories --idle AGE",
        cmd_prune,
        configure_prune,
    ),
    "demo": ("configurations, instructions, memory and vector search end to end", cmd_demo, configure_demo),
    "vector": (
        "vector tables: create-table, ingest, search, list, get, delete, drop, build-index",
        cmd_vector,
        configure_vector,
    ),
    "instructions": (
        "instructions labels: history|labels|diff|move|rollback|label-history NAME ...",
        cmd_instructions,
        configure_instructions,
    ),
    "server": (
        "the embedded PostgreSQL in ./.pgstash: start, stop, status, dsn",
        cmd_server,
        configure_server,
    ),
}


def common_options(*, at_top: bool) -> argparse.ArgumentParser:
    """--dsn, --data-dir and --debug. Below the top, absent options keep the top's values."""

    def default(value: Any) -> Any:
        return value if at_top else argparse.SUPPRESS

    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection options (before or after the command)")
    group.add_argument(
        "--dsn",
        default=default(None),
        help=f"PostgreSQL DSN (default: ${DSN_VARIABLE}, else the embedded server). A password "
        f"here is visible to other users (ps): put the DSN in {DSN_VARIABLE}, or the password in a "
        "passfile (~/.pgpass or $PGPASSFILE)",
    )
    group.add_argument(
        "--data-dir",
        default=default(None),
        help=f"the embedded server's folder (default: ${embedded.DATA_DIR_VARIABLE}, else the nearest "
        f"{embedded.DEFAULT_DATA_DIR} here or above, as git finds .git, else ./{embedded.DEFAULT_DATA_DIR})",
    )
    group.add_argument(
        "--slow-query-ms",
        type=float,
        default=default(None),
        metavar="MS",
        help="warn about statements slower than MS milliseconds (default 1000; off for ingest, "
        "build-index and demo unless given)",
    )
    group.add_argument(
        "--debug", action="store_true", default=default(False), help="show tracebacks and pgstash's query log"
    )
    return common


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="pgstash", description=(__doc__ or "").split("\n")[0], parents=[common_options(at_top=True)]
    )
    root.add_argument("--version", action="version", version=f"pgstash {__version__}")
    common = common_options(at_top=False)
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (summary, _, configure) in COMMANDS.items():
        sub = commands.add_parser(name, parents=[common], help=summary, description=summary)
        if configure is not None:
            configure(sub, common)
    return root


class Terminated(KeyboardInterrupt):
    """SIGTERM (a cancelled CI job), raised like Ctrl-C so every `with` block closes: pools, and
    the embedded server this process holds."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def _interrupt(signum: int, frame: object) -> None:
    """Ctrl-C stops at once, even inside a blocking read (asyncio's own handler would only cancel
    the task, which a read of standard input never notices)."""
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    root = parser()
    args = root.parse_args(argv)
    if args.command == "prune":
        prune_arguments(root, args)
    if args.dsn and (secrets := passwords.passwords_in(args.dsn)):
        passwords.hide_in_command_line(secrets)
        say(passwords.WARNING)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(name)s: %(message)s"
    )
    if args.data_dir is None:
        args.data_dir = str(embedded.find_data_dir())
    _, command, _ = COMMANDS[args.command]
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        return asyncio.run(command(args))
    except Terminated:
        print(f"\npgstash {args.command}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        # one line below any progress bar, saying what was kept
        below = "\n" if sys.stderr.isatty() else ""  # below the ^C echo and any bar, on a terminal
        print(f"{below}pgstash {args.command}: interrupted; {kept(args)}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`pgstash queries | head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except FileNotFoundError as error:
        if args.debug:
            raise
        print(f"pgstash {args.command}: no such file: {error.filename} (check the path)", file=sys.stderr)
        return 1
    except (PgstashError, ValueError, OSError) as error:
        if args.debug:
            raise
        print(f"pgstash {args.command}: {cli_words(str(error))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
