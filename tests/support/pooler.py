"""A real PgBouncer (Debian's `pgbouncer` package) in front of the test server, for the pooler
tests: its ini written to a temporary folder, started as the `embedded_postgres` user when the
tests run as root (PgBouncer refuses to run as root), ready once a client can connect through it.

`PgBouncer.start(server_dsn, mode)`; `.dsn(database)` is a DSN through it; `.admin("PAUSE")`
runs a command on its admin console; `.stop()` ends it. Missing PgBouncer: `Unavailable`, which
`start_pgbouncer` (what the fixtures and tests call) turns into a skip (or a failure when
PGSTASH_REQUIRE_POOLER is set, as in CI). `python -m tests.support.pooler` exits 0 when PgBouncer
is installed (the Makefile asks before the pooler suites).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import asyncpg
import pytest

INSTALL_HINT = "install PgBouncer: apt-get update && apt-get install -y pgbouncer"
RUN_AS = "embedded_postgres"  # the embedded server's own user, which can reach its socket
# set (CI): a PgBouncer that is missing or cannot start fails the tests that need it, never skips them
REQUIRE_POOLER = "PGSTASH_REQUIRE_POOLER"
MISSING: list[str] = []  # why PgBouncer was missing, for the run's summary (tests/conftest.py)


class Unavailable(RuntimeError):
    """PgBouncer is not installed (`missing`), or could not be started (the message says why)."""

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


# "pgbouncer-transaction": `database_dsn` and `postgres` go through a real PgBouncer in transaction
# mode (make test runs the store suites so, after the direct run)
POOLER_VARIABLE = "PGSTASH_TEST_POOLER"


def pooler_mode() -> str | None:
    return os.environ.get(POOLER_VARIABLE) or None


@contextlib.contextmanager
def pooled(bouncer: PgBouncer | None, direct_dsn: str) -> Iterator[str]:
    """`direct_dsn`, or the same database through `bouncer` (the `bouncer` fixture: PgBouncer when
    PGSTASH_TEST_POOLER is set, else None), PGSTASH_POOLER then set to its mode meanwhile, for the
    pool's pooler=."""
    mode = pooler_mode()
    if bouncer is None or mode is None:
        yield direct_dsn
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PGSTASH_POOLER", mode)
        yield bouncer.dsn(database_of(direct_dsn))


def database_of(dsn: str) -> str:
    """The database a DSN names: the one to ask PgBouncer for (`PgBouncer.dsn(database_of(dsn))`)."""
    return urlsplit(dsn).path.lstrip("/")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _server_address(server_dsn: str) -> tuple[str, int, str]:
    """(host or socket folder, port, user) of the test server."""
    parts = urlsplit(server_dsn)
    query = dict(parse_qsl(parts.query))
    host = query.get("host") or parts.hostname or "127.0.0.1"
    port = int(query.get("port") or parts.port or 5432)
    return host, port, parts.username or "postgres"


def executable() -> str | None:
    """The pgbouncer program (Debian installs it in /usr/sbin, often outside a user's PATH)."""
    found = shutil.which("pgbouncer")
    candidates = (found,) if found else ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer")
    return next((path for path in candidates if path and os.access(path, os.X_OK)), None)


class PgBouncer:
    def __init__(self, folder: Path, port: int, process: subprocess.Popen[bytes], user: str) -> None:
        self.folder = folder
        self.port = port
        self.process = process
        self.user = user

    @classmethod
    def start(
        cls, server_dsn: str, mode: str = "transaction", *, pool_size: int = 10, **settings: str | int
    ) -> PgBouncer:
        program = executable()
        if program is None:
            raise Unavailable(f"pgbouncer is not installed: {INSTALL_HINT}", missing=True)
        host, server_port, user = _server_address(server_dsn)
        folder = Path(tempfile.mkdtemp(prefix="pgstash-pgbouncer-"))
        port = int(settings.pop("listen_port", 0)) or _free_port()
        options: dict[str, str | int] = {
            "listen_addr": "127.0.0.1",
            "listen_port": port,
            "unix_socket_dir": "",
            "auth_type": "any",  # the test server trusts local connections; any user logs in as postgres
            "admin_users": user,
            "pool_mode": mode,
            "default_pool_size": pool_size,
            "max_client_conn": 1000,
            "logfile": str(folder / "pgbouncer.log"),
            "pidfile": str(folder / "pgbouncer.pid"),
            "server_reset_query": "DISCARD ALL",
            "log_connections": 0,
            "log_disconnections": 0,
            **settings,
        }
        ini = folder / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host={host} port={server_port} user={user}\n"
            "[pgbouncer]\n" + "".join(f"{key} = {value}\n" for key, value in options.items())
        )
        run_as = None
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            run_as = RUN_AS
            entry = pwd.getpwnam(RUN_AS)
            for path in (folder, ini):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        # its log goes to the logfile; stderr (what it says before the logfile opens, and a copy
        # of every line) to a file too: a pipe nobody reads would fill and stop PgBouncer
        with open(folder / "stderr.log", "wb") as stderr:
            process = subprocess.Popen(
                [program, str(ini)], user=run_as, stdout=subprocess.DEVNULL, stderr=stderr
            )
        bouncer = cls(folder, port, process, user)
        try:  # in a thread of its own: the caller may be inside an event loop
            with concurrent.futures.ThreadPoolExecutor(1) as thread:
                thread.submit(asyncio.run, bouncer._ready()).result()
        except BaseException:
            bouncer.stop()
            raise
        return bouncer

    async def _ready(self, deadline: float = 30.0) -> None:
        """Returns once a client connects through PgBouncer to its admin console; `Unavailable`
        (with its log) when the process ends first or never accepts within `deadline` seconds."""
        give_up = time.monotonic() + deadline
        while True:
            if self.process.poll() is not None:
                raise Unavailable(f"pgbouncer exited with {self.process.returncode}: {self.log()}")
            try:
                connection = await asyncpg.connect(self.dsn("pgbouncer"), statement_cache_size=0, timeout=2)
            except (OSError, asyncpg.PostgresError, TimeoutError) as error:
                if time.monotonic() > give_up:
                    raise Unavailable(
                        f"pgbouncer did not accept connections: {error}: {self.log()}"
                    ) from error
                await asyncio.sleep(0.05)
                continue
            await connection.close()
            return

    def log(self) -> str:
        path = self.folder / "pgbouncer.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        if not text and (self.folder / "stderr.log").exists():
            text = (self.folder / "stderr.log").read_text(errors="replace")
        return text[-2000:]

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    async def admin(self, command: str) -> str:
        """Runs `command` (RECONNECT, PAUSE db, RESUME, KILL db, RELOAD...) on the admin console."""
        connection = await asyncpg.connect(self.dsn("pgbouncer"), statement_cache_size=0)
        try:
            return await connection.execute(command)  # the admin console speaks the simple protocol only
        finally:
            await connection.close()

    def show(self, what: str) -> list[dict[str, str]]:
        """`SHOW what` on the admin console (POOLS, SERVERS, STATS...) as rows, through psql (the
        admin console answers rows only to the simple protocol, which asyncpg reads as a status)."""
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        output = subprocess.run(
            [str(POSTGRES_BIN_PATH / "psql"), self.dsn("pgbouncer"), "-A", "-F", "\t", "-c", f"SHOW {what}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.splitlines()
        header = output[0].split("\t")
        return [dict(zip(header, line.split("\t"), strict=False)) for line in output[1:-1]]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_pgbouncer(server_dsn: str, **settings: str | int) -> PgBouncer:
    """PgBouncer in transaction mode in front of `server_dsn`. Not installed: the test is skipped
    (failed when PGSTASH_REQUIRE_POOLER is set, as in CI); installed but failing to start: failed."""
    try:
        return PgBouncer.start(server_dsn, "transaction", **settings)  # type: ignore[arg-type]
    except Unavailable as error:
        if not error.missing:
            pytest.fail(f"PgBouncer did not start: {error}")
        if os.environ.get(REQUIRE_POOLER):
            pytest.fail(f"PgBouncer is required ({REQUIRE_POOLER} is set): {error}")
        MISSING.append(str(error))
        pytest.skip(str(error))


if __name__ == "__main__":  # `python -m tests.support.pooler`: exit 0 when pgbouncer is installed
    import sys

    sys.exit(0 if executable() is not None else 1)
