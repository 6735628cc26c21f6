"""docs/queries.md, the DBA's map from methods to named queries, checked against the code.

The page names queries as `name(parameters)` in backticks, indexes as `..._pkey` / `..._idx`, tests
as `test_...`, methods as `Class.method` in the first cell of a table row. Each claim of the page
that the code can settle is settled here: the queries exist with those parameters, every query
has a row, the indexes exist and serve the generic plans, each method runs the listed queries in
that order with that many round trips, and the GRANTs are exactly what the stores need.
"""

from __future__ import annotations

import inspect
import itertools
import json
import re
import secrets
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import attrs
import pytest
from bench.roundtrips import RoundTripCounter

from pgstash import (
    AttributeRequirement,
    DatabaseError,
    HashingEmbedding,
    ModelInput,
    Postgres,
    PostgresConfigurationRepository,
    PostgresConnectionPool,
    PostgresInstructionsRepository,
    PostgresModelMemory,
    PostgresVectorIndex,
)
from pgstash.cli.main import main
from pgstash.migrations import applied
from pgstash.sql.catalogue import Query, catalogue, load_catalogue
from pgstash.sql.resources import resource_dir
from pgstash.stores.listener import Listener
from tests.support.plans import plan_nodes
from tests.support.roles import as_role, login_roles
from tests.support.sqlcheck import TEMPLATE_SETUP, composed
from tests.support.statements import logged

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "queries.md"

# parameters as NAME(, NAME)*: a name repeated with an optional ", " could split a long name
# in exponentially many ways, each tried before a cell's fullmatch fails (8 s of this file)
QUERY_REF = re.compile(r"`([a-z_][a-z0-9_]*)\(((?:[a-z_][a-z0-9_]*(?:, [a-z_][a-z0-9_]*)*(?:, )?)?)\)`")
INDEX_REF = re.compile(r"`([a-z_][a-z0-9_]*_(?:pkey|idx))`")
TEST_REF = re.compile(r"`(?:(tests/[\w/]+\.py)::)?(test_\w+)`|`(tests/[\w/]+\.py)`")
METHOD_REF = re.compile(r"^`(\w+)\.(\w+)`")  # then, optionally, the case the row describes
STORES = (
    PostgresConfigurationRepository,
    PostgresInstructionsRepository,
    PostgresModelMemory,
    PostgresVectorIndex,
)


def every_query() -> dict[str, Query]:
    """The catalogue of queries/, and the vector-table templates of schema/templates/."""
    templates = resource_dir("schema") / "templates"
    return {**catalogue(), **(load_catalogue(templates) if templates.is_dir() else {})}


def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def rows() -> Iterator[list[str]]:
    """The cells of every table row of the page (header and rule rows included)."""
    for line in doc().splitlines():
        if line.startswith("|"):
            yield [cell.strip() for cell in line.strip().strip("|").split("|")]


def query_rows() -> dict[str, list[str]]:
    """The rows whose first cell is a query: query name -> cells."""
    found: dict[str, list[str]] = {}
    for cells in rows():
        match = QUERY_REF.fullmatch(cells[0])
        if match:
            assert match.group(1) not in found, f"{match.group(1)} has two rows in {DOC.name}"
            found[match.group(1)] = cells
    return found


def method_rows() -> dict[str, list[str]]:
    """The rows whose first cell is a store's method (and the case it describes): cell -> cells."""
    return {cells[0]: cells for cells in rows() if METHOD_REF.match(cells[0])}


# -- names ------------------------------------------------------------------------------------


def test_every_query_named_on_the_page_exists_with_its_parameters() -> None:
    queries = every_query()
    for match in QUERY_REF.finditer(doc()):
        name, parameters = match.group(1), match.group(2)
        assert name in queries, (
            f"{DOC.name} mentions `{name}({parameters})`, but no query of queries/ has that name "
            "(a renamed query? write SQL functions without parentheses)"
        )
        source = queries[name].source.read_text()
        declared = re.search(rf"^--\s*(?:name|fragment):\s*{name}\(([^)]*)\)", source, re.M)
        assert declared, f"no -- name: or -- fragment: line for {name} in {queries[name].source}"
        expected = ", ".join(part.strip() for part in declared.group(1).split(",") if part.strip())
        assert parameters == expected, f"{DOC.name}: `{name}({parameters})`, its -- name: line ({expected})"


def test_every_query_of_the_catalogue_has_a_row() -> None:
    missing = sorted(set(every_query()) - set(query_rows()))
    assert not missing, f"{DOC.name} has no 'served by' row for {missing}: add one per query"


def test_every_method_of_the_stores_has_a_row() -> None:
    public = {
        f"{store.__name__}.{name}"
        for store in STORES
        for cls in store.__mro__  # inherited methods (VersionedStore.prune) and classmethods too
        for name, member in vars(cls).items()
        if not name.startswith("_") and inspect.iscoroutinefunction(getattr(member, "__func__", member))
    }
    documented = {".".join(METHOD_REF.match(cell).groups()) for cell in method_rows()}  # type: ignore[union-attr]
    assert documented == public


def test_every_test_named_on_the_page_exists() -> None:
    function = re.compile(r"^(?:async )?def (test_\w+)", re.M)
    defined = {
        path.relative_to(ROOT).as_posix(): set(function.findall(path.read_text()))
        for path in (ROOT / "tests").rglob("test_*.py")
    }
    everywhere = set().union(*defined.values())
    for match in TEST_REF.finditer(doc()):
        path, name, bare_path = match.groups()
        if bare_path:
            assert bare_path in defined, f"{DOC.name} names {bare_path}, which does not exist"
        elif path:
            assert name in defined.get(path, set()), f"{DOC.name} names {path}::{name}, which does not exist"
        else:
            assert name in everywhere, f"{DOC.name} names {name}, which no test file defines"


# -- indexes ----------------------------------------------------------------------------------


async def fill(postgres: Postgres) -> None:
    """Enough rows that the planner prefers an index wherever one serves."""
    await postgres.execute(
        "INSERT INTO configurations (identifier, content, created) "
        "SELECT 'config-' || i, jsonb_build_object('i', i), "
        "       timestamptz '2024-01-01' + make_interval(secs => v) "
        "FROM generate_series(1, 10000) AS i, generate_series(1, 10) AS v"
    )
    await postgres.execute(
        "INSERT INTO instructions (name, content, created) "
        "SELECT 'prompt-' || i, 'revision ' || v, timestamptz '2024-01-01' + make_interval(secs => v) "
        "FROM generate_series(1, 10000) AS i, generate_series(1, 10) AS v"
    )
    await postgres.execute(  # schema/0010: each revision numbered, labels on some names, their moves
        "INSERT INTO instructions_revisions (name, revision, created) "
        "SELECT 'prompt-' || i, v, timestamptz '2024-01-01' + make_interval(secs => v) "
        "FROM generate_series(1, 10000) AS i, generate_series(1, 10) AS v"
    )
    await postgres.execute(
        "INSERT INTO instructions_labels (name, label, revision) "
        "SELECT 'prompt-' || i, 'production', 5 FROM generate_series(10, 10000, 10) AS i"
    )
    await postgres.execute(
        "INSERT INTO instructions_label_moves (name, label, moved, to_revision, moved_by) "
        "SELECT name, label, moved, revision, 'owner' FROM instructions_labels"
    )
    await postgres.execute(
        "INSERT INTO memories (identifier) SELECT 'memory-' || m FROM generate_series(1, 1000) AS m"
    )
    await postgres.execute(
        "INSERT INTO memories_elements (identifier, content, created) "
        "SELECT 'memory-' || (i % 1000 + 1), jsonb_build_object('type', 'model_input', 'content', 'n' || i), "
        "now() + i * interval '1 microsecond' FROM generate_series(1, 100000) AS i"
    )
    await postgres.execute(
        "INSERT INTO memories_variables (identifier, variables, created) "
        "SELECT 'memory-' || (i % 1000 + 1), jsonb_build_object('i', i), "
        "now() + i * interval '1 microsecond' FROM generate_series(1, 10000) AS i"
    )
    await postgres.execute("VACUUM ANALYZE")


async def test_the_documented_indexes_serve_generic_plans(postgres: Postgres) -> None:
    """Each row naming indexes is EXPLAINed as its generic plan: PREPAREd, with plan_cache_mode =
    force_generic_plan (EXPLAIN with bound values would plan for those values instead). Under the
    default `auto` the server runs this plan from the sixth execution on only while it is not
    costlier than the custom plans; the custom plans of the statements whose plan changes with
    volume are checked by tests/test_plans_at_scale.py, and the hot single-key ones by each
    store's own EXPLAIN test (EXPLAIN with bound values: the custom plan)."""
    existing = {row["indexname"] for row in await postgres.fetch("SELECT indexname FROM pg_indexes")}
    named = set(INDEX_REF.findall(doc()))
    assert named <= existing, f"{DOC.name} names indexes that migrate does not create: {named - existing}"
    await fill(postgres)
    checked = 0
    async with postgres.transaction(), postgres.connection() as connection:
        for statement in TEMPLATE_SETUP:
            await connection.execute(statement)
        await connection.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        for name, cells in query_rows().items():
            indexes = set(INDEX_REF.findall(cells[1]))
            if not indexes:
                continue
            named_query = catalogue()[name]
            sql = named_query.sql
            if named_query.is_template:
                sql = composed(named_query).sql
            await connection.execute(f"PREPARE documented AS {sql}")
            nulls = ", ".join("NULL" for _ in named_query.parameters)
            explained = await connection.fetchval(
                f"EXPLAIN (FORMAT JSON) EXECUTE documented{f'({nulls})' if nulls else ''}"
            )
            await connection.execute("DEALLOCATE documented")
            nodes = plan_nodes(json.loads(explained)[0]["Plan"])
            used = {node["Index Name"] for node in nodes if "Index Name" in node}
            used.update(index for node in nodes for index in node.get("Conflict Arbiter Indexes", ()))
            assert indexes <= used, f"{name}: {DOC.name} says {sorted(indexes)}, the plan uses {sorted(used)}"
            scanned = [node["Relation Name"] for node in nodes if node["Node Type"] == "Seq Scan"]
            assert not scanned, f"{name}: the generic plan reads {scanned} by a sequential scan"
            checked += 1
    assert checked >= 10


# -- methods: queries in order, round trips ----------------------------------------------------


@attrs.frozen
class Documented:
    model: str = "m"


@attrs.frozen
class Chunk:
    text: str
    topic: str


_LABELS = itertools.count()


def label_calls(instructions: PostgresInstructionsRepository) -> dict[str, Callable[[], Awaitable[object]]]:
    """The label methods (issue 27), each repeatable in any order the test runs them: moves set
    fresh labels, `remove_label` removes one of those, `rollback` restores a removed one (else
    undoes the setting of a set one); `remove` of the name forgets them all."""
    set_labels: list[str] = []
    removed: list[str] = []

    async def move() -> object:
        label = f"documented_{next(_LABELS)}"
        moved = await instructions.move_label("documented", label, to=1, expected=None)
        set_labels.append(label)
        return moved

    async def remove_label() -> object:
        label = set_labels.pop() if set_labels else "never_set"
        moved = await instructions.remove_label("documented", label)
        removed.append(label)
        return moved

    async def rollback() -> object:
        label = removed.pop() if removed else set_labels.pop() if set_labels else "never_set"
        return await instructions.rollback("documented", label)

    async def remove() -> object:
        set_labels.clear()
        removed.clear()
        return await instructions.remove("documented")

    prefix = "`PostgresInstructionsRepository."
    return {
        f'{prefix}available_instructions`, `label="production"`': lambda: instructions.available_instructions(
            label="production"
        ),
        f'{prefix}load`, `label="production"`': lambda: instructions.load("documented", label="production"),
        f"{prefix}load`, `revision=1`": lambda: instructions.load("documented", revision=1),
        f"{prefix}labels`": lambda: instructions.labels("documented"),
        f"{prefix}label_history`": lambda: instructions.label_history("documented", "production"),
        f"{prefix}move_label`": move,
        f"{prefix}remove_label`": remove_label,
        f"{prefix}rollback`": rollback,
        f"{prefix}diff`": lambda: instructions.diff("documented", 1, "latest"),
        f"{prefix}remove`": remove,
    }


def method_calls(postgres: Postgres) -> dict[str, Callable[[], Awaitable[object]]]:
    """Every documented method (by the first cell of its row), called so that the next succeeds,
    with caches off so that every read goes to the database (a cache hit runs no query)."""
    configurations = PostgresConfigurationRepository(postgres, cache_limit=0)
    instructions = PostgresInstructionsRepository(postgres, cache_limit=0)
    memory = PostgresModelMemory("documented", postgres=postgres)
    vectors = PostgresVectorIndex(postgres, embedding=HashingEmbedding(16))
    chunks = [Chunk(f"passage {i} on postgres", topic=f"topic-{i % 3}") for i in range(30)]
    topic = AttributeRequirement.equal("topic", "topic-1")
    prefix = "`PostgresConfigurationRepository."
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        f"{prefix}define`": lambda: configurations.define(Documented()),
        f"{prefix}load`": lambda: configurations.load(Documented),
        f"{prefix}load_raw`": lambda: configurations.load_raw("Documented"),
        f"{prefix}configurations`": configurations.configurations,
        f"{prefix}history`": lambda: configurations.history("Documented"),
        f"{prefix}remove`": lambda: configurations.remove("Documented"),
        f"{prefix}prune`": lambda: configurations.prune(keep=5),
    }
    prefix = "`PostgresInstructionsRepository."
    calls |= {
        f"{prefix}define`": lambda: instructions.define("documented", "Hello {user}"),
        f"{prefix}load`": lambda: instructions.load("documented"),
        f"{prefix}resolve`": lambda: instructions.resolve("documented", {"user": "Ada"}),
        f"{prefix}available_instructions`": instructions.available_instructions,
        f"{prefix}history`": lambda: instructions.history("documented"),
        f"{prefix}remove`": lambda: instructions.remove("documented"),
        f"{prefix}prune`": lambda: instructions.prune(older_than=timedelta(days=30)),
    }
    # the label methods between define and remove (which forgets their labels), prune last
    labelled = label_calls(instructions)
    prune = calls.pop(f"{prefix}prune`")
    calls.pop(f"{prefix}remove`")
    remove = labelled.pop(f"{prefix}remove`")
    calls |= labelled | {f"{prefix}remove`": remove, f"{prefix}prune`": prune}
    prefix = "`PostgresModelMemory."
    calls |= {
        f"{prefix}maintenance`": memory.maintenance,
        f"{prefix}remember`": lambda: memory.remember(ModelInput("hello"), variables={"n": 1}),
        f"{prefix}recall`": lambda: memory.recall(limit=10),
        f"{prefix}forget`": memory.forget,
        f"{prefix}forget_idle`": lambda: memory.forget_idle(timedelta(days=30), postgres=postgres),
    }
    prefix = "`PostgresVectorIndex."
    calls |= {
        f'{prefix}create_table`, `index="hnsw"`': lambda: vectors.create_table(Chunk, dimension=16),
        f'{prefix}create_table`, `index="ivfflat"`': lambda: vectors.create_table(
            Chunk, dimension=16, index="ivfflat", table="chunk_ivfflat"
        ),
        f"{prefix}create_table`, `index=None`": lambda: vectors.create_table(
            Chunk, dimension=16, index=None, table="chunk_exact"
        ),
        f"{prefix}index`": lambda: vectors.index(Chunk, values=chunks, attribute="text"),
        f"{prefix}search`, a query": lambda: vectors.search(Chunk, query="postgres", limit=5),
        f"{prefix}search`, a query and requirements": lambda: vectors.search(
            Chunk, query="postgres", limit=5, requirements=topic
        ),
        f"{prefix}search`, no query": lambda: vectors.search(Chunk, limit=5, requirements=topic),
        f"{prefix}search_scored`, a query": lambda: vectors.search_scored(Chunk, query="postgres", limit=5),
        f"{prefix}delete`": lambda: vectors.delete(Chunk, requirements=topic),
        f'{prefix}create_table`, `text="text"`': lambda: vectors.create_table(
            Chunk, dimension=16, text="text"
        ),
        f'{prefix}index`, `key="text"`': lambda: vectors.index(
            Chunk, values=chunks, attribute="text", key="text"
        ),
        f'{prefix}search`, `mode="text"`': lambda: vectors.search(
            Chunk, query="postgres", mode="text", limit=5
        ),
        f'{prefix}search`, `mode="hybrid"`': lambda: vectors.search(
            Chunk, query="postgres", mode="hybrid", limit=5
        ),
        f"{prefix}delete`, `keys=[...]`": lambda: vectors.delete(Chunk, keys=["passage 0 on postgres"]),
        f"{prefix}create_table`, `documents=True`": lambda: vectors.create_table(
            Chunk, dimension=16, documents=True
        ),
        f'{prefix}index`, `document="text"`': lambda: vectors.index(
            Chunk, values=chunks, attribute="text", document="text"
        ),
        f"{prefix}delete`, `documents=[...]`": lambda: vectors.delete(
            Chunk, documents=[chunk.text for chunk in chunks]
        ),
        f"{prefix}get`": lambda: vectors.get(Chunk, keys=["passage 1 on postgres", "passage 2 on postgres"]),
        f"{prefix}page`": lambda: vectors.page(Chunk, limit=10),
        f"{prefix}build_index`": lambda: vectors.build_index(Chunk),
    }
    return calls


async def test_each_method_runs_the_documented_queries(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The named queries each method runs, in order (every statement is logged through
    `Postgres.log` with its query's name), and its round trips counted on the wire."""
    ran = logged(monkeypatch)
    monkeypatch.setattr(Listener, "ping_interval", 3600.0)  # no pings on the wire while counting
    documented = method_rows()
    queries = every_query()
    async with (
        RoundTripCounter(database_dsn) as counter,
        PostgresConnectionPool.of(dsn=counter.dsn, min_size=1, max_size=1) as postgres,
    ):
        calls = method_calls(postgres)
        assert set(calls) == set(documented)
        for _ in range(2):  # prepares every statement on the one pooled connection
            for call in calls.values():
                await call()
        for method, call in calls.items():
            cells = documented[method]
            expected = [match.group(1) for match in QUERY_REF.finditer(cells[1])]
            trips = re.fullmatch(r"(\d+) / (\d+|-)", cells[2])
            assert trips, f"{method}: round trips are written 'outside / inside', not {cells[2]!r}"
            outside = int(trips.group(1))
            ran.clear()
            counter.reset()
            await call()
            ran[:] = [name for name in ran if name in queries]  # not the COPY, nor a schema/ file
            assert ran == expected, f"{method} runs {ran}; {DOC.name} says {expected}"
            assert counter.round_trips == outside, f"{method}: {counter.round_trips} round trips"
            if trips.group(2) == "-":  # outside a transaction only (CONCURRENTLY)
                continue
            inside = int(trips.group(2))
            async with postgres.transaction():
                ran.clear()
                counter.reset()
                await call()
                ran[:] = [name for name in ran if name in queries]
                assert ran == expected, f"{method} in a transaction runs {ran}"
                assert counter.round_trips == inside, f"{method} in a transaction: {counter.round_trips}"


# -- roles ------------------------------------------------------------------------------------

PRIVILEGE = r"[A-Z]+(?: \(\w+\))?"  # SELECT, or UPDATE (created)
GRANT = re.compile(rf"^GRANT ({PRIVILEGE}(?:, {PRIVILEGE})*) ON (\w+) TO pgstash_app;$", re.M)


async def denied(postgres: Postgres) -> list[DatabaseError]:
    """Runs every store method but the owner's `create_table`, and `pgstash status`'s migration
    read; the permission errors."""
    owner = (".create_table`", ".build_index`")  # DDL: the table owner's
    application = [call for row, call in method_calls(postgres).items() if not any(o in row for o in owner)]
    calls = [*application, lambda: applied(postgres)]
    errors: list[DatabaseError] = []
    for call in calls:
        try:
            await call()
        except DatabaseError as error:
            assert error.sqlstate == "42501", error
            errors.append(error)
        except LookupError:  # resolve after a define that was denied
            pass
    return errors


async def test_the_documented_grants_are_enough_and_each_is_needed(database_dsn: str) -> None:
    grants = [
        (table, privilege)
        for privileges, table in GRANT.findall(doc())
        for privilege in privileges.split(", ")
    ]
    assert grants, f"no GRANT ... TO pgstash_app; lines in {DOC.name}"
    unread = [line for line in doc().splitlines() if line.startswith("GRANT ") and not GRANT.fullmatch(line)]
    assert not unread, f"GRANT lines this test cannot read: {unread}"
    password = secrets.token_hex(16)
    async with PostgresConnectionPool.of(dsn=database_dsn) as owner:  # the owner makes the vector tables
        for row, call in method_calls(owner).items():
            if ".create_table`" in row:
                await call()
    admin = await asyncpg.connect(database_dsn)
    try:
        async with login_roles(admin, "pgstash_app", password=password) as (role,):
            for table, privilege in grants:
                await admin.execute(f"GRANT {privilege} ON {table} TO {role}")
            async with PostgresConnectionPool.of(dsn=as_role(database_dsn, role, password)) as postgres:
                assert await denied(postgres) == []
                with pytest.raises(DatabaseError) as refused:  # DDL is the owner's (on a table not yet made)
                    await PostgresVectorIndex(postgres).create_table(Chunk, dimension=16, table="chunk_new")
                assert refused.value.sqlstate == "42501"
                for table, privilege in grants:
                    await admin.execute(f"REVOKE {privilege} ON {table} FROM {role}")
                    errors = await denied(postgres)
                    await admin.execute(f"GRANT {privilege} ON {table} TO {role}")
                    assert any(f"permission denied for table {table}" in str(error) for error in errors), (
                        f"{privilege} ON {table} is granted by {DOC.name} but no call needs it"
                    )
    finally:
        await admin.close()


# -- the command ------------------------------------------------------------------------------


def test_the_queries_command_lists_every_query_with_its_doc_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["queries"]) == 0
    printed = capsys.readouterr().out
    for named in every_query().values():
        signature = f"{named.name}({', '.join(named.parameters)})"
        if named.kind == "fragment":  # marked, with its splice points
            signature = "fragment " + signature + "".join(f" {{{point}}}" for point in named.splice_points)
        assert f"  {signature}\n      {named.doc}\n" in printed
    assert "| Conversational memory" in printed  # memory.sql's header comment, under its file
    assert "$1" not in printed
    assert main(["queries", "--sql"]) == 0
    with_sql = capsys.readouterr().out
    assert "WHERE identifier = $1" in with_sql and ":identifier" not in with_sql
