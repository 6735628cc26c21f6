"""The embedded server and the CLI as an unlucky operator meets them (issue 21 items 3 and 12): a
stale postmaster.pid naming a live unrelated process, a corrupt list of holders, a data folder
others may write, a password on the command line, a JSONL line too large to hold."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from pgstash.embedded import EmbeddedServer
from tests.support.cli import PGSTASH, pgstash

pytestmark = pytest.mark.process


@pytest.fixture(scope="module")
def stopped_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project folder whose embedded server was created, migrated and stopped (copied per test)."""
    folder = tmp_path_factory.mktemp("stopped")
    created = pgstash("migrate", cwd=folder)
    assert created.returncode == 0, created.stderr
    assert EmbeddedServer(folder / ".pgstash").running_dsn() is None
    yield folder


@pytest.fixture
def project(stopped_server: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    shutil.copytree(stopped_server, folder, symlinks=True)
    for root, folders, files in os.walk(folder / ".pgstash"):  # owned by the user the server runs as
        for name in ["", *folders, *files]:
            source = stopped_server / Path(root, name).relative_to(folder)
            owner = source.lstat()
            os.chown(Path(root, name), owner.st_uid, owner.st_gid, follow_symlinks=False)
    return folder


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that has nothing to do with PostgreSQL."""
    process = subprocess.Popen(["sleep", "600"])
    yield process
    process.kill()
    process.wait()


def plant_postmaster_pid(data_dir: Path, pid: int) -> None:
    """What a server killed with -9 (or a host restarted) leaves, its pid now reused by `pid`."""
    sockets = data_dir
    (data_dir / "postmaster.pid").write_text(
        f"{pid}\n{data_dir}\n{int(time.time()) - 3600}\n5432\n{sockets}\n\n  5432001    32768\nready   \n"
    )


def test_a_stale_postmaster_pid_never_signals_the_process_it_names(
    project: Path, bystander: subprocess.Popen[bytes]
) -> None:
    data = project / ".pgstash"
    plant_postmaster_pid(data, bystander.pid)
    status = pgstash("server", "status", cwd=project)
    assert status.returncode == 3, status.stdout + status.stderr  # stopped: the file is stale
    assert "stopped" in status.stdout
    assert pgstash("server", "dsn", cwd=project).returncode == 1
    stopped = pgstash("server", "stop", cwd=project)
    assert stopped.returncode == 0 and "not running" in stopped.stdout, stopped.stdout + stopped.stderr
    assert bystander.poll() is None, "server status/dsn/stop signalled the process a stale file named"
    for command in (["status"], ["migrate"]):
        plant_postmaster_pid(data, bystander.pid)
        result = pgstash(*command, cwd=project)
        assert result.returncode == 0, result.stderr
        assert bystander.poll() is None, f"pgstash {command[0]} signalled the process a stale file named"
    plant_postmaster_pid(data, bystander.pid)
    started = pgstash("server", "start", cwd=project)
    try:
        assert started.returncode == 0, started.stderr
        assert "already running" not in started.stdout and "started" in started.stdout
        assert EmbeddedServer(data).running_dsn() is not None
    finally:
        pgstash("server", "stop", cwd=project)
    assert bystander.poll() is None
    assert EmbeddedServer(data).running_dsn() is None


def test_a_corrupt_list_of_holders_counts_as_empty(project: Path) -> None:
    data = project / ".pgstash"
    (data / ".handle_pids.json").write_text("[12, 3")  # a write cut short
    started = pgstash("server", "start", cwd=project)
    try:
        assert started.returncode == 0, started.stderr
        status = pgstash("server", "status", cwd=project)
        assert status.returncode == 0 and "running" in status.stdout, status.stderr
        (data / ".handle_pids.json").write_text("{not json")
        assert pgstash("server", "status", cwd=project).returncode == 0
        assert pgstash("migrate", cwd=project).returncode == 0
    finally:
        stopped = pgstash("server", "stop", cwd=project)
    assert stopped.returncode == 0, stopped.stderr
    assert EmbeddedServer(data).running_dsn() is None


def test_a_data_folder_others_may_write_is_one_line_naming_the_fix(project: Path) -> None:
    data = project / ".pgstash"
    os.chmod(data, 0o777)
    result = pgstash("migrate", cwd=project)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "0777" in result.stderr and f"chmod 700 {data}" in result.stderr


async def test_a_password_in_dsn_is_hidden_from_ps_and_warned_about(server_dsn: str, tmp_path: Path) -> None:
    with_password = server_dsn.replace("postgres:@", "postgres:s3cret-pw-in-argv@", 1)
    assert "s3cret-pw-in-argv" in with_password, server_dsn
    connection = await asyncpg.connect(with_password)  # trust authentication: any password will do
    await connection.close()
    process = subprocess.Popen(  # reads standard input, which stays open: it waits, alive
        [PGSTASH, "--dsn", with_password, "vector", "ingest", "nothing", "-", "--text-field", "t"],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "PGSTASH_DSN"},
    )
    try:
        assert process.stderr is not None
        warning = process.stderr.readline().decode()  # printed once the argument is overwritten
        assert "PGSTASH_DSN" in warning and "passfile" in warning, warning
        command = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        if sys.platform == "linux":
            assert b"s3cret-pw-in-argv" not in command, command
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    help_text = pgstash("--help").stdout
    assert "PGSTASH_DSN" in help_text and "passfile" in help_text


async def test_a_jsonl_line_over_the_limit_is_refused_naming_file_line_and_limit(project: Path) -> None:
    limit = 16 << 20  # pgstash.cli.ingest.MAX_LINE_BYTES, the documented 16 MiB
    tmp_path = project
    created = pgstash("vector", "create-table", "docs", "--dimension", "8", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    source = tmp_path / "big.jsonl"
    with source.open("w") as out:
        out.write('{"text": "small"}\n')
        out.write('{"text": "' + "a" * (limit + 10) + '"}\n')
    result = pgstash("vector", "ingest", "docs", str(source), "--text-field", "text", cwd=tmp_path)
    assert result.returncode == 1
    assert f"{source}:2" in result.stderr and f"{limit:,}" in result.stderr, result.stderr
    assert "nothing was written" in result.stderr
    async with EmbeddedServer(tmp_path / ".pgstash") as server:
        connection = await asyncpg.connect(server.dsn)
        try:
            assert await connection.fetchval("SELECT count(*) FROM docs") == 0
        finally:
            await connection.close()


def test_the_embedded_servers_empty_password_is_no_secret() -> None:
    """`pgstash server dsn` prints `postgres:@...`: passing it back with --dsn warns of nothing,
    while a real password, in either DSN form, is still found."""
    from pgstash.cli.passwords import passwords_in

    assert passwords_in("postgresql://postgres:@127.0.0.1:5432/postgres") == []
    assert passwords_in("postgresql://app:s3cret@db/app") == ["s3cret"]
    assert passwords_in("host=db password=s3cret") == ["s3cret"]
