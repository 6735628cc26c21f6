"""`pgstash server start|stop|status|dsn`: the embedded PostgreSQL kept running while you work.

pgstash server start
export PGSTASH_DSN=$(pgstash server dsn)     # for the Python examples, psql, other tools
pgstash server stop

`pgstash server start --port 5433 [--listen 127.0.0.1]` serves TCP clients too (a pooler such as
PgBouncer, a GUI, a container on the host's network) until the server stops; `server dsn` then
prints the TCP DSN.
"""

from __future__ import annotations

import argparse

from pgstash.embedded import EmbeddedServer
from pgstash.errors import ConfigurationError

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, summary in (
        ("start", "start the embedded server (creating its folder) and keep it running"),
        ("stop", "stop the embedded server started by `pgstash server start`"),
        ("status", "whether the embedded server runs, its folder, DSN and the processes using it"),
        ("dsn", "print the running server's DSN: export PGSTASH_DSN=$(pgstash server dsn)"),
    ):
        action = actions.add_parser(name, parents=[common], help=summary, description=summary)
        if name == "start":
            action.add_argument(
                "--port", type=int, default=None,
                help="also listen for TCP clients on this port (until the server stops)",
            )
            action.add_argument(
                "--listen", default=None, metavar="ADDRESS",
                help="the loopback address to listen on with --port (default 127.0.0.1)",
            )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    server = EmbeddedServer(args.data_dir)
    if args.action == "start":
        state = "created and started" if not server.exists else "started"
        if server.running_dsn() is not None:
            state = "already running"
        if args.listen is not None and args.port is None:
            raise ConfigurationError(
                "--listen needs --port: pgstash server start --port 5433 --listen 127.0.0.1"
            )
        server.start()
        server.keep()
        if args.port is not None and server.serve_tcp(args.port, args.listen or "127.0.0.1"):
            state = f"{state}, listening on TCP"
        dsn = server.dsn
        server.stop()  # lets go; kept, so it runs on until `pgstash server stop`
        print(
            f"{state}, kept running until pgstash server stop: the embedded PostgreSQL in {server.data_dir}"
        )
        print(f"export PGSTASH_DSN='{dsn}'")
        return 0
    if args.action == "stop":
        server.release()
        if server.running_dsn() is None:
            print(f"not running: the embedded PostgreSQL in {server.data_dir}")
            return 0
        others = server.holders()
        server.start()  # joins the holders (forgetting dead ones), then lets go: the last stops it
        server.stop()
        if others:
            print(f"stops when the processes using it end: {', '.join(map(str, others))}")
        else:
            print(f"stopped: the embedded PostgreSQL in {server.data_dir}")
        return 0
    running = server.running_dsn()
    if args.action == "dsn":
        if running is None:
            raise ConfigurationError(
                f"no embedded server runs in {server.data_dir}: run pgstash server start"
            )
        print(running)
        return 0
    if running is None:
        state = "stopped" if server.exists else "not created (pgstash server start creates it)"
        print(f"embedded PostgreSQL in {server.data_dir}: {state}")
        return 3
    holders = server.holders()
    print(f"embedded PostgreSQL in {server.data_dir}: running")
    print(f"dsn: {running}")
    print(f"kept by pgstash server start: {'yes' if server.kept else 'no'}")
    print(f"used by: {', '.join(map(str, holders)) if holders else 'no process'}")
    return 0
