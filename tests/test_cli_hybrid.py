"""The command line's full text, hybrid search and keyed ingest: `create-table --text-field`,
`ingest --key-field`, `search --mode`."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from pgstash import PostgresConnectionPool
from pgstash.cli.main import main

ROWS = [
    {"id": "a", "body": "json.loads raises JSONDecodeError on malformed input", "topic": "python"},
    {"id": "b", "body": "parsing YAML files safely", "topic": "yaml"},
    {"id": "c", "body": "reading JSON configuration files", "topic": "python"},
]


def rows_file(folder: Path, rows: list[dict[str, str]]) -> Path:
    source = folder / "rows.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(row) for row in rows) + b"\n")
    return source


def count(dsn: str) -> list[tuple[str, str]]:
    async def read() -> list[tuple[str, str]]:
        async with PostgresConnectionPool.of(dsn=dsn) as postgres:
            rows = await postgres.fetch("SELECT payload ->> 'id' AS id, payload ->> 'body' AS body FROM docs")
        return sorted((row["id"], row["body"]) for row in rows)

    return asyncio.run(read())


def test_text_field_key_field_and_search_modes(
    database_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vector = ["vector", "--dsn", database_dsn]
    assert main([*vector, "create-table", "docs", "--dimension", "64", "--text-field", "body"]) == 0
    assert "text 'body' (english)" in capsys.readouterr().out
    ingest = [
        *vector,
        "ingest",
        "docs",
        str(rows_file(tmp_path, ROWS)),
        "--text-field",
        "body",
        "--key-field",
        "id",
    ]
    assert main(ingest) == 0
    edited = [{**ROWS[0], "body": "json.loads raises JSONDecodeError, edited"}]
    assert (
        main(
            [
                *vector,
                "ingest",
                "docs",
                str(rows_file(tmp_path, edited)),
                "--text-field",
                "body",
                "--key-field",
                "id",
            ]
        )
        == 0
    )
    assert [row for row in count(database_dsn) if row[0] == "a"] == [
        ("a", "json.loads raises JSONDecodeError, edited")
    ]
    assert len(count(database_dsn)) == 3
    capsys.readouterr()

    assert main([*vector, "search", "docs", "JSONDecodeError", "--mode", "text"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["#", "score", "id", "payload"]  # id: the --key-field value
    assert '"id":"a"' in out and '"id":"b"' not in out
    assert main([*vector, "search", "docs", "JSON files", "--mode", "hybrid", "--where", "topic=python"]) == 0
    out = capsys.readouterr().out
    assert '"id":"c"' in out and '"topic":"yaml"' not in out
    assert main([*vector, "search", "docs", "files", "--limit", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3  # header, rule, one row


def test_search_errors_are_one_line(database_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    vector = ["vector", "--dsn", database_dsn]
    assert main([*vector, "create-table", "plain", "--dimension", "8"]) == 0
    assert main([*vector, "search", "plain", "x", "--mode", "text"]) == 1
    err = capsys.readouterr().err
    assert "no text column" in err and "text=" in err and "Traceback" not in err
    assert main([*vector, "search", "plain", "x", "--where", "topic"]) == 1
    assert "PATH=VALUE" in capsys.readouterr().err
    assert (
        main(
            [
                *vector,
                "create-table",
                "other",
                "--dimension",
                "8",
                "--text-field",
                "body",
                "--language",
                "klingon",
            ]
        )
        == 1
    )
    assert "english" in capsys.readouterr().err


def test_a_key_twice_in_one_file_is_refused_naming_both_lines(
    database_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vector = ["vector", "--dsn", database_dsn]
    assert main([*vector, "create-table", "docs", "--dimension", "16"]) == 0
    twice = [*ROWS, {"id": "a", "body": "again", "topic": "python"}]
    source = str(rows_file(tmp_path, twice))
    assert main([*vector, "ingest", "docs", source, "--text-field", "body", "--key-field", "id"]) == 1
    err = capsys.readouterr().err
    assert "rows.jsonl:4: key 'a' again (line 1)" in err and "nothing was written" in err
    assert count(database_dsn) == []
