"""A real corpus every machine with Python has: the docstrings of the standard library.

Read from the source files with `ast` (nothing is imported, so no module runs), one passage per
module, class or function docstring. Used by `pgstash demo` and the benchmarks' smoke data.
"""

from __future__ import annotations

import ast
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import attrs

__all__ = ["Passage", "stdlib_passages"]

# Folders of the standard library that hold tests, tools or vendored code rather than the API.
_SKIPPED = {
    "test",
    "tests",
    "idlelib",
    "lib2to3",
    "site-packages",
    "dist-packages",
    "__pycache__",
    "turtledemo",
}


@attrs.frozen(slots=True)
class Passage:
    """One docstring: where it comes from, what kind of object has it, and its text."""

    module: str
    name: str
    kind: str  # "module", "class" or "function"
    text: str


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _passages(module: str, tree: ast.Module) -> Iterator[Passage]:
    doc = ast.get_docstring(tree)
    if doc:
        yield Passage(module, module, "module", doc)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node)
            if doc and not node.name.startswith("_"):
                kind = "class" if isinstance(node, ast.ClassDef) else "function"
                yield Passage(module, f"{module}.{node.name}", kind, doc)


def stdlib_passages(limit: int | None = None, min_length: int = 40) -> list[Passage]:
    """Docstrings of the standard library's public modules, classes and functions, in a stable
    order (sorted by file), at least `min_length` characters each, at most `limit` of them."""
    root = Path(sysconfig.get_paths()["stdlib"])
    found: list[Passage] = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root).parts
        if any(part in _SKIPPED or (part.startswith("_") and part != "__init__.py") for part in relative):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue  # a few files are deliberately broken or not UTF-8
        for passage in _passages(_module_name(root, path), tree):
            if len(passage.text) >= min_length:
                found.append(passage)
                if limit is not None and len(found) >= limit:
                    return found
    return found
