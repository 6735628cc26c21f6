"""migrate(): once per file, in order, under a lock, with checksums; the seed's columns exactly."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pgstash
from pgstash import MigrationError, PostgresConnectionPool
from pgstash.migrations import migrations, require_extension
from pgstash.sql.resources import resource_dir

# The seed's DDL (seed.md), column by column: (table, column) -> (type, nullable, default).
# The seed's columns (plus configurations.name, 0009), except that `created` defaults to the time
# of the insert, not of its transaction (schema/0006: another writer's two inserts in one
# transaction would collide).
CLOCK = "clock_timestamp()"
SEED_COLUMNS = {
    ("configurations", "identifier"): ("text", "NO", None),
    ("configurations", "content"): ("jsonb", "NO", None),
    ("configurations", "created"): ("timestamp with time zone", "NO", CLOCK),
    # schema/0009 (issue 23): the configuration's type name, nullable (the seed's rows have none)
    ("configurations", "name"): ("text", "YES", None),
    ("instructions", "name"): ("text", "NO", None),
    ("instructions", "description"): ("text", "YES", None),  # DEFAULT NULL
    ("instructions", "content"): ("text", "NO", None),
    ("instructions", "arguments"): ("jsonb", "NO", "'[]'::jsonb"),
    ("instructions", "meta"): ("jsonb", "NO", "'{}'::jsonb"),
    ("instructions", "created"): ("timestamp with time zone", "NO", CLOCK),
    ("memories", "identifier"): ("text", "NO", None),
    ("memories", "created"): ("timestamp with time zone", "NO", CLOCK),
    ("memories_variables", "identifier"): ("text", "NO", None),
    ("memories_variables", "variables"): ("jsonb", "NO", "'{}'::jsonb"),
    ("memories_variables", "created"): ("timestamp with time zone", "NO", CLOCK),
    ("memories_elements", "identifier"): ("text", "NO", None),
    ("memories_elements", "content"): ("jsonb", "NO", None),
    ("memories_elements", "created"): ("timestamp with time zone", "NO", CLOCK),
}
SEED_PRIMARY_KEYS = {
    "configurations": ["identifier", "created"],
    "instructions": ["name", "created"],
    "memories": ["identifier"],
    # schema/0005: a replica identity for logical replication
    "memories_elements": ["identifier", "created"],
    "memories_variables": ["identifier", "created"],
}


async def test_migrate_twice_applies_nothing_the_second_time(empty_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=empty_dsn) as postgres:
        first = await pgstash.migrate(postgres)
        second = await pgstash.migrate(postgres)
    assert first == [migration.name for migration in migrations()]
    assert second == []


async def test_the_tables_have_the_seed_columns_and_keys(postgres: pgstash.Postgres) -> None:
    rows = await postgres.fetch(
        "SELECT table_name, column_name, data_type, is_nullable, column_default"
        " FROM information_schema.columns WHERE table_name = ANY($1::text[])",
        sorted({table for table, _ in SEED_COLUMNS}),
    )
    found = {
        (r["table_name"], r["column_name"]): (r["data_type"], r["is_nullable"], r["column_default"])
        for r in rows
    }
    assert found == SEED_COLUMNS
    for table, columns in SEED_PRIMARY_KEYS.items():
        key = await postgres.fetch_value(
            "SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_index i"
            " CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
            " WHERE i.indrelid = $1::regclass AND i.indisprimary",
            table,
        )
        assert key == columns
    foreign = await postgres.fetch(
        "SELECT conrelid::regclass::text AS t, confdeltype::text"
        " FROM pg_constraint WHERE contype = 'f' ORDER BY 1"
    )
    assert [(r["t"], r["confdeltype"]) for r in foreign] == [
        ("memories_elements", "c"),
        ("memories_variables", "c"),
    ]


@pytest.mark.process
async def test_four_processes_migrating_at_once_apply_each_file_once(empty_dsn: str) -> None:
    command = [sys.executable, "-m", "pgstash.cli.main", "migrate", "--dsn", empty_dsn]
    processes = [
        await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    outputs = [await process.communicate() for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0, 0], outputs
    applied_lines = [
        line for out, _ in outputs for line in out.decode().splitlines() if line.startswith("applied ")
    ]
    assert sorted(applied_lines) == sorted(f"applied {m.name}" for m in migrations())
    async with PostgresConnectionPool.of(dsn=empty_dsn) as postgres:
        rows = await postgres.fetch("SELECT name FROM pgstash_migrations ORDER BY name")
    assert [r["name"] for r in rows] == [m.name for m in migrations()]


async def test_a_changed_applied_file_raises(database_dsn: str, tmp_path: Path) -> None:
    folder = tmp_path / "schema"
    shutil.copytree(resource_dir("schema"), folder)
    changed = folder / "0002_configurations.sql"
    changed.write_text(changed.read_text() + "\n-- an edit after the fact\n")
    async with PostgresConnectionPool.of(dsn=database_dsn) as postgres:
        with pytest.raises(MigrationError, match=r"0002_configurations.*must not change"):
            await pgstash.migrate(postgres, folder)


async def test_a_failing_migration_is_rolled_back_whole(database_dsn: str, tmp_path: Path) -> None:
    folder = tmp_path / "schema"
    shutil.copytree(resource_dir("schema"), folder)
    (folder / "9999_broken.sql").write_text("CREATE TABLE half_done (x INT);\nSELECT no_such_function();\n")
    async with PostgresConnectionPool.of(dsn=database_dsn) as postgres:
        with pytest.raises(MigrationError, match="9999_broken"):
            await pgstash.migrate(postgres, folder)
        assert await postgres.fetch_value("SELECT to_regclass('half_done')") is None
        assert (
            await postgres.fetch_value("SELECT count(*) FROM pgstash_migrations WHERE name = '9999_broken'")
            == 0
        )


async def test_a_server_without_the_extension_gets_a_clear_error(postgres: pgstash.Postgres) -> None:
    # The embedded server ships pgvector, so ask for an extension no server has: same code path.
    with pytest.raises(MigrationError, match=r'no "vector_missing" extension.*install pgvector'):
        await require_extension(postgres, "vector_missing")


@pytest.mark.process
def test_the_cli_migrate_reports_what_it_applied(database_dsn: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pgstash.cli.main", "migrate", "--dsn", database_dsn],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ},
    )
    assert result.returncode == 0, result.stderr
    assert "nothing to apply" in result.stdout
