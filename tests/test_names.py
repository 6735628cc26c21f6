"""One seam between Python and SQL (issue 22 item 1): one constant per named query, checked at
import; every query of queries/ used by the code and no name used that queries/ does not declare;
each query's route read from its file; the whole statement a composed call sends printable."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

from pgstash import AttributeRequirement, Postgres, PostgresVectorIndex
from pgstash.sql import names
from pgstash.sql.catalogue import Query, catalogue, load_catalogue
from pgstash.sql.show import show
from pgstash.sql.statements import Statement
from tests.support.cli import pgstash

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "pgstash"
# A name written as a constant (`names.memory_recall`) or, as code from before the constants
# still may, as a string to run / query / fragment.
IMPORT = re.compile(r"^from pgstash\.sql import names(?: as (\w+))?", re.M)
STRING = re.compile(r"\b(?:run|run_on|query|named_query|fragment)\(\s*\"([a-z_][a-z0-9_]*)\"")
BUILT = re.compile(r"\b(?:run|run_on|query|named_query|fragment)\(\s*f\"")


# Queries only tests run, with why they stay.
TESTS_ONLY = {"server_facts": "tests/test_connection.py: a named query's one round trip, no reset"}


def used_names() -> dict[str, list[str]]:
    """Every query name the code under src/ uses, with the files that use it."""
    found: dict[str, list[str]] = {}
    for path in sorted(SOURCE.rglob("*.py")):
        if path == SOURCE / "sql" / "names.py":
            continue
        text = path.read_text(encoding="utf-8")
        imported = IMPORT.search(text)
        alias = imported and (imported.group(1) or "names")
        constants = re.findall(rf"\b{alias}\.([a-z_][a-z0-9_]*)\b", text) if alias else []
        for name in {*constants, *STRING.findall(text)}:
            found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return found


def test_every_constant_is_the_query_of_its_name() -> None:
    constants = {key: value for key, value in vars(names).items() if isinstance(value, Query)}
    assert constants, "pgstash.sql.names holds no query"
    for key, value in constants.items():
        assert value is catalogue()[key], f"names.{key} is {value.name}"


def test_a_name_no_file_declares_fails_the_import(tmp_path: Path) -> None:
    module = tmp_path / "misnamed.py"
    module.write_text(
        'from pgstash.sql.catalogue import query\nconfigurations_newset = query("configurations_newset")\n'
    )
    run = subprocess.run(
        [sys.executable, "-c", "import misnamed"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert run.returncode != 0
    assert "no query named 'configurations_newset'" in run.stderr


def test_every_query_is_used_and_every_used_name_is_declared() -> None:
    used = used_names()
    declared = set(catalogue())
    unknown = {name: files for name, files in used.items() if name not in declared}
    assert not unknown, f"code uses names no file of queries/ declares: {unknown}"
    unused = sorted(declared - set(used) - set(TESTS_ONLY))
    assert not unused, f"queries/ declares queries no code under src/ uses: {unused} (delete them?)"


def test_no_query_name_is_built_at_run_time() -> None:
    """Grepping a query's name finds its callers: no f-string picks a query."""
    built = [
        str(path.relative_to(ROOT))
        for path in SOURCE.rglob("*.py")
        if BUILT.search(path.read_text(encoding="utf-8"))
    ]
    assert not built, f"a query name built at run time in {built}: use the constants of pgstash.sql.names"


def test_the_versioned_stores_name_their_queries() -> None:
    from pgstash import PostgresConfigurationRepository, PostgresInstructionsRepository

    for store in (PostgresConfigurationRepository, PostgresInstructionsRepository):
        for operation, named in attrs.asdict(store.queries, recurse=False).items():
            assert named.name == f"{store.store}_{operation}"


# -- routes -----------------------------------------------------------------------------------


def test_the_reads_are_marked_in_their_files() -> None:
    """The replica-served reads are exactly the queries marked `-- route: read` (the READS list
    of connection/replicas.py before the mark), and the mark is on the line after their
    `-- name:` line, where a DBA reads it."""
    reads = {name for name, named in catalogue().items() if named.read}
    assert reads == {
        "configurations_newest",
        "configurations_identifiers",
        "configurations_history",
        "instructions_newest",
        "instructions_declarations",
        "instructions_history",
        "instructions_latest",  # instructions labels (queries/instructions_labels.sql)
        "instructions_labelled",
        "instructions_numbered",
        "instructions_history_numbered",
        "instructions_labels_of",
        "instructions_label_history",
        "instructions_latest_history",
        "instructions_labelled_declarations",
        "memory_recall",
        "vectors_search",
        "vectors_search_exact",
        "vectors_search_relaxed",
        "vectors_newest",
        "vectors_text_search",
        "vectors_hybrid",
    }
    for name in reads:
        text = catalogue()[name].source.read_text(encoding="utf-8")
        assert re.search(rf"^-- name: {name}\(.*\n-- route: read$", text, re.M), name
    assert all(named.kind.startswith("fetch") for name, named in catalogue().items() if named.read)


def test_a_route_travels_from_the_file_to_the_statement(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text(
        "-- name: one_read(x)$\n-- route: read\n-- reads one value\nSELECT :x::INTEGER;\n\n"
        "-- name: one_write(x)!\n-- writes nothing\nSELECT :x::INTEGER;\n"
    )
    loaded = load_catalogue(tmp_path)
    assert (loaded["one_read"].route, loaded["one_read"].doc) == ("read", "reads one value")
    assert loaded["one_write"].route == "write"
    assert loaded["one_read"].bind(x=1) == Statement(
        "one_read", "fetch_value", "SELECT $1::INTEGER;", (1,), True
    )
    assert loaded["one_write"].bind(x=1).read is False


@pytest.mark.parametrize("mark", ["-- route: replica", "-- route: read\n-- route: read"])
def test_an_unknown_or_repeated_route_is_refused(tmp_path: Path, mark: str) -> None:
    (tmp_path / "a.sql").write_text(f"-- name: one(x)$\n{mark}\n-- one\nSELECT :x::INTEGER;\n")
    with pytest.raises(ValueError, match="route: read"):
        load_catalogue(tmp_path)


def test_a_composed_statement_keeps_its_route() -> None:
    from pgstash.sql.composer import compose, fragment

    statement = compose(
        names.vectors_newest,
        slots={"table": "chunk"},
        fragments={"requirements": fragment(names.filter_everything)},
        candidates=1,
    )
    assert (
        statement.read
        and not compose(
            names.vectors_delete,
            slots={"table": "chunk"},
            fragments={"requirements": fragment(names.filter_everything)},
        ).read
    )


# -- the whole statement, printable -------------------------------------------------------------


@attrs.frozen
class Note:
    identifier: str
    topic: str = "general"


def test_show_prints_the_composed_statement_with_its_binds() -> None:
    run = pgstash("queries", "--show", "vectors_search", "--with", "table=chunk")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "-- vectors_search (queries/vectors.sql): route read, result fetch"
    parameters = names.vectors_search.parameters
    assert lines[1 : 1 + len(parameters)] == [f"-- ${n} = {p}" for n, p in enumerate(parameters, 1)]
    assert 'FROM "chunk"' in run.stdout and "WHERE (TRUE)" in run.stdout and "{" not in run.stdout


def test_show_refuses_a_point_the_statement_lacks_and_names_an_open_one() -> None:
    run = pgstash("queries", "--show", "vectors_search", "--with", "table=chunk", "--with", "tabel=x")
    assert run.returncode == 2 and "has no splice point tabel" in run.stderr
    run = pgstash("queries", "--show", "vectors_search")
    assert run.returncode == 2 and "--with table=" in run.stderr
    run = pgstash("queries", "--show", "no_such_query")
    assert run.returncode == 2 and "no query or template named 'no_such_query'" in run.stderr


async def test_show_prints_what_a_filtered_search_sends(postgres: Postgres) -> None:
    """The printed text is, byte for byte, the statement a filtered search sends."""
    index = PostgresVectorIndex(postgres)
    await index.create_table(Note, dimension=4, index=None, table="note")
    await index.index(
        Note,
        values=[Note("a", "x"), Note("b", "y")],
        attribute=lambda _: np.ones(4, np.float32),
        table="note",
    )
    sent: list[Statement] = []
    run_statement = postgres.run_statement

    async def recording(statement: Statement) -> Any:
        sent.append(statement)
        return await run_statement(statement)

    postgres.run_statement = recording  # type: ignore[method-assign]
    try:
        found = await index.search(
            Note,
            query=np.ones(4, np.float32),
            limit=1,
            table="note",
            requirements=AttributeRequirement.equal("topic", "x"),
        )
    finally:
        del postgres.run_statement
    assert [note.identifier for note in found] == ["a"]
    searched = [statement for statement in sent if statement.name == "vectors_search"]
    assert len(searched) == 1
    given = {"table": "note", "requirements": "filter_equal"}  # no ANN index: no scan gate
    shown = show("vectors_search", given)
    assert shown.sql == searched[0].sql
    assert len(shown.binds) == len(searched[0].args)
