"""The command line a newcomer meets (issue 25): vector list/get/delete/drop, search by --vector,
--json, --fields and range/in --where, a text query refused on ready vectors, an unchanged keyed
re-ingest, phases in a pipe, reads that never create a cluster, the data folder found like .git,
and a DSN naming a stopped embedded server."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import pgstash as run_pgstash
from tests.support.databases import copy_of, filled_template

pytestmark = pytest.mark.process  # every test runs `pgstash` subprocesses


def pgstash(
    *args: str, stdin: str | None = None, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`pgstash ARGS`, a `--dsn X` among them passed as PGSTASH_DSN instead (as the README does:
    a password given with --dsn draws a warning line, which these tests would count)."""
    words, extra = list(args), dict(env or {})
    if "--dsn" in words:
        at = words.index("--dsn")
        extra["PGSTASH_DSN"] = words[at + 1]
        del words[at : at + 2]
    return run_pgstash(*words, stdin=stdin, cwd=cwd, env=extra)


ROWS = [
    {"id": "a", "text": "a cat sleeps on the mat", "lang": "en", "year": 2009},
    {"id": "b", "text": "der Hund spielt im Garten", "lang": "de", "year": 2015},
    {"id": "c", "text": "quarterly tax filing deadline", "lang": "en", "year": 2021},
    {"id": "d", "text": "le chat dort", "lang": "fr", "year": 2020},
]


def ok(*args: str, stdin: str | None = None, cwd: Path | None = None) -> str:
    result = pgstash(*args, stdin=stdin, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout


def one_line_error(*args: str, stdin: str | None = None) -> str:
    result = pgstash(*args, stdin=stdin)
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def write_notes(source: Path) -> Path:
    source.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return source


def create_and_ingest_notes(dsn: str, source: Path) -> None:
    ok("vector", "create-table", "notes", "--dsn", dsn)
    ok("vector", "ingest", "notes", str(source), "--text-field", "text", "--key-field", "id", "--dsn", dsn)


@pytest.fixture(scope="module")
def notes_template(template_ready: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database with ROWS in `notes` as the commands made it: two commands once, not
    once a test."""
    source = write_notes(tmp_path_factory.mktemp("notes") / "notes.jsonl")
    with filled_template(template_ready, lambda dsn: create_and_ingest_notes(dsn, source)) as name:
        yield name


@pytest.fixture
def notes(template_ready: str, notes_template: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A database of the test's own with ROWS in `notes` (ingested from the file given beside it,
    keyed by id), as `vector create-table notes` and `vector ingest notes FILE` left it."""
    with copy_of(template_ready, notes_template) as dsn:
        yield dsn, write_notes(tmp_path / "notes.jsonl")


def test_search_by_meaning_with_json_fields_and_range_filters(notes: tuple[str, Path]) -> None:
    dsn, _ = notes
    lines = ok(
        "vector", "search", "notes", "kitten on a rug", "--json", "--limit", "1", "--dsn", dsn
    ).splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["a"]
    assert set(json.loads(lines[0])) == {"id", "score", "payload"}
    found = ok(
        "vector",
        "search",
        "notes",
        "animal",
        "--where",
        "lang in (en,de)",
        "--where",
        "year>2010",
        "--json",
        "--fields",
        "lang,year",
        "--dsn",
        dsn,
    )
    rows = [json.loads(line) for line in found.splitlines()]
    assert sorted(r["id"] for r in rows) == ["b", "c"]
    assert all(set(r["payload"]) == {"lang", "year"} for r in rows)
    for expression, expected in (("year>=2020", {"c", "d"}), ("year<2015", {"a"}), ("lang!=en", {"b", "d"})):
        out = ok("vector", "search", "notes", "x", "--where", expression, "--json", "--dsn", dsn)
        assert {json.loads(line)["id"] for line in out.splitlines()} == expected, expression
    table = ok("vector", "search", "notes", "cat", "--where", "year<=2009", "--dsn", dsn)
    assert "year" in table.splitlines()[0] and "2009" in table


def test_a_bad_where_and_a_missing_table_are_one_line_naming_the_fix(notes: tuple[str, Path]) -> None:
    dsn, _ = notes
    assert "--where takes PATH=VALUE" in one_line_error(
        "vector", "search", "notes", "x", "--where", "year", "--dsn", dsn
    )
    assert "pgstash vector list" in one_line_error("vector", "search", "nope", "x", "--dsn", dsn)
    assert "QUERY text or --vector" in one_line_error("vector", "search", "notes", "--dsn", dsn)


def test_an_unchanged_keyed_reingest_says_unchanged(notes: tuple[str, Path]) -> None:
    dsn, source = notes
    again = pgstash(
        "vector", "ingest", "notes", str(source), "--text-field", "text", "--key-field", "id", "--dsn", dsn
    )
    assert again.returncode == 0 and again.stdout.startswith("unchanged: the 4 rows")
    assert "writing" not in again.stderr  # nothing embedded nor written
    source.write_text(source.read_text().replace("le chat dort", "le chat dort bien"))
    changed = ok(
        "vector", "ingest", "notes", str(source), "--text-field", "text", "--key-field", "id", "--dsn", dsn
    )
    assert "ingested 1 rows" in changed and "3 unchanged" in changed


def test_phases_are_one_line_each_in_a_pipe(database_dsn: str, tmp_path: Path) -> None:
    ok("vector", "create-table", "phased", "--dsn", database_dsn)
    source = tmp_path / "p.jsonl"
    source.write_text("".join(json.dumps({"text": f"row {i}"}) + "\n" for i in range(300)))
    result = pgstash("vector", "ingest", "phased", str(source), "--text-field", "text", "--dsn", database_dsn)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"ingest phased: reading {source}",
        "ingest phased: writing",
        "ingest phased: building index and committing",
        "ingest phased: done",
    ]  # and no slow-query warning in a bulk load


def test_list_get_delete_and_drop(notes: tuple[str, Path]) -> None:
    dsn, _ = notes
    listed = ok("vector", "list", "--dsn", dsn)
    assert "notes" in listed and "wordllama-l2_supercat-256" in listed
    got = [json.loads(line) for line in ok("vector", "get", "notes", "a", "c", "--dsn", dsn).splitlines()]
    assert [row["key"] for row in got] == ["a", "c"]
    by_id = ok("vector", "get", "notes", got[0]["id"], "--dsn", dsn)
    assert json.loads(by_id)["key"] == "a"
    missing = pgstash("vector", "get", "notes", "zz", "--dsn", dsn)
    assert missing.returncode == 1 and "not found in notes: zz" in missing.stderr
    assert (
        ok("vector", "delete", "notes", "--keys", "a,b", "--dsn", dsn).strip() == "deleted 2 rows from notes"
    )
    assert (
        ok("vector", "delete", "notes", "--where", "lang=fr", "--dsn", dsn).strip()
        == "deleted 1 rows from notes"
    )
    assert "--where EXPR or --keys" in one_line_error("vector", "delete", "notes", "--dsn", dsn)
    assert "pass --yes" in one_line_error("vector", "drop", "notes", "--dsn", dsn, stdin="")
    assert ok("vector", "drop", "notes", "--yes", "--dsn", dsn).strip() == "dropped notes (1 rows)"
    assert "no vector tables" in ok("vector", "list", "--dsn", dsn)


def test_keyless_search_results_carry_row_ids_that_vector_get_takes(
    database_dsn: str, tmp_path: Path
) -> None:
    dsn = database_dsn
    source = tmp_path / "plain.jsonl"
    rows = [{k: v for k, v in row.items() if k != "id"} for row in ROWS]
    source.write_text("".join(json.dumps(row) + "\n" for row in [*rows, rows[0]]))  # a twin of the cat
    ok("vector", "create-table", "plain", "--text-field", "text", "--dsn", dsn)
    ok("vector", "ingest", "plain", str(source), "--text-field", "text", "--dsn", dsn)
    for mode in ("vector", "text", "hybrid"):
        lines = ok(
            "vector", "search", "plain", "cat mat", "--mode", mode, "--json", "--dsn", dsn
        ).splitlines()
        found = [json.loads(line) for line in lines]
        assert found and all(isinstance(row["id"], str) for row in found), (mode, found)
        ids = [row["id"] for row in found]
        assert len(set(ids)) == len(ids), (mode, ids)  # the twins are two rows, two ids
        # one `vector get` with every id (a command per id was most of this test's time)
        got = [json.loads(line) for line in ok("vector", "get", "plain", *ids, "--dsn", dsn).splitlines()]
        assert sorted(row["id"] for row in got) == sorted(ids), mode  # each id once, none other
        by_id = {row["id"]: row for row in got}
        for row in found:
            assert by_id[row["id"]]["payload"] == row["payload"], mode
        if mode == "text":  # both twins match, each with its own id
            assert [row["payload"]["text"] for row in found] == ["a cat sleeps on the mat"] * 2


def test_ready_vectors_take_vector_and_refuse_a_text_query(database_dsn: str, tmp_path: Path) -> None:
    dsn = database_dsn
    ok("vector", "create-table", "ready", "--dimension", "3", "--index", "none", "--dsn", dsn)
    rows = [{"k": 1, "vec": [1, 0, 0]}, {"k": 2, "vec": [0, 1, 0]}]
    ok(
        "vector",
        "ingest",
        "ready",
        "-",
        "--vector-field",
        "vec",
        "--key-field",
        "k",
        "--dsn",
        dsn,
        stdin="".join(json.dumps(r) + "\n" for r in rows),
    )
    refused = one_line_error("vector", "search", "ready", "hello", "--dsn", dsn)
    assert "ready vectors" in refused and "--vector FILE" in refused
    found = ok("vector", "search", "ready", "--vector", "-", "--json", "--dsn", dsn, stdin="[0, 0.9, 0.1]")
    first = json.loads(found.splitlines()[0])
    assert first["id"] == 2 and "vec" not in first["payload"]  # never the stored vector
    table = ok("vector", "search", "ready", "--vector", "-", "--dsn", dsn, stdin="[1, 0, 0]")
    assert "[1," not in table and "[1.0" not in table
    assert "dimension is 3" in one_line_error(
        "vector", "search", "ready", "--vector", "-", "--dsn", dsn, stdin="[1]"
    )


def test_reads_never_create_a_cluster_and_the_folder_is_found_upward(tmp_path: Path) -> None:
    deep = tmp_path / "project" / "src" / "pkg"
    deep.mkdir(parents=True)
    for command in (
        ("status",),
        ("vector", "search", "notes", "hi"),
        ("vector", "list"),
        ("prune", "memories", "--idle", "1d"),
    ):
        result = pgstash(*command, cwd=deep)
        assert result.returncode == 1
        assert "run pgstash server start" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not any(path.name == ".pgstash" for path in tmp_path.rglob("*"))
    (tmp_path / "project" / ".pgstash").mkdir()  # the nearest .pgstash above is the one used
    result = pgstash("status", cwd=deep)
    assert str(tmp_path / "project" / ".pgstash") in result.stderr
    other = pgstash("status", cwd=deep, env={"PGSTASH_DATA_DIR": str(tmp_path / "elsewhere")})
    assert str(tmp_path / "elsewhere") in other.stderr


def test_a_dsn_naming_a_stopped_embedded_server_says_server_start(tmp_path: Path) -> None:
    folder = tmp_path / ".pgstash"
    folder.mkdir()
    (folder / "PG_VERSION").write_text("18\n")  # a cluster's folder, its server not running
    result = pgstash("status", env={"PGSTASH_DSN": f"postgresql://postgres:@/postgres?host={folder}"})
    assert result.returncode == 1
    assert f"the embedded PostgreSQL in {folder} is stopped: run pgstash server start" in result.stderr


def test_without_rich_every_command_prints_plain_text(notes: tuple[str, Path], tmp_path: Path) -> None:
    dsn, _ = notes
    fake = tmp_path / "site" / "rich"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('rich is not installed')\n")
    env = {"PYTHONPATH": str(tmp_path / "site")}
    for command in (("status",), ("vector", "list"), ("vector", "search", "notes", "cat", "--limit", "1")):
        result = pgstash(*command, "--dsn", dsn, env=env)
        assert result.returncode == 0, result.stderr
        assert "pgstash[cli]" not in result.stderr and "---" in result.stdout  # a plain table's rule


def test_ctrl_c_prints_one_line_saying_what_was_kept(database_dsn: str) -> None:
    import os
    import signal

    from tests.support.cli import PGSTASH

    ok("vector", "create-table", "waiting", "--dsn", database_dsn)
    process = subprocess.Popen(
        [PGSTASH, "vector", "ingest", "waiting", "-", "--text-field", "text"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PGSTASH_DSN": database_dsn},
    )
    assert process.stdin is not None and process.stderr is not None
    process.stdin.write('{"text": "one row, then the pipe stays open"}\n')
    process.stdin.flush()
    assert process.stderr.readline().startswith("ingest waiting: reading")  # it is reading stdin
    process.send_signal(signal.SIGINT)
    rest = process.stderr.read()
    assert process.wait(timeout=60) == 130
    assert rest.splitlines() == [
        "pgstash vector: interrupted; nothing was written (one transaction, rolled back)"
    ]


def test_slow_query_warnings_follow_slow_query_ms(notes: tuple[str, Path], tmp_path: Path) -> None:
    dsn, source = notes
    assert "slow query" in pgstash("vector", "list", "--slow-query-ms", "0", "--dsn", dsn).stderr
    assert "slow query" not in pgstash("vector", "list", "--dsn", dsn).stderr
    changed = tmp_path / "changed.jsonl"
    changed.write_text(source.read_text().replace("cat", "small cat"))
    args = (
        "vector",
        "ingest",
        "notes",
        str(changed),
        "--text-field",
        "text",
        "--key-field",
        "id",
        "--dsn",
        dsn,
    )
    assert "slow query" in pgstash(*args, "--slow-query-ms", "0").stderr
    changed.write_text(source.read_text().replace("cat", "tiny cat"))
    assert "slow query" not in pgstash(*args).stderr  # a bulk load: off unless asked
