"""`pgstash server start|stop|status|dsn`: the embedded PostgreSQL kept running while you work.

pgstash server start
export PGSTASH_DSN=$(pgstash server dsn)     # for the Python examples, psql, other tools
pgstash server stop
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
        actions.add_parser(name, parents=[common], help=summary, description=summary)


def run(args: argparse.Namespace) -> int:
    server = EmbeddedServer(args.data_dir)
    if args.action == "start":
        state = "created and started" if not server.exists else "started"
        if server.running_dsn() is not None:
            state = "already running"
        server.start()
        server.keep()
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
