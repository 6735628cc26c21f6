"""The command line, run as a subprocess against a real server: demo, vector create-table and
ingest (all rows or none, errors naming FILE:LINE), options anywhere, errors in CLI words."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.cli import PGSTASH, fetch, pgstash

pytestmark = pytest.mark.process


def errors(stderr: str) -> list[str]:
    """The error lines (`pgstash COMMAND: ...`), not progress lines nor the library's log lines."""
    return [line for line in stderr.strip().splitlines() if line.startswith("pgstash ")]


def jsonl(path: Path, rows: list[Any], blank_after: int | None = None) -> Path:
    lines = [orjson.dumps(row) for row in rows]
    if blank_after is not None:
        lines[blank_after:blank_after] = [b"", b"   ", b""]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_the_demo_runs_every_store_end_to_end(database_dsn: str) -> None:
    result = pgstash("demo", "--limit", "300", "--dsn", database_dsn)
    assert result.returncode == 0, result.stderr
    for section in ("== configurations ==", "== instructions ==", "== memory ==", "== vector index =="):
        assert section in result.stdout
    assert "300 docstrings" in result.stdout
    assert "== search 'json encoder' (MMR re-ranked) ==" in result.stdout
    assert "== vector, text and hybrid search 'TimeoutError' ==" in result.stdout
    assert "\r" not in result.stderr  # in a pipe: plain lines, no bar redrawn in place


@pytest.mark.parametrize("limit", ["0", "-5", "x"])
def test_the_demo_refuses_a_limit_below_one(limit: str) -> None:
    result = pgstash("demo", f"--limit={limit}", "--dsn", "postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 2 and "--limit" in result.stderr
    assert "docstrings" not in result.stdout


def test_options_go_before_or_after_any_command(database_dsn: str, tmp_path: Path) -> None:
    source = jsonl(tmp_path / "rows.jsonl", [{"id": i, "text": f"note {i} about cats"} for i in range(25)])
    created = pgstash("vector", "create-table", "notes", "--dimension", "64", "--dsn", database_dsn)
    assert created.returncode == 0, created.stderr
    ingested = pgstash(
        "--dsn", database_dsn, "vector", "ingest", "notes", str(source), "--text-field", "text"
    )
    assert ingested.returncode == 0, ingested.stderr
    assert "ingested 25 rows" in ingested.stdout
    assert fetch(database_dsn, "SELECT count(*) FROM notes") == 25
    assert fetch(database_dsn, "SELECT vector_dims(embedding) FROM notes LIMIT 1") == 64
    status = pgstash("--dsn", database_dsn, "status")
    assert status.returncode == 0, status.stderr
    assert pgstash("status", "--debug", "--dsn", database_dsn).returncode == 0


def test_every_help_lists_the_options_and_every_command() -> None:
    top = pgstash("--help").stdout
    for command in ("migrate", "status", "queries", "demo", "vector", "server"):
        assert command in top
    for command in (
        ["migrate"],
        ["status"],
        ["queries"],
        ["demo"],
        ["vector"],
        ["vector", "create-table"],
        ["vector", "ingest"],
        ["server"],
        ["server", "start"],
        ["server", "dsn"],
    ):
        text = pgstash(*command, "--help").stdout
        assert "--dsn" in text and "--debug" in text, command
    version = pgstash("--version")
    assert version.returncode == 0 and version.stdout.strip().startswith("pgstash 0.")


def test_ingest_is_one_transaction_and_names_file_and_line(database_dsn: str, tmp_path: Path) -> None:
    assert (
        pgstash("vector", "create-table", "docs", "--dimension", "64", "--dsn", database_dsn).returncode == 0
    )
    rows: list[dict[str, Any]] = [{"n": i, "text": f"passage {i}"} for i in range(2600)]
    rows[2550]["text"] = "a NUL \x00 here"  # after 2,000 rows that a batch would have committed
    broken = jsonl(tmp_path / "broken.jsonl", rows, blank_after=3)  # 3 blank lines after line 3
    result = pgstash("vector", "ingest", "docs", str(broken), "--text-field", "text", "--dsn", database_dsn)
    assert result.returncode == 1
    assert f"{broken}:2554:" in result.stderr  # physical line: 2551st row + 3 blank lines
    assert "nothing was written" in result.stderr and "Traceback" not in result.stderr
    assert len(errors(result.stderr)) == 1
    assert fetch(database_dsn, "SELECT count(*) FROM docs") == 0

    rows[2550]["text"] = "no NUL here"
    fixed = jsonl(tmp_path / "fixed.jsonl", rows, blank_after=3)
    result = pgstash("vector", "ingest", "docs", str(fixed), "--text-field", "text", "--dsn", database_dsn)
    assert result.returncode == 0, result.stderr
    assert fetch(database_dsn, "SELECT count(*) FROM docs") == 2600
    assert "\r" not in result.stderr


def test_a_vector_of_the_wrong_length_writes_nothing(database_dsn: str, tmp_path: Path) -> None:
    assert (
        pgstash("vector", "create-table", "vecs", "--dimension", "4", "--dsn", database_dsn).returncode == 0
    )
    rows: list[dict[str, Any]] = [{"v": [0.1, 0.2, 0.3, float(i)]} for i in range(2600)]
    rows[2500]["v"] = [0.5] * 65
    source = jsonl(tmp_path / "vecs.jsonl", rows)
    result = pgstash("vector", "ingest", "vecs", str(source), "--vector-field", "v", "--dsn", database_dsn)
    assert result.returncode == 1
    assert f"{source}:2501:" in result.stderr and "'v'" in result.stderr and "65" in result.stderr
    assert "nothing was written" in result.stderr
    assert fetch(database_dsn, "SELECT count(*) FROM vecs") == 0


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        ("--vector-field", ["a", "b", "c", "d"], "must be a list of finite numbers"),
        ("--vector-field", "some text", "must be a list of finite numbers"),
        ("--text-field", 42, "must be a string"),
        ("--text-field", [1.0, 2.0, 3.0, 4.0], "must be a string"),
    ],
)
def test_each_field_flag_accepts_only_its_type(
    database_dsn: str, tmp_path: Path, flag: str, value: Any, says: str
) -> None:
    assert (
        pgstash("vector", "create-table", "typed", "--dimension", "4", "--dsn", database_dsn).returncode == 0
    )
    source = jsonl(
        tmp_path / "typed.jsonl",
        [{"f": [0.0, 0.0, 0.0, 1.0] if flag == "--vector-field" else "ok"}, {"f": value}],
    )
    result = pgstash("vector", "ingest", "typed", str(source), flag, "f", "--dsn", database_dsn)
    assert result.returncode == 1
    assert f"{source}:2:" in result.stderr and says in result.stderr and "'f'" in result.stderr
    assert "Traceback" not in result.stderr
    assert fetch(database_dsn, "SELECT count(*) FROM typed") == 0


def test_a_missing_field_is_reported_at_its_physical_line(database_dsn: str, tmp_path: Path) -> None:
    assert (
        pgstash("vector", "create-table", "lines", "--dimension", "8", "--dsn", database_dsn).returncode == 0
    )
    source = tmp_path / "gaps.jsonl"
    source.write_text('{"text": "a"}\n\n\n\n{"other": 1}\n')
    result = pgstash("vector", "ingest", "lines", str(source), "--text-field", "text", "--dsn", database_dsn)
    assert result.returncode == 1 and f"{source}:5: no field 'text'" in result.stderr


def test_ingest_reads_standard_input(database_dsn: str) -> None:
    assert (
        pgstash("vector", "create-table", "piped", "--dimension", "16", "--dsn", database_dsn).returncode == 0
    )
    lines = "\n".join(orjson.dumps({"text": f"line {i}"}).decode() for i in range(10))
    result = pgstash(
        "vector", "ingest", "piped", "-", "--text-field", "text", "--dsn", database_dsn, stdin=lines
    )
    assert result.returncode == 0, result.stderr
    assert fetch(database_dsn, "SELECT count(*) FROM piped") == 10
    bad = pgstash(
        "vector", "ingest", "piped", "-", "--text-field", "text", "--dsn", database_dsn, stdin="{}\n"
    )
    assert "<stdin>:1: no field 'text'" in bad.stderr


@pytest.mark.parametrize("index", ["hnsw", "none"])
def test_create_table_refuses_an_existing_table_that_is_not_a_vector_table(
    database_dsn: str, index: str
) -> None:
    result = pgstash(
        "vector",
        "create-table",
        "configurations",
        "--dimension",
        "8",
        "--index",
        index,
        "--dsn",
        database_dsn,
    )
    assert result.returncode == 1
    assert "exists and is not a vector table" in result.stderr
    assert len(errors(result.stderr)) == 1


def test_index_none_keeps_the_filter_and_listing_indexes(database_dsn: str) -> None:
    assert (
        pgstash(
            "vector", "create-table", "plain", "--dimension", "8", "--index", "none", "--dsn", database_dsn
        ).returncode
        == 0
    )
    methods = fetch(
        database_dsn,
        "SELECT string_agg(am.amname, ',' ORDER BY am.amname) FROM pg_index i"
        " JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam"
        " WHERE i.indrelid = 'plain'::regclass",
    )
    assert methods == "btree,btree,gin"  # the primary key, created (listing), payload (filters)


def test_errors_speak_cli_and_never_suggest_a_refused_command(database_dsn: str, tmp_path: Path) -> None:
    source = tmp_path / "rows.jsonl"
    source.write_text('{"text": "x"}\n')
    missing = pgstash(
        "vector", "ingest", "missing_table", str(source), "--text-field", "text", "--dsn", database_dsn
    )
    assert missing.returncode == 1
    assert "no vector table 'missing_table'" in missing.stderr
    assert "pgstash vector create-table missing_table --dimension" in missing.stderr
    catalog = pgstash(
        "vector", "ingest", "pg_class", str(source), "--text-field", "text", "--dsn", database_dsn
    )
    assert catalog.returncode == 1 and "create-table" not in catalog.stderr
    bad_name = pgstash("vector", "create-table", "Bad-Name", "--dimension", "4", "--dsn", database_dsn)
    assert bad_name.returncode == 1 and "invalid table or identifier" in bad_name.stderr
    wide = pgstash("vector", "create-table", "wide", "--dimension", "3000", "--dsn", database_dsn)
    assert wide.returncode == 1 and "--index none" in wide.stderr and "index=None" not in wide.stderr
    for result in (missing, catalog, bad_name, wide):
        assert "Traceback" not in result.stderr and len(errors(result.stderr)) == 1


def test_queries_piped_into_head_exits_quietly() -> None:
    process = subprocess.Popen(
        [PGSTASH, "queries", "--sql"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.readline()
    process.stdout.close()  # what `head -1` does once it has its line
    errors = process.stderr.read()
    assert process.wait(timeout=60) in (0, 141)
    assert errors == ""
