"""The catalogue of named SQL: every `.sql` file under `queries/`, loaded once with aiosql.

aiosql parses the `-- name:` blocks, checks their parameter lists and rewrites `:name`
parameters to asyncpg's `$n`. pgstash keeps the result as `Query` values: `Query.bind` makes a
`Statement` of one that has no splice points, `pgstash.sql.composer` the others.

A file of `-- fragment: name(params)` blocks holds fragments: SQL expressions spliced into
statements at `{name}` points (`queries/filters.sql`). They go through the same aiosql parsing
(each block read as if it said `-- name:`), and are `Query` values of kind "fragment", never run.

aiosql internals relied on: `QueryLoader` (per-file loading, so a name defined twice is refused
with both files named) and `AsyncPGAdapter.var_sorted` (the only record of which name each `$n`
stands for).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from aiosql.adapters.asyncpg import AsyncPGAdapter
from aiosql.query_loader import QueryLoader
from aiosql.types import SQLOperationType

from pgstash.sql.resources import resource_dir
from pgstash.sql.statements import Statement
from pgstash.sql.templates import Parameter, Slot, bound_inside_literals, named, pieces

__all__ = ["Query", "catalogue", "load_catalogue", "query"]

_NAME_LINE = re.compile(r"^--\s*name\s*:\s*([A-Za-z_][\w]*)", re.MULTILINE)
_FRAGMENT_LINE = re.compile(r"^--\s*fragment\s*:", re.MULTILINE)

_KINDS = {
    SQLOperationType.SELECT: "fetch",
    SQLOperationType.SELECT_ONE: "fetch_one",
    SQLOperationType.SELECT_VALUE: "fetch_value",
    SQLOperationType.INSERT_RETURNING: "fetch_one",
    SQLOperationType.INSERT_UPDATE_DELETE: "execute",
    SQLOperationType.INSERT_UPDATE_DELETE_MANY: "execute_many",
    SQLOperationType.SCRIPT: "execute",
}


@attrs.frozen(slots=True)
class Query:
    """One named statement, or fragment (`kind == "fragment"`). `sql` uses asyncpg's `$n`;
    `parameters` names them in that order; `{name}` marks a splice point."""

    name: str
    doc: str
    sql: str
    parameters: tuple[str, ...]
    kind: str
    source: Path

    @property
    def splice_points(self) -> tuple[str, ...]:
        """The `{name}` splice points, in order of first use (outside literals and comments)."""
        return tuple(dict.fromkeys(piece.name for piece in pieces(self.sql) if isinstance(piece, Slot)))

    @property
    def is_template(self) -> bool:
        """Whether the statement has `{name}` splice points to fill (with `compose`) first."""
        return bool(self.splice_points)

    def arguments(self, values: Mapping[str, object]) -> list[object]:
        """The values in `$n` order; a missing or unexpected name raises `TypeError`."""
        missing = [name for name in self.parameters if name not in values]
        extra = [name for name in values if name not in self.parameters]
        if missing or extra:
            raise TypeError(
                f"query {self.name!r} takes ({', '.join(self.parameters)}); "
                f"missing {missing or 'none'}, unexpected {extra or 'none'}"
            )
        return [values[name] for name in self.parameters]

    def bind(self, **values: Any) -> Statement:
        """This statement with its parameters bound by name, ready to run. A fragment, or a
        statement with splice points, raises `TypeError` (use `pgstash.sql.composer`)."""
        if self.kind == "fragment" or self.is_template:
            raise TypeError(f"{self.name} has splice points or is a fragment: use pgstash.sql.composer")
        return Statement(self.name, self.kind, self.sql, self.arguments(values))


def load_catalogue(folder: Path, *, name_statements: bool = False) -> dict[str, Query]:
    """Every named query and fragment under `folder`, by name. A name defined twice, in one file or
    in two, raises `ValueError`: aiosql would silently keep only the last. So does a file that
    mixes `-- name:` and `-- fragment:` blocks, and a parameter aiosql bound inside a string
    literal or a comment. `name_statements`: each statement (not a fragment) carries its name in a
    comment (`SELECT /* pgstash:memory_recall */ ...`, `templates.named`), as pgstash sends its
    own, so that the DBA finds it in pg_stat_statements, pg_stat_activity and the log."""
    adapter = AsyncPGAdapter()  # type: ignore[no-untyped-call]
    loader = QueryLoader(adapter, None, attribute=None, mandatory_parameters=True)
    found: dict[str, Query] = {}
    for path in sorted(folder.rglob("*.sql")):
        source = path.read_text(encoding="utf-8")
        names = _NAME_LINE.findall(source)
        kind = None
        if _FRAGMENT_LINE.search(source):
            if names:
                raise ValueError(
                    f"{path} mixes -- name: and -- fragment: blocks; keep fragments in their own file"
                )
            source = _FRAGMENT_LINE.sub("-- name:", source)
            names = _NAME_LINE.findall(source)
            kind = "fragment"
        try:
            hidden = bound_inside_literals(source)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        if hidden:
            raise ValueError(
                f"{path}: aiosql would bind {sorted(set(hidden))} inside a string literal or a comment "
                "(E'...', $$...$$, or a -- comment after code); reword the text"
            )
        for name in names:
            if name in found or names.count(name) > 1:
                other = found[name].source if name in found else path
                raise ValueError(f"query {name!r} is defined twice: in {other} and in {path}")
        for datum in loader.load_query_data_from_sql(source, [], path):
            if kind == "fragment" and datum.operation_type != SQLOperationType.SELECT:
                raise ValueError(f"{path}: fragment {datum.query_name} takes no operation suffix")
            loaded = Query(
                name=datum.query_name,
                doc=" ".join(line.strip() for line in datum.doc_comments.splitlines()).strip(),
                sql=named(datum.sql, datum.query_name) if name_statements and not kind else datum.sql,
                parameters=tuple(adapter.var_sorted[datum.query_name]),
                kind=kind or _KINDS[datum.operation_type],
                source=path,
            )
            _check_parameters(loaded)
            found[loaded.name] = loaded
    return found


def _check_parameters(named: Query) -> None:
    """Every `$n` aiosql numbered must be a parameter in the SQL text, not inside a literal or a
    comment (aiosql does not skip `--`, `/* */`, `E'...'` or `$$...$$`)."""
    try:
        used = {piece.number for piece in pieces(named.sql) if isinstance(piece, Parameter)}
    except ValueError as error:
        raise ValueError(f"{named.source}: {named.name}: {error}") from None
    if used != set(range(1, len(named.parameters) + 1)):
        hidden = [name for number, name in enumerate(named.parameters, 1) if number not in used]
        raise ValueError(
            f"{named.source}: {named.name}: parameter(s) {hidden} appear only inside a string literal "
            "or a comment, where aiosql still binds them; reword the text"
        )


@functools.cache
def catalogue() -> Mapping[str, Query]:
    """pgstash's own queries, loaded once per process."""
    return load_catalogue(resource_dir("queries"), name_statements=True)


def query(name: str) -> Query:
    """The named query, or `KeyError` naming the files it was looked for in."""
    try:
        return catalogue()[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} under {resource_dir('queries')}") from None
