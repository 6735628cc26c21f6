"""Template slots take validated, quoted identifiers and nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgstash.sql.templates import IDENTIFIER, quote_identifier, render


@pytest.mark.parametrize("name", ["chunk", "_x", "http_document", "a" * 63, "t0"])
def test_plain_identifiers_are_quoted(name: str) -> None:
    assert quote_identifier(name) == f'"{name}"'
    assert render("SELECT * FROM {table};", table=name) == f'SELECT * FROM "{name}";'


@pytest.mark.parametrize(
    "name", ["", "Chunk", "1abc", "a" * 64, 'x"; DROP TABLE t; --', "a b", "é", "a-b", None, 3]
)
def test_anything_else_is_refused(name: object) -> None:
    with pytest.raises(ValueError, match="invalid table or identifier"):
        quote_identifier(name)


def test_a_slot_without_a_value_is_refused() -> None:
    with pytest.raises(ValueError, match=r"slot \{table\}"):
        render("SELECT * FROM {table};")


@given(st.text(max_size=80))
def test_nothing_but_the_whitelist_gets_through(name: str) -> None:
    if IDENTIFIER.fullmatch(name):
        assert render("{t}", t=name) == f'"{name}"'
    else:
        with pytest.raises(ValueError):
            render("{t}", t=name)


def test_an_integer_slot_is_written_as_digits() -> None:
    assert render("VECTOR({dimension}) ON {table}", dimension=384, table="chunk") == 'VECTOR(384) ON "chunk"'
    for bad in (-1, True, 3.0, "384"):
        with pytest.raises(ValueError):
            render("VECTOR({dimension})", dimension=bad)  # type: ignore[arg-type]
