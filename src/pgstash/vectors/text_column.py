"""A vector table's text column (`create_table(..., text=...)`): a stored generated `tsvector` of
one payload field in one text search configuration, checked before any DDL, and read back from
the generation expression the catalog prints (`TableFacts.text_expression`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import attrs

from pgstash.errors import SchemaMissingError
from pgstash.sql.templates import Constant
from pgstash.vectors.facts import TableFacts, index_name
from pgstash.vectors.filters import KeyOf, path_of

__all__ = [
    "TextColumn", "TextColumnMissingError", "check_language", "existing_column", "language_of", "text_column",
]  # fmt: skip

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")  # a payload key the DDL may name
_LANGUAGE = re.compile(r"[a-z_][a-z0-9_]{0,62}")  # a text search configuration's name
# The generation expression as pg_get_expr prints it (the configuration qualified when it is not
# on the search path): to_tsvector('english'::regconfig, (payload #>> '{meta,title}'::text[])).
_EXPRESSION = re.compile(
    r"(?:pg_catalog\.)?to_tsvector\('([a-z_][a-z0-9_.]*)'::regconfig, "
    r"\(payload #>> '\{([^']*)\}'::text\[\]\)\)"
)


@attrs.frozen(slots=True)
class TextColumn:
    """What `text_vector` is generated from: a payload path and a text search configuration."""

    path: tuple[str, ...]
    language: str

    @property
    def field(self) -> str:
        return ".".join(self.path)

    def slots(self, table: str) -> dict[str, str | int | Constant]:
        """The DDL's slots: the configuration and the path as string constants (each key quoted
        inside the text[] constant, so a key named null is no NULL), the GIN index's name."""
        path = "{" + ",".join(f'"{key}"' for key in self.path) + "}"
        return {
            "language": Constant(self.language),
            "text_path": Constant(path),
            "text_index": index_name(table, "text_idx"),
        }

    def check_existing(self, facts: TableFacts, table: str) -> bool:
        """Whether the table already has this text column; `ValueError` when it has another."""
        if facts.text_expression is None:
            return False
        if existing_column(facts) == self:
            return True
        raise ValueError(
            f'table "{table}" already has a text column, {facts.text_expression}, not the '
            f"{self.field!r} field in {self.language!r}: to change it, drop it first "
            f"(ALTER TABLE {table} DROP COLUMN text_vector) and call create_table again"
        )


def existing_column(facts: TableFacts) -> TextColumn | None:
    """The table's text column as its expression says, or None (no column, or one pgstash did not
    make: a plain column, or another expression)."""
    found = _EXPRESSION.fullmatch(facts.text_expression or "")
    if found is None:
        return None
    return TextColumn(tuple(key.strip('"') for key in found.group(2).split(",")), found.group(1))


def text_column(text: Any, language: object, key_of: KeyOf | None = None) -> TextColumn:
    """The checked column: `text` names payload keys as a requirement's path does (a dotted
    string, an attrs field, mapped by `key_of` to the key the converter writes, or a sequence),
    each key 1 to 63 of A-Z, a-z, 0-9 and _; `language` a configuration's plain name."""
    path = path_of(text, key_of)
    if not all(_KEY.fullmatch(key) for key in path):
        raise ValueError(
            f"text={text!r}: each key of the path is 1 to 63 of A-Z, a-z, 0-9 and _, not starting "
            "with a digit"
        )
    if not isinstance(language, str) or _LANGUAGE.fullmatch(language) is None:
        raise ValueError(
            f"language must be the name of a text search configuration such as 'english', got {language!r}"
        )
    return TextColumn(path, language)


def check_language(language: str, known: Sequence[str]) -> None:
    """`ValueError` unless the server has the configuration (`vectors_text_languages`)."""
    if language not in known:
        few = sorted(known, key=lambda name: (name not in ("english", "simple"), name))[:8]
        raise ValueError(
            f"language {language!r} is not a text search configuration of this server (pg_ts_config); "
            f"it has {len(known)}, such as {', '.join(few)}"
        )


class TextColumnMissingError(SchemaMissingError):
    """Text or hybrid search on a table without the text column pgstash makes."""

    def __init__(self, table: str, remedy: str) -> None:
        super().__init__(table, remedy)
        what = f'table "{table}" has no text column, which text and hybrid search read'
        self.args = (f"{what}: add it with {remedy}",)


def language_of(facts: TableFacts, name: str, model: type) -> str:
    """The text search configuration of the table's text column; `SchemaMissingError` naming
    `create_table(..., text=...)` when it has none pgstash made."""
    column = existing_column(facts)
    if column is None:
        raise TextColumnMissingError(
            name, f"`await PostgresVectorIndex().create_table({model.__name__}, dimension=..., text=...)`"
        )
    return column.language
