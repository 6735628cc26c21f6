"""TCP relays in front of PostgreSQL: `Relay`, and `RoundTripCounter`, which counts network round
trips for real.

A round trip is counted each time a client sends after the server has answered (or first), so
a pipeline of Bind/Execute messages ending in one Sync is one round trip however many TCP
segments carry it, and the reset query asyncpg's pool runs on release is one more. Connect to
`counter.dsn` instead of the server's DSN; read `counter.round_trips` (`reset()` to start over).

The test suite's fault injection (`tests/reliability/proxy.py`) is a `Relay` too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["Relay", "RoundTripCounter"]

Passing = Callable[[bytes, bool], bool]


def _upstream(dsn: str) -> tuple[str | None, str, int]:
    """(unix socket path or None, host, port) of a postgresql:// DSN."""
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query))
    host = query.get("host") or parts.hostname or "localhost"
    port = int(query.get("port") or parts.port or 5432)
    socket = f"{host}/.s.PGSQL.{port}" if host.startswith("/") else None
    return socket, host, port


class Relay:
    """`async with Relay(dsn) as relay:` connect to `relay.dsn` (127.0.0.1, no TLS); every byte
    is passed on to the server of `dsn` and back. A subclass watches the bytes: `connection()` is
    called once per client connection and returns `passing(data, from_client)`, called for each
    chunk before it is passed on; False cuts that connection at once (both sides, the chunk lost).
    """

    def __init__(self, dsn: str) -> None:
        self._upstream_dsn = dsn
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.dsn = ""

    def connection(self) -> Passing:
        return lambda data, from_client: True

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
        passing = self.connection()

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, from_client: bool) -> None:
            try:
                while data := await reader.read(65536):
                    if not passing(data, from_client):
                        client_writer.transport.abort()
                        server_writer.transport.abort()
                        return
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        tasks = [
            asyncio.create_task(pump(client_reader, server_writer, True)),
            asyncio.create_task(pump(server_reader, client_writer, False)),
        ]
        self._tasks.update(tasks)
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self._tasks.difference_update(tasks)


class RoundTripCounter(Relay):
    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        self.round_trips = 0

    def reset(self) -> None:
        self.round_trips = 0

    def connection(self) -> Passing:
        client_spoke_last = [False]

        def passing(data: bytes, from_client: bool) -> bool:
            if from_client and not client_spoke_last[0]:
                self.round_trips += 1
            client_spoke_last[0] = from_client
            return True

        return passing
