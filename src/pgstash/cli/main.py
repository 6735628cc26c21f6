"""The `pgstash` command: migrate, status, queries, prune, demo, vector, instructions, server.

Every command takes `--dsn`, else `PGSTASH_DSN`, else the embedded server in `./.pgstash`; the
options `--dsn`, `--data-dir` and `--debug` go before or after the command. Errors print one line
without a traceback unless `--debug` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any

from pgstash import __version__, embedded
from pgstash.cli import passwords
from pgstash.connection import DSN_VARIABLE, Postgres, PostgresConnectionPool
from pgstash.errors import ConfigurationError, PgstashError
from pgstash.migrations import migrate
from pgstash.sql.catalogue import catalogue, load_catalogue
from pgstash.sql.resources import resource_dir

__all__ = ["main"]

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]

# Library wording that a command-line user cannot act on, and what to say instead.
_CLI_WORDS = (("pass index=None", "pass --index none"), ("index=None", "--index none"))


def _say(text: str) -> None:
    print(f"pgstash: {text}", file=sys.stderr, flush=True)


@contextlib.asynccontextmanager
async def connect(
    args: argparse.Namespace, *, writes: bool = True, replicas: Sequence[str] = ()
) -> AsyncIterator[Postgres]:
    """The pool for a command: --dsn, else PGSTASH_DSN, else the embedded server. A command that
    only reads (`writes=False`) never creates the embedded server's folder."""
    dsn = args.dsn or os.environ.get(DSN_VARIABLE)
    async with contextlib.AsyncExitStack() as stack:
        if not dsn:
            server = embedded.EmbeddedServer(args.data_dir)
            if not server.exists:
                if not writes:
                    raise ConfigurationError(
                        f"no database: no --dsn, no {DSN_VARIABLE}, and no embedded server in "
                        f"{server.data_dir} (`pgstash server start` creates one)"
                    )
                _say(
                    f"creating the embedded PostgreSQL in {server.data_dir} (no --dsn nor {DSN_VARIABLE}); "
                    "it stops when this command ends, `pgstash server start` keeps it running"
                )
            await stack.enter_async_context(server)
            dsn = server.dsn
        yield await stack.enter_async_context(PostgresConnectionPool.of(dsn=dsn, replicas=replicas))


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


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")


def duration(text: str) -> timedelta:
    """An argparse type: a positive age such as 90s, 30m, 12h, 7d, 2w or 1d12h."""
    parts = _DURATION.findall(text.strip())
    if not parts or "".join(number + unit for number, unit in parts) != text.strip():
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 30m, 12h, 7d, 2w, 1d12h)")
    try:
        age = timedelta(seconds=sum(float(number) * _UNITS[unit] for number, unit in parts))
    except OverflowError:
        raise argparse.ArgumentTypeError(f"too long: {text!r}") from None
    if age <= timedelta(0):
        raise argparse.ArgumentTypeError(f"must be longer than zero, got {text!r}")
    return age


async def cmd_prune(args: argparse.Namespace) -> int:
    from pgstash.stores.configurations import PostgresConfigurationRepository
    from pgstash.stores.instructions import PostgresInstructionsRepository
    from pgstash.stores.memory import PostgresModelMemory
    from pgstash.stores.versioned import VersionedStore

    async with connect(args, writes=False) as postgres:
        if args.store == "memories":
            forgotten = await PostgresModelMemory.forget_idle(args.idle, postgres=postgres)
            print(f"forgot {forgotten} memories idle for {args.idle}")
            return 0
        store: VersionedStore = PostgresConfigurationRepository(postgres)
        if args.store == "instructions":
            store = PostgresInstructionsRepository(postgres)
        pruned = await store.prune(keep=args.keep, older_than=args.older_than)
    print(f"pruned {pruned} {args.store} versions (each key's newest is always kept)")
    return 0


PRUNE_HELP = (
    "configurations and instructions: delete old versions, never a key's newest (--keep N: all "
    "but each key's N newest; --older-than AGE: those older than AGE; both: those beyond N and "
    "older than AGE). memories: forget the memories with nothing remembered for --idle AGE. "
    "AGE is e.g. 90s, 30m, 12h, 7d, 2w, 1d12h."
)


def configure_prune(sub: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    sub.description = PRUNE_HELP
    sub.add_argument("store", choices=("configurations", "instructions", "memories"), help="what to prune")
    for option, kind, metavar, help in (
        ("--keep", positive, "N", "configurations|instructions: keep each key's N newest"),
        ("--older-than", duration, "AGE", "configurations|instructions: delete older versions"),
        ("--idle", duration, "AGE", "memories: forget those with nothing remembered this long"),
    ):
        sub.add_argument(option, type=kind, metavar=metavar, help=help)


def prune_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The options `pgstash prune STORE` takes, checked before connecting (exit status 2)."""
    if args.store == "memories":
        if args.idle is None or args.keep is not None or args.older_than is not None:
            parser.error("prune memories takes --idle AGE (and no --keep or --older-than)")
    elif args.idle is not None or (args.keep is None and args.older_than is None):
        parser.error(f"prune {args.store} takes --keep N, --older-than AGE or both (and no --idle)")


async def cmd_demo(args: argparse.Namespace) -> int:
    from pgstash.cli import demo

    async with connect(args) as postgres:
        return await demo.run(postgres, passages_limit=args.limit)


def positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def configure_demo(sub: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    sub.add_argument("--limit", type=positive, default=None, help="index at most this many docstrings (>= 1)")


async def cmd_vector(args: argparse.Namespace) -> int:
    from pgstash.cli import vector as vector_cli

    async with connect(args) as postgres:
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
    "vector": ("vector tables: create-table NAME, ingest NAME FILE.jsonl", cmd_vector, configure_vector),
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
        default=default(embedded.DEFAULT_DATA_DIR),
        help=f"the embedded server's folder (default: {embedded.DEFAULT_DATA_DIR})",
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


def _cli_words(text: str) -> str:
    for library, cli in _CLI_WORDS:
        text = text.replace(library, cli)
    return re.sub(r"\s+", " ", text).strip()


def main(argv: Sequence[str] | None = None) -> int:
    root = parser()
    args = root.parse_args(argv)
    if args.command == "prune":
        prune_arguments(root, args)
    if args.dsn and (secrets := passwords.passwords_in(args.dsn)):
        passwords.hide_in_command_line(secrets)
        _say(passwords.WARNING)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(name)s: %(message)s"
    )
    _, command, _ = COMMANDS[args.command]
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        return asyncio.run(command(args))
    except Terminated:
        print(f"\npgstash {args.command}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(file=sys.stderr)  # the newline after ^C, below any progress bar
        return 130
    except BrokenPipeError:
        # The reader went away (`pgstash queries | head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except (PgstashError, ValueError, OSError) as error:
        if args.debug:
            raise
        print(f"pgstash {args.command}: {_cli_words(str(error))}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
