"""docs/queries.md's "Plans at volume" table, checked against EXPLAIN ANALYZE on filled tables.

Each row names a query, the plan nodes PostgreSQL picks for it (`Node Type`, or `Node Type on
index`) and the nodes it never runs. The tables are filled to the smallest volume that shows the
plans of the issue's volume (10,000 keys x 50 versions; a 20,000-element memory among 1,000,000):
500 keys x 50 versions already turn the old `DISTINCT` listings into a sequential scan and a sort,
and a 20,000-element memory among as many others' elements turns the old unlimited recall into a
bitmap scan and a sort. Each statement is PREPAREd and run both ways the server may run it (a
custom plan for these values, and the generic plan), since `plan_cache_mode = auto` picks either.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pgstash import Postgres
from pgstash.sql.catalogue import catalogue

pytestmark = pytest.mark.scale

DOC = Path(__file__).resolve().parent.parent / "docs" / "queries.md"
QUERY = re.compile(r"`([a-z_][a-z0-9_]*)\(")
NODE = re.compile(r"^(?P<type>[A-Z][A-Za-z ]+?)(?: on `(?P<index>\w+)`)?$")

# The values each documented statement is run with.
VALUES: dict[str, dict[str, Any]] = {
    "configurations_identifiers": {},
    "instructions_declarations": {},
    "memory_recall": {"identifier": "big", "element_limit": None, "before": None},
    "configurations_prune": {"keep": 10, "older_than": None},
    "instructions_prune": {"keep": 1, "older_than": datetime(2024, 1, 1, 0, 0, 30, tzinfo=UTC)},
    "memory_forget_idle": {"idle_before": datetime(2024, 1, 1, tzinfo=UTC), "lock_only": False},
}


def documented_plans() -> dict[str, tuple[list[str], list[str]]]:
    """query name -> (nodes picked, nodes never run), from the "Plans at volume" section."""
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("\n## Plans at volume\n") :]
    section = section[: section.find("\n## ", 1)]
    plans: dict[str, tuple[list[str], list[str]]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = QUERY.match(cells[0]) if line.startswith("|") else None
        if match:
            plans[match.group(1)] = (cells[1].split("; "), cells[2].split("; "))
    return plans


def literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def executed(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan] if plan.get("Actual Loops", 0) > 0 else []
    for child in plan.get("Plans", []):
        nodes.extend(executed(child))
    return nodes


async def fill(postgres: Postgres) -> None:
    await postgres.execute(
        "INSERT INTO configurations (identifier, content, created) "
        "SELECT 'config-' || i, jsonb_build_object('i', i, 'model', 'some-model', 'temperature', 0.5), "
        "timestamptz '2024-01-01' + make_interval(secs => v) "
        "FROM generate_series(1, 500) AS i, generate_series(1, 50) AS v"
    )
    await postgres.execute(
        "INSERT INTO instructions (name, description, content, arguments, meta, created) "
        "SELECT 'prompt-' || i, 'prompt ' || i, repeat('revision text ', 20) || v, "
        '\'[{"name": "user", "description": null, "required": true}]\', \'{"owner": "team"}\', '
        "timestamptz '2024-01-01' + make_interval(secs => v) "
        "FROM generate_series(1, 500) AS i, generate_series(1, 50) AS v"
    )
    await postgres.execute(
        "INSERT INTO memories (identifier, created) "
        "SELECT 'memory-' || m, timestamptz '2023-01-01' FROM generate_series(1, 1000) AS m "
        "UNION ALL SELECT 'big', timestamptz '2023-01-01'"
    )
    await postgres.execute(  # the big memory's elements interleaved with the others'
        "INSERT INTO memories_elements (identifier, content, created) "
        "SELECT CASE WHEN i % 2 = 0 THEN 'big' ELSE 'memory-' || (i % 1000 + 1) END, "
        "jsonb_build_object('type', 'model_input', 'content', repeat('word ', 40) || i, "
        "'tool_responses', '[]'::jsonb, 'meta', '{}'::jsonb), "
        "timestamptz '2024-01-01' + i * interval '1 millisecond' FROM generate_series(1, 40000) AS i"
    )
    await postgres.execute(
        "INSERT INTO memories_variables (identifier, variables, created) "
        "SELECT CASE WHEN i % 2 = 0 THEN 'big' ELSE 'memory-' || (i % 1000 + 1) END, "
        "jsonb_build_object('turn', i), timestamptz '2024-01-01' + i * interval '1 millisecond' "
        "FROM generate_series(1, 10000) AS i"
    )
    await postgres.execute("VACUUM ANALYZE")


async def test_the_documented_plans_are_the_plans_postgresql_picks_at_volume(postgres: Postgres) -> None:
    plans = documented_plans()
    assert set(plans) == set(VALUES), f"{DOC.name}'s 'Plans at volume' rows and this test's values differ"
    await fill(postgres)
    async with postgres.session(), postgres.connection() as connection:
        for name, (picked, never) in plans.items():
            named = catalogue()[name]
            await connection.execute(f"PREPARE documented AS {named.sql}")
            arguments = ", ".join(literal(value) for value in named.arguments(VALUES[name]))
            for mode in ("force_custom_plan", "force_generic_plan"):
                await connection.execute(f"SET plan_cache_mode = {mode}")
                transaction = connection.transaction()  # the deletes run, then are rolled back
                await transaction.start()
                try:
                    explained = await connection.fetchval(
                        f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE documented"
                        f"{f'({arguments})' if arguments else ''}"
                    )
                finally:
                    await transaction.rollback()
                nodes = executed(json.loads(explained)[0]["Plan"])
                for expected in picked:
                    node = NODE.match(expected)
                    assert node, f"{name}: cannot read {expected!r}"
                    assert any(_is(found, node) for found in nodes), (
                        f"{name} ({mode}): {DOC.name} says {expected}; the plan runs {_summary(nodes)}"
                    )
                for absent in never:
                    node = NODE.match(absent)
                    assert node, f"{name}: cannot read {absent!r}"
                    ran = [found for found in nodes if _is(found, node)]
                    assert not ran, (
                        f"{name} ({mode}): {DOC.name} says never {absent}; it runs {_summary(nodes)}"
                    )
            await connection.execute("DEALLOCATE documented")
        await connection.execute("RESET plan_cache_mode")


def _is(found: dict[str, Any], node: re.Match[str]) -> bool:
    """Whether a plan node is the documented `Node Type` (`on` its index or table)."""
    on = found.get("Index Name", found.get("Relation Name"))
    return bool(_type(found) == node["type"] and node["index"] in (None, on))


def _type(found: dict[str, Any]) -> str:
    """The node type as text EXPLAIN writes it: `Index Scan Backward`, `Seq Scan`, ..."""
    backward = found.get("Scan Direction") == "Backward"
    return f"{found['Node Type']} Backward" if backward else str(found["Node Type"])


def _summary(nodes: list[dict[str, Any]]) -> list[str]:
    return [
        f"{node['Node Type']} {node.get('Index Name', node.get('Relation Name', ''))}".strip()
        for node in nodes
    ]


# -- instructions labels (issue 27): every statement of queries/instructions_labels.sql ------------

LABEL_KEY = "instructions_labels_pkey|instructions_labels_label_idx"
REVISIONS_KEY = "instructions_revisions_pkey|instructions_revisions_created_key"  # a name's range
REVISION_KEY = "instructions_revisions_pkey"
MOVES_KEY = "instructions_label_moves_pkey"
LABELLED_TABLES = {
    "instructions",
    "instructions_revisions",
    "instructions_labels",
    "instructions_label_moves",
}
PAST = datetime(2023, 1, 1, tzinfo=UTC)
LABEL_VALUES: dict[str, tuple[dict[str, Any], set[str]]] = {
    # query -> (values, indexes the plan must use; "a|b": either, the planner picks one of two
    # unique paths to one (name, label) row)
    "instructions_latest": (
        {"name": "prompt-77"},
        {"instructions_pkey", "instructions_revisions_created_key"},
    ),
    "instructions_labelled": (
        {"name": "prompt-70", "label": "production"},
        {LABEL_KEY, "instructions_revisions_pkey", "instructions_pkey"},
    ),
    "instructions_numbered": (
        {"name": "prompt-77", "revision": 12},
        {"instructions_revisions_pkey", "instructions_pkey"},
    ),
    "instructions_history_numbered": ({"name": "prompt-77"}, {"instructions_pkey"}),
    "instructions_number": (
        {
            "name": "prompt-70",
            "created": datetime(2024, 1, 1, 0, 0, 50, tzinfo=UTC),
            "why": "why",
            "labels": ["production", "staging"],
            "kind": "text",
            "config": None,
        },
        {"instructions_pkey", "instructions_revisions_pkey"},
    ),
    "instructions_label_current": ({"name": "prompt-70", "label": "production"}, {LABEL_KEY}),
    "instructions_revision_exists": ({"name": "prompt-70", "revision": 3}, {REVISION_KEY}),
    "instructions_label_move": (
        {"name": "prompt-70", "label": "production", "revision": 30, "undoes": None},
        {LABEL_KEY, "instructions_label_moves_pkey"},
    ),
    "instructions_label_last_move": ({"name": "prompt-70", "label": "production"}, {MOVES_KEY}),
    "instructions_label_history": ({"name": "prompt-70", "label": "production"}, {MOVES_KEY}),
    "instructions_latest_history": ({"name": "prompt-70"}, {REVISIONS_KEY}),
    "instructions_labels_of": ({"name": "prompt-70"}, {"instructions_pkey", "instructions_labels_pkey"}),
    "instructions_labelled_declarations": ({"label": "staging"}, {"instructions_labels_label_idx"}),
    "instructions_remove_labelled": ({"name": "prompt-70"}, {"instructions_pkey", REVISIONS_KEY}),
    "instructions_prune_labelled": ({"keep": 10, "older_than": PAST}, {"instructions_pkey"}),
}


def _literal(value: object) -> str:
    if isinstance(value, list):
        return "ARRAY[" + ", ".join(literal(item) for item in value) + "]::TEXT[]"
    return literal(value)


async def fill_labels(postgres: Postgres) -> None:
    """500,000 revisions (10,000 names x 50), each numbered; production on every tenth name,
    staging on every twentieth, each label moved three times."""
    await postgres.execute(
        "INSERT INTO instructions (name, content, created) SELECT 'prompt-' || i, 'revision ' || v, "
        "timestamptz '2024-01-01' + make_interval(secs => v) "
        "FROM generate_series(1, 10000) AS i, generate_series(1, 50) AS v"
    )
    await postgres.execute(
        "INSERT INTO instructions_revisions (name, revision, created, author) SELECT 'prompt-' || i, v, "
        "timestamptz '2024-01-01' + make_interval(secs => v), 'author' "
        "FROM generate_series(1, 10000) AS i, generate_series(1, 50) AS v"
    )
    await postgres.execute(
        "INSERT INTO instructions_labels (name, label, revision) "
        "SELECT 'prompt-' || i, 'production', 25 FROM generate_series(10, 10000, 10) AS i "
        "UNION ALL SELECT 'prompt-' || i, 'staging', 40 FROM generate_series(20, 10000, 20) AS i"
    )
    await postgres.execute(
        "INSERT INTO instructions_label_moves (name, label, moved, from_revision, to_revision, moved_by) "
        "SELECT l.name, l.label, timestamptz '2024-02-01' + make_interval(secs => m), "
        "nullif(l.revision - 4 + m, l.revision - 3), l.revision - 3 + m, 'author' "
        "FROM instructions_labels AS l, generate_series(1, 3) AS m"
    )
    await postgres.execute("VACUUM ANALYZE")


async def test_the_label_statements_use_their_keys_at_500000_revisions(postgres: Postgres) -> None:
    """Every statement of queries/instructions_labels.sql, EXPLAIN ANALYZEd as a custom and as a
    generic plan on 500,000 numbered revisions: the keys it is documented to use, and no
    sequential scan of the four tables (a write runs, then is rolled back)."""
    named = {name for name in catalogue() if name.startswith("instructions_")}
    unchecked = {"instructions_labels_installed"}  # a catalogue lookup, no table
    labelled = {name for name in named if catalogue()[name].source.name == "instructions_labels.sql"}
    assert labelled - unchecked == set(LABEL_VALUES)
    await fill_labels(postgres)
    async with postgres.session(), postgres.connection() as connection:
        for name, (values, indexes) in LABEL_VALUES.items():
            statement = catalogue()[name]
            await connection.execute(f"PREPARE labelled AS {statement.sql}")
            arguments = ", ".join(_literal(value) for value in statement.arguments(values))
            for mode in ("force_custom_plan", "force_generic_plan"):
                await connection.execute(f"SET plan_cache_mode = {mode}")
                transaction = connection.transaction()
                await transaction.start()
                try:
                    explained = await connection.fetchval(
                        f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE labelled({arguments})"
                    )
                finally:
                    await transaction.rollback()
                nodes = executed(json.loads(explained)[0]["Plan"])
                used = {node["Index Name"] for node in nodes if "Index Name" in node}
                missing = {index for index in indexes if not set(index.split("|")) & used}
                assert not missing, f"{name} ({mode}): uses {sorted(used)}, not {sorted(missing)}"
                scanned = {node["Relation Name"] for node in nodes if node["Node Type"] == "Seq Scan"}
                assert not scanned & LABELLED_TABLES, f"{name} ({mode}): sequential scan of {scanned}"
            await connection.execute("DEALLOCATE labelled")
        await connection.execute("RESET plan_cache_mode")
