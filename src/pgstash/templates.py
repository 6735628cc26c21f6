"""Fills the `{slot}` identifiers of template queries, and nothing else.

This is the only place where text is put into SQL: identifiers that match
`^[a-z_][a-z0-9_]{0,62}$`, double-quoted, and non-negative integers written as digits (a vector
column's dimension, which DDL cannot take as a parameter). Values never come here; they are bound
parameters.
"""

from __future__ import annotations

import re

__all__ = ["IDENTIFIER", "quote_identifier", "render", "validate_identifier"]

# Not pg_...: PostgreSQL searches pg_catalog before every schema, so an unqualified "pg_class"
# names the system catalog even when a table of that name exists elsewhere.
IDENTIFIER = re.compile(r"(?!pg_)[a-z_][a-z0-9_]{0,62}")
_SLOT = re.compile(r"\{([a-z_]+)\}")


def validate_identifier(name: object) -> str:
    """`name` if it is a plain lower-case SQL identifier of at most 63 characters, else `ValueError`."""
    if not isinstance(name, str) or IDENTIFIER.fullmatch(name) is None:
        raise ValueError(
            f"invalid table or identifier name {name!r}: use 1 to 63 characters of a-z, 0-9 "
            "and _, not starting with a digit nor with pg_ (PostgreSQL's own names: pg_catalog is "
            'searched first, so a "pg_..." table may be a system catalog)'
        )
    return name


def quote_identifier(name: object) -> str:
    """The validated identifier in double quotes."""
    return f'"{validate_identifier(name)}"'


def render(template: str, **slots: str | int) -> str:
    """`template` with every `{slot}` replaced by its quoted identifier, or by the digits of a
    non-negative `int`. A slot without a value, or a value that is neither, raises `ValueError`."""

    def fill(match: re.Match[str]) -> str:
        slot = match.group(1)
        if slot not in slots:
            raise ValueError(f"template slot {{{slot}}} has no value")
        value = slots[slot]
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                raise ValueError(f"template slot {{{slot}}} takes a non-negative integer, got {value}")
            return str(value)
        return quote_identifier(value)

    return _SLOT.sub(fill, template)
