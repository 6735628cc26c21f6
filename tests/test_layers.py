"""The package's import graph (issue 22, "Done means"): every import of `src/pgstash`,
`TYPE_CHECKING` ones included, points one way (no circle); the vector index's modules, and
every module of src/pgstash, are at most 300 lines; nothing under `pgstash.vectors` imports its
facade (`index.py`, or the package that re-exports it), and what writes (`vectors/write/`) and
what searches (`vectors/search/`) do not import each other: both take the call's `VectorTable`
and `SearchOptions` instead."""

from __future__ import annotations

import ast
from pathlib import Path

import pgstash

ROOT = Path(pgstash.__file__).parent


def module_of(path: Path) -> str:
    parts = ["pgstash", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """module -> the pgstash modules it imports (anywhere in the file; `from package import
    module` counts as an import of that module, not of the package)."""
    modules = {module_of(path): path for path in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                named = {f"{node.module}.{alias.name}" for alias in node.names}
                found |= (named & modules.keys()) or {node.module}
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[name] = {each for each in found if each in modules and each != name}
    return graph


def circle(graph: dict[str, set[str]], within: str) -> list[str] | None:
    """The first import circle among the modules under `within`, as the path that closes it."""
    state: dict[str, str] = {}
    nodes = sorted(module for module in graph if module.startswith(within))

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if not target.startswith(within):
                continue
            if state.get(target) == "open":
                return [*path, module, target]
            if target not in state and (found := visit(target, [*path, module])) is not None:
                return found
        state[module] = "done"
        return None

    for module in nodes:
        if module not in state and (found := visit(module, [])) is not None:
            return found
    return None


def test_no_package_of_pgstash_has_an_import_circle() -> None:
    graph = imports()
    packages = sorted({module.rsplit(".", 1)[0] for module in graph if module.count(".") >= 2})
    assert {package: circle(graph, package + ".") for package in packages} == dict.fromkeys(packages)


def test_the_vector_index_has_no_import_circle() -> None:
    assert circle(imports(), "pgstash.vectors") is None


def test_no_vector_module_is_over_300_lines() -> None:
    lengths = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in (ROOT / "vectors").rglob("*.py")
    }
    assert {name: n for name, n in lengths.items() if n > 300} == {}


def test_no_module_of_pgstash_is_over_300_lines() -> None:
    """STYLE's rule for the whole of src/pgstash: a module past 300 lines holds more than one
    concern; split it (as `embedded_server/` and `stores/instruction_values.py` were)."""
    lengths = {str(path.relative_to(ROOT)): len(path.read_text().splitlines()) for path in ROOT.rglob("*.py")}
    assert {name: n for name, n in lengths.items() if n > 300} == {}


def test_no_vector_module_reaches_back_up_into_the_facade() -> None:
    graph = imports()
    up = {"pgstash.vectors", "pgstash.vectors.index", "pgstash"}
    reaching = {
        module: sorted(graph[module] & up)
        for module in graph
        if module.startswith("pgstash.vectors.") and module != "pgstash.vectors.index" and graph[module] & up
    }
    assert reaching == {}


def test_writing_and_searching_do_not_import_each_other() -> None:
    graph = imports()
    crossing = {
        module: sorted(target for target in graph[module] if target.startswith(other))
        for side, other in (
            ("pgstash.vectors.write", "pgstash.vectors.search"),
            ("pgstash.vectors.search", "pgstash.vectors.write"),
        )
        for module in graph
        if module.startswith(side)
        if any(target.startswith(other) for target in graph[module])
    }
    assert crossing == {}


TESTS = Path(__file__).resolve().parent


def _module_file(module: str) -> Path | None:
    """The file under tests/ that `module` (dotted, from the repository's root) names, if any."""
    parts = module.split(".")
    if parts[0] != TESTS.name:
        return None
    base = TESTS.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_files(path: Path) -> set[Path]:
    """The files under tests/ that the module at `path` imports, anywhere in it (inside functions
    too); `from package import name` counts the module `package/name.py` when there is one."""
    package = ".".join(path.relative_to(TESTS.parent).with_suffix("").parts[:-1])
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            modules = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(file for module in modules if (file := _module_file(module)) is not None)
    return found


def test_no_test_imports_a_conftest_or_another_test_module() -> None:
    """Shared helpers live in tests/support/ (issue 22): a conftest holds fixtures and hooks only,
    and a test module is never imported, so neither is a helper library by accident."""
    reaching = {
        str(path.relative_to(TESTS.parent)): sorted(
            str(file.relative_to(TESTS.parent))
            for file in _imported_files(path)
            if file.name == "conftest.py" or file.name.startswith("test_")
        )
        for path in sorted(TESTS.rglob("*.py"))
    }
    assert {name: files for name, files in reaching.items() if files} == {}
