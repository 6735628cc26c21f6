"""`pgstash vector get NAME --keys|--ids` and `pgstash vector list NAME` (issue 26 item 3): rows by
key or id in one statement in the order asked (null for a missing one, named on stderr, exit 1),
and a table paged through with the printed next command, every row once; a bad cursor, a bad id
and a page size out of range refused as usage errors (exit 2), without a traceback."""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgstash.cli import reads, rows
from tests.support.cli import pgstash as run_pgstash
from tests.support.databases import copy_of, filled_template


def pgstash(dsn: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`pgstash ARGS` against the test database (its DSN in PGSTASH_DSN, as the README does)."""
    return run_pgstash(*args, stdin=stdin, env={"PGSTASH_DSN": dsn})


def ok(dsn: str, *args: str, stdin: str | None = None) -> str:
    result = pgstash(dsn, *args, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout


def usage_error(dsn: str, *args: str) -> str:
    """A refused command line: argparse's exit status 2, its message, no traceback."""
    result = pgstash(dsn, *args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stdout == ""
    return result.stderr


def lines(text: str) -> list[object]:
    return [json.loads(line) for line in text.splitlines()]


def make_table(dsn: str, name: str, rows: list[dict[str, object]], *key_field: str) -> None:
    ok(dsn, "vector", "create-table", name, "--dimension", "3", "--index", "none")
    if not rows:
        return
    feed = "".join(json.dumps(row) + "\n" for row in rows)
    key = ["--key-field", key_field[0]] if key_field else []
    ok(dsn, "vector", "ingest", name, "-", "--vector-field", "vec", *key, stdin=feed)


KEYED = [{"k": k, "n": n, "vec": [1, n, 0]} for n, k in enumerate(["a", "b", "c", "d"])]


@pytest.fixture(scope="module")
def keyed_template(template_ready: str) -> Iterator[str]:
    """A migrated database with KEYED in `keyed`, as the commands made it: once, not once a test."""
    with filled_template(template_ready, lambda dsn: make_table(dsn, "keyed", KEYED, "k")) as name:
        yield name


@pytest.fixture
def keyed(template_ready: str, keyed_template: str) -> Iterator[str]:
    """The DSN of a database of the test's own with KEYED in `keyed` (create-table, then ingest
    keyed by k)."""
    with copy_of(template_ready, keyed_template) as dsn:
        yield dsn


@pytest.mark.process
def test_get_by_keys_and_ids_in_one_statement_in_the_order_asked(keyed: str) -> None:
    dsn = keyed
    result = pgstash(dsn, "vector", "get", "keyed", "--keys", "c,a,zz", "--keys", "b", "--slow-query-ms", "0")
    assert result.returncode == 1, result.stderr
    got = lines(result.stdout)
    assert got[2] is None  # the library's None in that place: line N is the Nth key asked
    found = [row for row in got if row is not None]
    assert [row["key"] for row in found] == ["c", "a", "b"]  # type: ignore[index]
    assert [row["payload"] for row in found] == [{"k": k, "n": "abcd".index(k)} for k in "cab"]  # type: ignore[index]
    assert "not found in keyed: zz" in result.stderr
    assert result.stderr.count("slow query vectors_get_ids:") == 1  # one statement for all four
    ids = {row["key"]: row["id"] for row in found}  # type: ignore[index]
    by_ids = ok(dsn, "vector", "get", "keyed", "--ids", f"{ids['b']},{ids['c']}", "--ids", ids["a"])
    assert [row["key"] for row in lines(by_ids)] == ["b", "c", "a"]  # type: ignore[index]
    assert [row["id"] for row in lines(by_ids)] == [ids["b"], ids["c"], ids["a"]]  # type: ignore[index]
    ids["d"] = lines(ok(dsn, "vector", "get", "keyed", "--keys", "d"))[0]["id"]  # type: ignore[index]
    gone = "00000000-0000-4000-8000-000000000000"
    missing = pgstash(dsn, "vector", "get", "keyed", "--ids", f"{gone},{ids['d'].upper()}")
    assert missing.returncode == 1 and lines(missing.stdout)[0] is None
    assert lines(missing.stdout)[1]["key"] == "d"  # type: ignore[index]
    assert missing.stderr.strip() == f"pgstash vector get: not found in keyed: {gone}"
    # the older form: each a key, else a row id
    older = ok(dsn, "vector", "get", "keyed", "d", ids["a"])
    assert [row["key"] for row in lines(older)] == ["d", "a"]  # type: ignore[index]


@pytest.mark.process
def test_get_refuses_a_bad_id_and_two_forms_at_once(keyed: str) -> None:
    assert "--ids: takes row ids (UUIDs), got 'nope'" in usage_error(
        keyed, "vector", "get", "keyed", "--ids", "nope"
    )
    both = pgstash(keyed, "vector", "get", "keyed", "a", "--keys", "b")
    assert both.returncode == 1 and "Traceback" not in both.stderr
    assert both.stderr.strip() == (
        "pgstash vector: vector get takes --keys K1,K2, --ids ID1,ID2 or KEY... (one of them)"
    )


@pytest.mark.process
def test_a_key_of_digits_is_the_string_key_else_the_integer_key(database_dsn: str) -> None:
    dsn = database_dsn
    make_table(dsn, "numbered", [{"k": 7, "vec": [1, 0, 0]}, {"k": "8", "vec": [0, 1, 0]}], "k")
    got = lines(ok(dsn, "vector", "get", "numbered", "--keys", "8,7"))
    assert [row["key"] for row in got] == ["8", 7]  # type: ignore[index]


def test_get_and_delete_read_a_typed_key_alike_an_integer_only_for_a_whole_number() -> None:
    assert reads.key_forms("7") == ["7", 7] and reads.key_forms("-3") == ["-3", -3]
    for text in ("a", "7a", "²", "--5", "-", "1.5"):  # delete once took "²" and "--5" to int(): ValueError
        assert reads.key_forms(text) == [text]
    assert rows._keys(["7", "²", "a"]) == ["7", 7, "²", "a"]


def follow(dsn: str, first: list[str]) -> tuple[list[dict[str, object]], int]:
    """Every row printed by `first` and the next commands it prints, and how many pages it took."""
    command, rows, pages = first, [], 0
    while True:
        result = pgstash(dsn, *command)
        assert result.returncode == 0, result.stderr
        pages += 1
        rows += lines(result.stdout)
        following = [line for line in result.stderr.splitlines() if line.startswith("next page: ")]
        if not following:
            assert result.stderr == "", result.stderr
            return rows, pages  # type: ignore[return-value]
        assert len(following) == 1 and len(result.stdout.splitlines()) == int(
            command[command.index("--limit") + 1]
        )
        words = shlex.split(following[0].removeprefix("next page: "))
        assert words[:4] == ["pgstash", "vector", "list", first[2]] and "--after" in words
        command = words[1:]
        assert pages < 50


@pytest.mark.process
def test_list_pages_through_a_table_once_each_row_following_the_printed_command(database_dsn: str) -> None:
    dsn = database_dsn
    plain = [{"n": n % 7, "vec": [1, n, 1]} for n in range(23)]  # keyless, twins of every n
    make_table(dsn, "plain", plain[:11])
    make_table(dsn, "plain_more", [])  # a second table: list NAME reads only its own
    feed = "".join(json.dumps(row) + "\n" for row in plain[11:])
    ok(dsn, "vector", "ingest", "plain", "-", "--vector-field", "vec", stdin=feed)  # a later created
    rows, pages = follow(dsn, ["vector", "list", "plain", "--limit", "4"])
    assert pages == 6  # 4+4+4+4+4+3
    assert len(rows) == 23 and len({row["id"] for row in rows}) == 23  # every row once, twins apart
    assert Counter(row["payload"]["n"] for row in rows) == Counter(r["n"] for r in plain)  # type: ignore[index]
    assert all(row["key"] is None and set(row["payload"]) == {"n"} for row in rows)  # type: ignore[arg-type]
    # each printed id is that row's: get --ids reads back the same payloads, in that order
    got = lines(ok(dsn, "vector", "get", "plain", "--ids", ",".join(str(row["id"]) for row in rows)))
    assert [row["payload"] for row in got] == [row["payload"] for row in rows]  # type: ignore[index]
    filtered, _ = follow(dsn, ["vector", "list", "plain", "--where", "n in (2,3)", "--limit", "2"])
    expected = sorted(r["n"] for r in plain if r["n"] in (2, 3))
    assert sorted(row["payload"]["n"] for row in filtered) == expected  # type: ignore[index]
    assert len({row["id"] for row in filtered}) == len(expected) == 6
    whole = lines(ok(dsn, "vector", "list", "plain"))  # default: 100 a page, the last one: no next
    assert [row["id"] for row in whole] == [row["id"] for row in rows]


@pytest.mark.process
def test_a_keyed_table_lists_its_keys_and_ids_as_get_prints_them(keyed: str) -> None:
    listed = ok(keyed, "vector", "list", "keyed")
    got = ok(keyed, "vector", "get", "keyed", "--keys", "a,b,c,d")
    assert sorted(listed.splitlines()) == sorted(got.splitlines())
    assert "vec" not in listed  # the stored vector of a --vector-field ingest is not shown


@pytest.mark.process
def test_a_full_last_page_prints_a_next_command_that_prints_nothing(keyed: str) -> None:
    result = pgstash(keyed, "vector", "list", "keyed", "--limit", "4")
    assert len(result.stdout.splitlines()) == 4
    words = shlex.split(result.stderr.strip().removeprefix("next page: "))
    after = pgstash(keyed, *words[1:])
    assert (after.returncode, after.stdout, after.stderr) == (0, "", "")


@pytest.mark.process
def test_a_bad_cursor_and_a_page_size_out_of_range_are_usage_errors(keyed: str) -> None:
    dsn = keyed
    for cursor in ("garbage", "2026-01-01T00:00:00+00:00/not-a-uuid", "/", ""):
        message = usage_error(dsn, "vector", "list", "keyed", "--after", cursor)
        assert "argument --after: takes the cursor the previous page printed" in message, cursor
    for size in ("0", "-1", "10001", "ten"):
        assert "argument --limit" in usage_error(dsn, "vector", "list", "keyed", "--limit", size), size


@pytest.mark.process
def test_list_without_a_name_still_lists_the_tables(keyed: str) -> None:
    listed = ok(keyed, "vector", "list")
    assert "keyed" in listed and "dimension" in listed.splitlines()[0]
    alone = pgstash(keyed, "vector", "list", "--limit", "3")
    assert alone.returncode == 1 and "vector list NAME" in alone.stderr and "Traceback" not in alone.stderr
    missing = pgstash(keyed, "vector", "list", "nope")
    assert missing.returncode == 1 and "no vector table 'nope'" in missing.stderr


def test_the_next_command_keeps_the_filters_and_the_connection_without_its_password(tmp_path: Path) -> None:
    after = "2026-12-07T12:00:00.123456+00:00/0b1f6f5e-8d1c-4c55-9a57-0e8e2f3f1b2a"
    args = argparse.Namespace(
        name="docs",
        where=["lang in (en,de)", "year>2010"],
        limit=50,
        dsn="postgresql://u:secret@db/x",
        data_dir=None,
    )
    command = reads.next_command(args, after)
    assert "secret" not in command
    assert shlex.split(command) == [
        "pgstash", "vector", "list", "docs", "--where", "lang in (en,de)", "--where", "year>2010",
        "--limit", "50", "--after", after, "--dsn", "postgresql://u:***@db/x",
    ]  # fmt: skip
    elsewhere = argparse.Namespace(name="docs", where=[], limit=None, dsn=None, data_dir=str(tmp_path / "d"))
    assert shlex.split(reads.next_command(elsewhere, after))[4:] == [
        "--after",
        after,
        "--data-dir",
        str(tmp_path / "d"),
    ]
