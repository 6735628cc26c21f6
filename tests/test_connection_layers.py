"""The connection package's shape (issue 22 item 3): every import, `TYPE_CHECKING` ones
included, points one way (no circle), no module is over 300 lines, and nothing reads asyncpg's
private attributes or tracks a connection by `id()`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pgstash.connection
from pgstash import PostgresConnectionPool

PACKAGE = Path(pgstash.connection.__file__).parent


def imports() -> dict[str, set[str]]:
    """module -> the modules of pgstash.connection it imports (anywhere in the file)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.glob("*.py"):
        name = f"pgstash.connection.{path.stem}" if path.stem != "__init__" else "pgstash.connection"
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[name] = {each for each in found if each.startswith("pgstash.connection.")}
    return graph


def test_the_connection_package_has_no_import_circle() -> None:
    graph = imports()
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            assert state.get(target) != "open", " -> ".join([*path, module, target])
            if target not in state:
                visit(target, [*path, module])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_no_connection_module_is_over_300_lines() -> None:
    lengths = {path.name: len(path.read_text().splitlines()) for path in PACKAGE.glob("*.py")}
    assert {name: n for name, n in lengths.items() if n > 300} == {}


def test_no_pool_proxy_internals_nor_connections_tracked_by_id() -> None:
    for path in PACKAGE.glob("*.py"):
        text = path.read_text()
        assert "._con" not in text and "_holders" not in text, path.name
        assert "id(connection" not in text and "id(scope.connection" not in text, path.name


def test_a_connection_class_of_the_callers_own_is_refused_by_name() -> None:
    """What pgstash knows of a connection lives on its own class (lifecycle.PgstashConnection)."""
    with pytest.raises(TypeError, match="connection_class is pgstash's own"):
        PostgresConnectionPool.of("postgresql://localhost/x", connection_class=object)
