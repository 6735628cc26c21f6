"""The catalogue of named SQL: every `.sql` file under `queries/`, loaded once with aiosql.

aiosql parses the `-- name:` blocks, checks their parameter lists and rewrites `:name`
parameters to asyncpg's `$n`. pgstash keeps the result as `Query` values and runs them through
`Postgres.run` (logging, errors with the query's name and SQLSTATE, the transaction in scope).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs
from aiosql.adapters.asyncpg import AsyncPGAdapter
from aiosql.query_loader import QueryLoader
from aiosql.types import SQLOperationType

from pgstash.resources import resource_dir
from pgstash.statements import Statement

__all__ = ["Query", "catalogue", "load_catalogue", "query"]

_NAME_LINE = re.compile(r"^--\s*name\s*:\s*([A-Za-z_][\w]*)", re.MULTILINE)
_PARAMETER = re.compile(r"(?<![:\w\\]):([A-Za-z_]\w*)")

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
    """One named statement. `sql` uses asyncpg's `$n`; `parameters` names them in that order;
    `text` is the statement as written, with `:name` parameters and `{slot}` identifiers."""

    name: str
    doc: str
    sql: str
    text: str
    parameters: tuple[str, ...]
    kind: str
    source: Path

    @property
    def is_template(self) -> bool:
        """Whether the statement has `{slot}` identifiers to fill before it runs."""
        return re.search(r"\{[a-z_]+\}", self.sql) is not None

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

    def bind(self, **values: object) -> Statement:
        """The statement with its parameters bound by name (`TypeError` for a missing or
        unexpected one). A template query is composed instead (`pgstash.composer`)."""
        return Statement(self.name, self.kind, self.sql, tuple(self.arguments(values)))


def load_catalogue(folder: Path) -> dict[str, Query]:
    """Every named query under `folder`, by name. A name defined twice, in one file or in two,
    raises `ValueError`: aiosql would silently keep only the last."""
    adapter = AsyncPGAdapter()  # type: ignore[no-untyped-call]
    loader = QueryLoader(adapter, None, attribute=None, mandatory_parameters=True)
    found: dict[str, Query] = {}
    for path in sorted(folder.rglob("*.sql")):
        source = path.read_text(encoding="utf-8")
        names = _NAME_LINE.findall(source)
        for name in names:
            if name in found or names.count(name) > 1:
                other = found[name].source if name in found else path
                raise ValueError(f"query {name!r} is defined twice: in {other} and in {path}")
        raw = _raw_statements(source)
        for datum in loader.load_query_data_from_file(path):
            found[datum.query_name] = Query(
                name=datum.query_name,
                doc=" ".join(line.strip() for line in datum.doc_comments.splitlines()).strip(),
                sql=datum.sql,
                text=raw[datum.query_name],
                parameters=tuple(adapter.var_sorted[datum.query_name]),
                kind=_KINDS[datum.operation_type],
                source=path,
            )
    return found


def _raw_statements(source: str) -> dict[str, str]:
    """Each named block's statement as written (without the name and doc lines)."""
    blocks: dict[str, str] = {}
    starts = list(_NAME_LINE.finditer(source))
    for index, match in enumerate(starts):
        end = starts[index + 1].start() if index + 1 < len(starts) else len(source)
        lines = source[match.end() : end].splitlines()[1:]
        body = [line for line in lines if not line.lstrip().startswith("--")]
        blocks[match.group(1)] = "\n".join(body).strip()
    return blocks


@functools.cache
def catalogue() -> Mapping[str, Query]:
    """pgstash's own queries, loaded once per process."""
    return load_catalogue(resource_dir("queries"))


def query(name: str) -> Query:
    """The named query, or `KeyError` naming the files it was looked for in."""
    try:
        return catalogue()[name]
    except KeyError:
        raise KeyError(f"no query named {name!r} under {resource_dir('queries')}") from None


def parameters_of(text: str) -> Iterable[str]:
    """The `:name` parameters of a statement as written, in order of first use."""
    seen: dict[str, None] = {}
    for match in _PARAMETER.finditer(text):
        seen.setdefault(match.group(1), None)
    return list(seen)
