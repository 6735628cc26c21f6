"""The embedded server as a newcomer meets it: read-only commands never create it, `pgstash
server start|stop|status|dsn` keeps it running while you work, SIGTERM of a command stops it, a
holder killed with -9 is forgotten, and `embedded.start()` returns a started handle."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import asyncpg
import pytest

from pgstash import ConfigurationError, embedded
from pgstash.embedded import EmbeddedServer
from tests.support.cli import PGSTASH, pgstash

pytestmark = pytest.mark.process


async def answers(dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        value: int = await connection.fetchval("SELECT 1")
        return value
    finally:
        await connection.close()


def wait_for(condition: object, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_status_in_an_empty_folder_creates_nothing(tmp_path: Path) -> None:
    result = pgstash("status", cwd=tmp_path)
    assert result.returncode == 1
    assert "no embedded server" in result.stderr and "pgstash server start" in result.stderr
    assert list(tmp_path.iterdir()) == []


async def test_server_start_keeps_it_running_until_server_stop(tmp_path: Path) -> None:
    started = pgstash("server", "start", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    assert "export PGSTASH_DSN=" in started.stdout
    try:
        dsn = pgstash("server", "dsn", cwd=tmp_path).stdout.strip()
        assert await answers(dsn) == 1
        migrated = pgstash("migrate", cwd=tmp_path)  # no DSN: uses the running server, and lets it run
        assert migrated.returncode == 0, migrated.stderr
        assert "creating" not in migrated.stderr
        assert await answers(dsn) == 1
        status = pgstash("server", "status", cwd=tmp_path)
        assert status.returncode == 0 and "running" in status.stdout
    finally:
        stopped = pgstash("server", "stop", cwd=tmp_path)
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert pgstash("server", "status", cwd=tmp_path).returncode == 3
    assert pgstash("server", "dsn", cwd=tmp_path).returncode == 1


def test_a_writing_command_creates_the_server_once_and_stops_it(tmp_path: Path) -> None:
    first = pgstash("migrate", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("creating the embedded PostgreSQL") == 1
    assert EmbeddedServer(tmp_path / ".pgstash").running_dsn() is None  # stopped when done
    second = pgstash("status", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "creating" not in second.stderr and "database postgres, user postgres" in second.stdout


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_sigterm_or_ctrl_c_of_a_command_stops_the_server(tmp_path: Path, stop: signal.Signals) -> None:
    for command in (["migrate"], ["vector", "create-table", "docs", "--dimension", "8"]):
        result = pgstash(*command, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    server = EmbeddedServer(tmp_path / ".pgstash")
    process = subprocess.Popen(  # reads standard input, which stays open: it waits, holding the server
        [PGSTASH, "vector", "ingest", "docs", "-", "--text-field", "text"],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "PGSTASH_DSN"},
    )
    try:
        wait_for(lambda: process.pid in server.holders() and server.running_dsn() is not None)
        assert process.stderr is not None
        said = line = b""
        while not line.startswith(b"ingest docs: reading"):  # past the connect, into the read
            line = process.stderr.readline()
            assert line, said  # it exited before reading
            said += line
        process.send_signal(stop)
        assert process.wait(timeout=60) == 128 + stop
        said += process.stderr.read()
        assert said.endswith(b"\n"), said  # the prompt starts on a line of its own
    finally:
        process.kill()
        process.communicate()
    assert server.running_dsn() is None
    assert server.holders() == []


def test_a_holder_killed_with_minus_9_is_forgotten(tmp_path: Path) -> None:
    started = pgstash("server", "start", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    server = EmbeddedServer(tmp_path / ".pgstash")
    dead = subprocess.Popen(["true"])
    dead.wait()
    # What `kill -9` of a command leaves: the server running, the dead pid listed as a holder.
    server.release()
    (server.data_dir / ".handle_pids.json").write_text(json.dumps([dead.pid]))
    result = pgstash("status", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert server.running_dsn() is None  # the last live holder stopped it


async def test_embedded_start_returns_a_started_handle(tmp_path: Path) -> None:
    server = embedded.start(tmp_path / "data")
    try:
        assert await answers(server.dsn) == 1
    finally:
        server.stop()
    assert server.running_dsn() is None
    with pytest.raises(ConfigurationError, match="stopped"):
        server.dsn  # noqa: B018
    with embedded.start(tmp_path / "data") as again:
        assert await answers(again.dsn) == 1
    async with embedded.start(tmp_path / "data") as once_more:
        assert await answers(once_more.dsn) == 1
    assert once_more.running_dsn() is None
