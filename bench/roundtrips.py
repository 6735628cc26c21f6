"""Counts network round trips for real: a TCP proxy in front of PostgreSQL.

A round trip is counted each time a client sends after the server has answered (or first), so
a pipeline of Bind/Execute messages ending in one Sync is one round trip however many TCP
segments carry it, and the reset query asyncpg's pool runs on release is one more. Connect to
`counter.dsn` instead of the server's DSN; read `counter.round_trips` (`reset()` to start over).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["RoundTripCounter"]


def _upstream(dsn: str) -> tuple[str | None, str, int]:
    """(unix socket path or None, host, port) of a postgresql:// DSN."""
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query))
    host = query.get("host") or parts.hostname or "localhost"
    port = int(query.get("port") or parts.port or 5432)
    socket = f"{host}/.s.PGSQL.{port}" if host.startswith("/") else None
    return socket, host, port


class RoundTripCounter:
    def __init__(self, dsn: str) -> None:
        self._upstream_dsn = dsn
        self.round_trips = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.dsn = ""

    def reset(self) -> None:
        self.round_trips = 0

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        parts = urlsplit(self._upstream_dsn)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("host", "port", "sslmode", "ssl")]
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
        query.append(("sslmode", "disable"))
        self.dsn = urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        socket, host, port = _upstream(self._upstream_dsn)
        if socket is not None:
            server_reader, server_writer = await asyncio.open_unix_connection(socket)
        else:
            server_reader, server_writer = await asyncio.open_connection(host, port)
        last = ["server"]  # who spoke last on this connection

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, side: str) -> None:
            try:
                while data := await reader.read(65536):
                    if side == "client" and last[0] != "client":
                        self.round_trips += 1
                    last[0] = side
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        tasks = [
            asyncio.create_task(pump(client_reader, server_writer, "client")),
            asyncio.create_task(pump(server_reader, client_writer, "server")),
        ]
        self._tasks.update(tasks)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._tasks.difference_update(tasks)
