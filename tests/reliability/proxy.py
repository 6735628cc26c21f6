"""A TCP proxy in front of the test server that drops a connection at a chosen moment: after the
server has answered a statement, before the client has read the answer (the reply is lost)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


class DroppingProxy:
    """`async with DroppingProxy(dsn) as proxy:` connect to `proxy.dsn`. After `proxy.arm(sent,
    answered)`, the first connection whose client sends bytes holding `sent` is cut as soon as
    the server's reply holds `answered`: that reply never reaches the client. Once only."""

    def __init__(self, dsn: str) -> None:
        self._upstream = dsn
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._sent: bytes | None = None
        self._answered = b""
        self.dropped = 0
        self.dsn = ""

    def arm(self, sent: bytes, answered: bytes) -> None:
        self._sent, self._answered = sent, answered

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        parts = urlsplit(self._upstream)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("host", "port", "sslmode")]
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

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        parts = urlsplit(self._upstream)
        query = dict(parse_qsl(parts.query))
        host = query.get("host") or parts.hostname or "localhost"
        port = int(query.get("port") or parts.port or 5432)
        if host.startswith("/"):
            server_reader, server_writer = await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
        else:
            server_reader, server_writer = await asyncio.open_connection(host, port)
        marked = [False]  # this connection's client sent the armed statement

        def cut() -> None:
            client_writer.transport.abort()
            server_writer.transport.abort()

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, upstream: bool) -> None:
            try:
                while data := await reader.read(65536):
                    if upstream and self._sent is not None and self._sent in data:
                        marked[0], self._sent = True, None
                    if not upstream and marked[0] and self._answered in data:
                        marked[0] = False
                        self.dropped += 1
                        cut()
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
