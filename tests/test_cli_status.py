"""`pgstash status` read as a DBA: where it is connected (no password), exact row counts,
pgstash's tables and vector tables only, pgvector's state, sizes in one unit style, numbers
right-aligned, migrations with their dates and checksums."""

from __future__ import annotations

import asyncio
import re
from urllib.parse import urlsplit, urlunsplit

import pytest

from pgstash import PostgresConfigurationRepository, PostgresConnectionPool
from tests.support.cli import pgstash

pytestmark = pytest.mark.process


def with_password(dsn: str, password: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{password}@{parts.hostname or ''}"))


async def prepare(dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=dsn) as postgres:
        configurations = PostgresConfigurationRepository(postgres)
        await configurations.define({"debug": True}, "flags")
        await configurations.define({"debug": False}, "flags")
        await postgres.execute("CREATE TABLE app_users (id INT)")
        await postgres.execute("INSERT INTO app_users SELECT generate_series(1, 10)")


def section(out: str, title: str) -> list[str]:
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    body = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        body.append(line)
    return body


def test_status_reads_as_a_dba_expects(database_dsn: str, tmp_path: object) -> None:
    asyncio.run(prepare(database_dsn))
    created = pgstash("vector", "create-table", "notes", "--dimension", "16", "--dsn", database_dsn)
    assert created.returncode == 0, created.stderr
    rows = "\n".join(f'{{"text": "note {i}"}}' for i in range(1234))
    assert (
        pgstash(
            "vector", "ingest", "notes", "-", "--text-field", "text", "--dsn", database_dsn, stdin=rows
        ).returncode
        == 0
    )

    result = pgstash("status", "--dsn", with_password(database_dsn, "s3cret-pw"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "s3cret-pw" not in out + result.stderr
    database = urlsplit(database_dsn).path.lstrip("/")
    first = out.splitlines()[0]
    assert "PostgreSQL 1" in first and f"database {database}" in first and "user postgres" in first
    assert "pgvector 0." in out

    tables = section(out, "tables")
    header, _rule, *body = tables
    by_name = {line.split()[0]: line for line in body}
    assert "app_users" not in by_name  # the user's own table is not pgstash's
    assert by_name["configurations"].split()[2] == "2"  # exact, though never analysed
    assert by_name["notes"].split()[1:3] == ["vector", "1,234"]
    assert {"configurations", "instructions", "memories", "pgstash_migrations", "notes"} <= by_name.keys()
    rows_end = header.index("rows") + len("rows")
    size_end = header.index("size") + len("size")
    for line in body:  # numbers right-aligned under their header
        assert line[rows_end - 1] != " " and line[rows_end : rows_end + 1] in ("", " ")
        assert line[size_end - 1] != " "
        size = line[:size_end].split("  ")[-1].strip()
        assert re.fullmatch(r"\d+\.\d (KiB|MiB|GiB)|\d+ B", size), size

    migrations = section(out, "migrations")[2:]
    assert migrations and all(
        re.search(r"applied\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+\s+[0-9a-f]{12}$", line)
        for line in migrations
    )


def test_status_says_pgvector_is_available_but_not_created(empty_dsn: str) -> None:
    result = pgstash("status", "--dsn", empty_dsn)
    assert result.returncode == 0, result.stderr
    assert "available, not created: run pgstash migrate" in result.stdout
    assert "pending" in result.stdout
