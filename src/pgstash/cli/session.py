"""How a command reaches its database and speaks: `connect` (--dsn, else PGSTASH_DSN, else the
embedded server, created only by commands that write), one-line errors in the command line's
words, and the line an interrupted command prints about what it kept."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import sys
from collections.abc import AsyncIterator, Sequence

from pgstash import embedded
from pgstash.connection import DSN_VARIABLE, Postgres, PostgresConnectionPool
from pgstash.errors import ConfigurationError

__all__ = ["cli_words", "connect", "kept", "say"]


# Library wording that a command-line user cannot act on, and what to say instead.
_CLI_WORDS = (("pass index=None", "pass --index none"), ("index=None", "--index none"))


def say(text: str) -> None:
    print(f"pgstash: {text}", file=sys.stderr, flush=True)


@contextlib.asynccontextmanager
async def connect(
    args: argparse.Namespace, *, writes: bool = True, replicas: Sequence[str] = (), bulk: bool = False
) -> AsyncIterator[Postgres]:
    """The pool for a command: --dsn, else PGSTASH_DSN, else the embedded server. A command that
    only reads (`writes=False`) never creates the embedded server's folder. `bulk`: a load or an
    index build, whose long statements are expected: no slow-query warning unless --slow-query-ms."""
    dsn = args.dsn or os.environ.get(DSN_VARIABLE)
    slow_ms = args.slow_query_ms if args.slow_query_ms is not None else (math.inf if bulk else 1000.0)
    async with contextlib.AsyncExitStack() as stack:
        if dsn:
            check_dsn(dsn)
            embedded.refuse_stopped(dsn)
        else:
            server = embedded.EmbeddedServer(args.data_dir)
            if not server.exists:
                if not writes:
                    raise ConfigurationError(
                        f"no database: no --dsn, no {DSN_VARIABLE}, no embedded server in {server.data_dir}: "
                        "run pgstash server start (or pass --dsn)"
                    )
                embedded._package()  # without the extra: say so before "creating"
                say(
                    f"creating the embedded PostgreSQL in {server.data_dir} (no --dsn nor {DSN_VARIABLE}); "
                    "it stops when this command ends, `pgstash server start` keeps it running"
                )
            await stack.enter_async_context(server)
            dsn = server.dsn
        pool = PostgresConnectionPool.of(dsn=dsn, replicas=replicas, slow_query_threshold=slow_ms / 1000)
        yield await stack.enter_async_context(pool)


def check_dsn(dsn: str) -> None:
    """A DSN that is neither a URL nor key=value pairs is refused naming the shape (never the DSN:
    it may hold a password)."""
    if not dsn.startswith(("postgresql://", "postgres://")) and "=" not in dsn:
        raise ConfigurationError(
            "--dsn (or PGSTASH_DSN) is not a PostgreSQL DSN: give postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        )


def cli_words(text: str) -> str:
    for library, cli in _CLI_WORDS:
        text = text.replace(library, cli)
    text = re.sub(
        r"`await PostgresVectorIndex\(\)\.create_table\(\w+, dimension=\.\.\.\)`",
        "pgstash vector create-table NAME",
        text,
    )
    return re.sub(r"\s+", " ", text).strip()


def kept(args: argparse.Namespace) -> str:
    """What an interrupted command leaves behind, for its one line."""
    action = getattr(args, "action", None)
    if args.command == "vector" and action == "ingest":
        return "nothing was written (one transaction, rolled back)"
    if args.command == "vector" and action == "build-index":
        return "the table keeps its rows; run pgstash vector build-index again to finish the index"
    if args.command in ("migrate", "demo"):
        return "each migration and step that finished is kept, the one under way was rolled back"
    return (
        "nothing was changed"
        if args.command in ("status", "queries") or action in ("search", "list", "get")
        else ("what finished before is kept, the statement under way was rolled back")
    )
