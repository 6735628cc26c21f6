"""The command line: demo end to end, vector create-table and ingest, clear errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from pgstash import PostgresConnectionPool
from pgstash.cli import main


def test_the_demo_runs_every_store_end_to_end(database_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--dsn", database_dsn, "--limit", "300"]) == 0
    out = capsys.readouterr().out
    for section in ("== configurations ==", "== instructions ==", "== memory ==", "== vector index =="):
        assert section in out
    assert "300 docstrings" in out
    assert "== search 'json encoder' (MMR re-ranked) ==" in out
    assert "== timings ==" in out


def test_vector_create_table_and_ingest(database_dsn: str, tmp_path: Path) -> None:
    rows = [{"id": i, "text": f"document number {i} about {'cats' if i % 2 else 'dogs'}"} for i in range(25)]
    source = tmp_path / "rows.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(row) for row in rows) + b"\n")
    assert main(["vector", "--dsn", database_dsn, "create-table", "notes", "--dimension", "64"]) == 0
    assert (
        main(["vector", "--dsn", database_dsn, "ingest", "notes", str(source), "--text-field", "text"]) == 0
    )

    async def stored() -> tuple[list[object], int]:
        async with PostgresConnectionPool.of(dsn=database_dsn) as postgres:
            payloads = await postgres.fetch("SELECT payload FROM notes ORDER BY created")
            dims = await postgres.fetch_value("SELECT vector_dims(embedding) FROM notes LIMIT 1")
        return [r["payload"] for r in payloads], dims

    assert asyncio.run(stored()) == (rows, 64)


def test_errors_are_one_line_without_traceback(
    database_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "rows.jsonl"
    source.write_text('{"text": "x"}\n')
    assert (
        main(
            ["vector", "--dsn", database_dsn, "ingest", "missing_table", str(source), "--text-field", "text"]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "no vector table 'missing_table'" in err and "create-table" in err and "Traceback" not in err
    assert main(["vector", "--dsn", database_dsn, "create-table", "Bad-Name", "--dimension", "4"]) == 1
    assert "invalid table or identifier" in capsys.readouterr().err
