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
import os

from pgstash.embedded import EmbeddedServer
from pgstash.errors import ConfigurationError

__all__ = ["configure", "run", "serve_tcp"]

# initdb --auth=trust: the embedded server trusts every local connection: loopback addresses only
LOOPBACK = ("127.0.0.1", "::1", "localhost")


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
        if args.port is not None and serve_tcp(server, args.port, args.listen or "127.0.0.1"):
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


def serve_tcp(server: EmbeddedServer, port: int, listen: str = "127.0.0.1") -> bool:
    """Makes the started `server` listen on `listen`:`port` (TCP) as well as on its socket,
    restarting it unless it does already; whether it restarted. Refused while another process
    uses it (a restart would cut its connections) and for a non-loopback address (the server
    trusts local connections without a password)."""
    if listen not in LOOPBACK:
        raise ConfigurationError(
            f"--listen {listen}: the embedded server trusts every connection it accepts (no "
            f"password), so it listens on a loopback address only ({', '.join(LOOPBACK)}); to serve "
            "other hosts, run a PostgreSQL server with passwords instead"
        )
    if not 0 < port < 65536:
        raise ConfigurationError(f"--port {port}: a TCP port is 1 to 65535")
    info = server.postmaster()
    if info is None:
        raise ConfigurationError(f"the embedded server in {server.data_dir} is not running")
    if info.port == port and (info.hostname or "").split(",")[0].strip() == listen:
        return False
    others = [pid for pid in server.holders() if pid != os.getpid()]
    if others:
        raise ConfigurationError(
            f"the embedded server in {server.data_dir} runs without TCP on {listen}:{port} and is "
            f"used by processes {', '.join(map(str, others))}: a restart would cut their "
            "connections; stop them (or pgstash server stop) first"
        )
    server.restart(f'-h "{listen}" -p {port} -k "{info.socket_dir}"')
    return True
