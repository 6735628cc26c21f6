"""The catalogue of named SQL: every `.sql` file under `queries/`, loaded once with aiosql.

aiosql parses the `-- name:` blocks, checks their parameter lists and rewrites `:name`
parameters to asyncpg's `$n`. pgstash keeps the result as `Query` values: `Query.bind` makes a
`Statement` of one that has no splice points, `pgstash.sql.composer` the others.

A file of `-- fragment: name(params)` blocks holds fragments: SQL expressions spliced into
statements at `{name}` points (`queries/fragments/`: the payload filters and the scan gate). They
go through the same aiosql parsing (each block read as if it said `-- name:`), and are `Query`
values of kind "fragment", never run.

Each statement's route is in its file: a `-- route: read` line among its doc lines marks a read a
streaming replica may serve (outside a transaction); without it the statement runs on the primary.
Its result kind is aiosql's suffix on the `-- name:` line (`^` one row, `$` a value, `!` a status,
`*!` many, none: rows). So one `Query` is the whole plan of a named call: its text (named, `$n`),
its parameters in `$n` order, its kind and its route, computed once when the catalogue loads.

aiosql internals relied on: `QueryLoader` (per-file loading, so a name defined twice is refused
with both files named), `AsyncPGAdapter.var_sorted` (the only record of which name each `$n`
stands for), and `query_loader`'s `_QUERY_DEF` and `_remove_ml_comments` (`_blocks`: its
`load_query_data_from_sql` without the comment scan on a file that has no `/*`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
from aiosql.adapters.asyncpg import AsyncPGAdapter
from aiosql.query_loader import _QUERY_DEF, QueryLoader, _remove_ml_comments
from aiosql.types import QueryDatum, SQLOperationType

from pgstash.sql.resources import resource_dir
from pgstash.sql.statements import Statement, checked
from pgstash.sql.templates import Parameter, Slot, bound_inside_literals, named, pieces

__all__ = ["Query", "catalogue", "load_catalogue", "query"]

_NAME_LINE = re.compile(r"^--\s*name\s*:\s*([A-Za-z_][\w]*)", re.MULTILINE)
_FRAGMENT_LINE = re.compile(r"^--\s*fragment\s*:", re.MULTILINE)
_ROUTE_LINE = re.compile(r"^\s*route\s*:\s*(\S*)\s*$")
ROUTES = ("read", "write")  # `-- route: read`: a replica may serve it; the default: the primary

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
    read: bool = False  # `-- route: read` in its file: a replica may serve it
    # The `{name}` splice points, in order of first use (outside literals and comments).
    splice_points: tuple[str, ...] = attrs.field(init=False, eq=False, repr=False)
    _bindable: bool = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        points = tuple(dict.fromkeys(piece.name for piece in pieces(self.sql) if isinstance(piece, Slot)))
        object.__setattr__(self, "splice_points", points)
        object.__setattr__(self, "_bindable", self.kind != "fragment" and not points)

    @property
    def route(self) -> str:
        """ "read" (a replica may serve it, `-- route: read` in its file) or "write" (the primary)."""
        return "read" if self.read else "write"

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
        parameters = self.parameters
        if not self._bindable or len(values) != len(parameters):
            if not self._bindable:
                raise TypeError(f"{self.name} has splice points or is a fragment: use pgstash.sql.composer")
            self.arguments(values)  # raises TypeError naming what is missing or unexpected
        try:
            if len(parameters) == 1:
                args: tuple[Any, ...] = (values[parameters[0]],)
            else:
                args = tuple([values[name] for name in parameters])
        except KeyError:
            self.arguments(values)
            raise
        return checked(self.name, self.kind, self.sql, args, self.read)


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
        for datum in _blocks(loader, source, path):
            if kind == "fragment" and datum.operation_type != SQLOperationType.SELECT:
                raise ValueError(f"{path}: fragment {datum.query_name} takes no operation suffix")
            doc, route = _doc_and_route(path, datum.query_name, datum.doc_comments)
            if kind == "fragment" and route is not None:
                raise ValueError(f"{path}: fragment {datum.query_name} is never run alone: it takes no route")
            loaded = Query(
                name=datum.query_name,
                doc=doc,
                sql=named(datum.sql, datum.query_name) if name_statements and not kind else datum.sql,
                parameters=tuple(adapter.var_sorted[datum.query_name]),
                kind=kind or _KINDS[datum.operation_type],
                source=path,
                read=route == "read",
            )
            _check_parameters(loaded)
            found[loaded.name] = loaded
    return found


def _blocks(loader: QueryLoader, source: str, path: Path) -> list[QueryDatum]:
    """`loader.load_query_data_from_sql(source, [], path)`, but its `/* */` comment removal runs
    only when `source` has a `/*`: without one it returns the text unchanged, yet its regex (with
    an empty alternative) matches at every character, half the cost of loading the catalogue at
    import (the same per-block parsing, `floc` line numbers and errors as aiosql's)."""
    blocks = _QUERY_DEF.split(_remove_ml_comments(source) if "/*" in source else source)
    line = 1 + blocks[0].count("\n")
    data = []
    for block in blocks[1:]:
        data.append(loader._make_query_datum(block, [], (path, line)))
        line += block.count("\n")
    return data


def _doc_and_route(path: Path, name: str, comments: str) -> tuple[str, str | None]:
    """The doc line(s) of a block, and its `-- route:` mark (None when it has none)."""
    doc: list[str] = []
    route = None
    for line in comments.splitlines():
        mark = _ROUTE_LINE.match(line)
        if mark is None:
            doc.append(line.strip())
        elif mark.group(1) not in ROUTES or route is not None:
            raise ValueError(f"{path}: {name}: write `-- route: read` or `-- route: write`, once")
        else:
            route = mark.group(1)
    return " ".join(doc).strip(), route


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
