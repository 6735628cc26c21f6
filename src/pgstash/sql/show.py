"""The whole statement a named call sends, printable (`pgstash queries --show NAME --with ...`).

A template's splice points are filled as the code fills them: `--with table=chunk` puts a quoted
identifier at `{table}` (digits an integer, `'text'` a constant), `--with requirements=filter_equal`
splices that fragment (in parentheses, its parameters renumbered), and a fragment's own points
are named by their path (`--with requirements=vectors_scan_gate --with
requirements.requirements=filter_equal`). A `{requirements}` point left open gets
`filter_everything` (TRUE), what a call without requirements sends. The text is composed by
`pgstash.sql.composer`, the one place SQL is put together, so `$n` is numbered as sent; the list
of what each `$n` binds comes with it.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from pgstash.sql.catalogue import Query, catalogue, load_catalogue
from pgstash.sql.composer import Fragment, compose, fragment
from pgstash.sql.resources import resource_dir
from pgstash.sql.templates import Constant, SlotValue

__all__ = ["Shown", "every_query", "show"]

_OPEN_BY_DEFAULT = {"requirements": "filter_everything"}


@attrs.frozen
class Shown:
    """A statement as sent: its query, its `$n` text, and what each `$n` binds (`binds[n-1]`)."""

    query: Query
    sql: str
    binds: tuple[str, ...]

    def text(self) -> str:
        """The statement with a comment block naming it, its route, kind and parameters."""
        root = resource_dir("queries").parent
        source = self.query.source
        where = source.relative_to(root).as_posix() if source.is_relative_to(root) else str(source)
        lines = [
            f"-- {self.query.name} ({where}): route {self.query.route}, result {self.query.kind}",
            *(f"-- ${number} = {bind}" for number, bind in enumerate(self.binds, 1)),
            self.sql.strip(),
        ]
        return "\n".join(lines)


def every_query() -> dict[str, Query]:
    """The queries of `queries/` and the vector-table templates of `schema/templates/`, named."""
    templates = resource_dir("schema") / "templates"
    found = load_catalogue(templates, name_statements=True) if templates.is_dir() else {}
    return {**catalogue(), **found}


def show(name: str, given: Mapping[str, str]) -> Shown:
    """The statement `name` with its splice points filled from `given` (see the module); an
    unknown name, point or fragment raises `ValueError` naming it."""
    queries = every_query()
    if name not in queries:
        raise ValueError(f"no query or template named {name!r} (pgstash queries lists them)")
    named = queries[name]
    used: set[str] = set()
    if named.kind == "fragment":
        spliced = _fragment(named, "", given, queries, used)
        composed_sql, binds = spliced.sql, tuple(str(arg) for arg in spliced.args)
    else:
        slots, fragments = _fill(named, "", given, queries, used)
        statement = compose(named, slots=slots, fragments=fragments, **_labels(named, ""))
        composed_sql, binds = statement.sql, tuple(str(arg) for arg in statement.args)
    unused = sorted(set(given) - used)
    if unused:
        raise ValueError(f"{name} has no splice point {', '.join(unused)}")
    return Shown(named, composed_sql, binds)


def _labels(named: Query, path: str) -> dict[str, str]:
    """Each parameter bound to its own label, so the composed arguments name every `$n`."""
    prefix = f"{path}: {named.name}." if path else ""
    return {parameter: f"{prefix}{parameter}" for parameter in named.parameters}


def _fill(
    named: Query, path: str, given: Mapping[str, str], queries: Mapping[str, Query], used: set[str]
) -> tuple[dict[str, SlotValue], dict[str, Fragment]]:
    slots: dict[str, SlotValue] = {}
    fragments: dict[str, Fragment] = {}
    for point in named.splice_points:
        key = f"{path}.{point}" if path else point
        value = given.get(key)
        if value is None:
            value = _OPEN_BY_DEFAULT.get(point)
            if value is None:
                raise ValueError(f"{named.name}: splice point {{{point}}} needs a value: --with {key}=...")
        else:
            used.add(key)
        spliced = queries.get(value)
        if spliced is not None and spliced.kind == "fragment":
            fragments[point] = _fragment(spliced, key, given, queries, used)
        else:
            slots[point] = _slot(value)
    return slots, fragments


def _fragment(
    named: Query, path: str, given: Mapping[str, str], queries: Mapping[str, Query], used: set[str]
) -> Fragment:
    slots, fragments = _fill(named, path, given, queries, used)
    return fragment(named, slots=slots, fragments=fragments, **_labels(named, path))


def _slot(value: str) -> SlotValue:
    """An identifier, digits as an integer, or `'text'` as a constant."""
    if value.isdigit():
        return int(value)
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return Constant(value[1:-1])
    return value
