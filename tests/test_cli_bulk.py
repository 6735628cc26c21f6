"""`pgstash vector ingest` into an HNSW table (the index dropped first and built once from the data,
all rows or none) and `pgstash vector build-index`, run as a subprocess against a real server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from tests.support.cli import fetch, pgstash

pytestmark = pytest.mark.process


INDEX_OID = (
    "SELECT i.indexrelid::bigint FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indexrelid "
    "JOIN pg_am AS am ON am.oid = c.relam WHERE i.indrelid = '{table}'::regclass AND i.indisvalid "
    "AND am.amname = 'hnsw'"
)


def rows_file(path: Path, count: int, first: int = 0, bad: int | None = None) -> Path:
    vectors = np.random.default_rng(first).standard_normal((count, 8))
    lines = [
        orjson.dumps({"id": first + i, "v": [float("nan")] if i == bad else vectors[i].tolist()})
        for i in range(count)
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_ingest_of_a_big_file_builds_the_hnsw_index_once_all_rows_or_none(
    database_dsn: str, tmp_path: Path
) -> None:
    made = pgstash("vector", "create-table", "loads", "--dimension", "8", "--dsn", database_dsn)
    assert made.returncode == 0, made.stderr
    before = fetch(database_dsn, INDEX_OID.format(table="loads"))
    source = rows_file(tmp_path / "rows.jsonl", 2500)  # 3 batches: alone each would not be a bulk load
    loaded = pgstash("vector", "ingest", "loads", str(source), "--vector-field", "v", "--dsn", database_dsn)
    assert loaded.returncode == 0, loaded.stderr
    assert fetch(database_dsn, "SELECT count(*) FROM loads") == 2500
    after = fetch(database_dsn, INDEX_OID.format(table="loads"))
    assert before is not None and after is not None and after != before, "built from the data"
    broken = rows_file(tmp_path / "broken.jsonl", 6000, first=2500, bad=5500)  # fails in batch 6
    failed = pgstash("vector", "ingest", "loads", str(broken), "--vector-field", "v", "--dsn", database_dsn)
    assert failed.returncode != 0 and "nothing was written" in failed.stderr
    assert fetch(database_dsn, "SELECT count(*) FROM loads") == 2500
    assert fetch(database_dsn, INDEX_OID.format(table="loads")) is not None, "the index is back"


def test_build_index_rebuilds_concurrently(database_dsn: str, tmp_path: Path) -> None:
    made = pgstash("vector", "create-table", "rebuilt", "--dimension", "8", "--dsn", database_dsn)
    assert made.returncode == 0, made.stderr
    source = rows_file(tmp_path / "rows.jsonl", 300)
    loaded = pgstash("vector", "ingest", "rebuilt", str(source), "--vector-field", "v", "--dsn", database_dsn)
    assert loaded.returncode == 0, loaded.stderr
    before = fetch(database_dsn, INDEX_OID.format(table="rebuilt"))
    built = pgstash("vector", "build-index", "rebuilt", "--dsn", database_dsn)
    assert built.returncode == 0, built.stderr
    assert "index of rebuilt built in" in built.stdout
    for line in built.stderr.splitlines():
        if line.startswith("build-index rebuilt: "):
            assert " blocks " in line and " tuples " in line and line.endswith("/300")
    after = fetch(database_dsn, INDEX_OID.format(table="rebuilt"))
    assert after is not None and after != before
    missing = pgstash("vector", "build-index", "nothere", "--dsn", database_dsn)
    assert missing.returncode != 0 and "no vector table 'nothere'" in missing.stderr
