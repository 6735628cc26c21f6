"""Issue 12 #6: instructions templates hold only text, `{name}` placeholders and `{{`/`}}`.
`define` refuses anything else, naming the position; `resolve` never runs `str.format` on stored
text, so a row written by hand cannot reach an argument's attributes, indexes, conversions or
format specs: it raises a `PgstashError` instead."""

from __future__ import annotations

import time
from typing import Any

import pytest

from pgstash import (
    InstructionsArgumentDeclaration,
    InstructionsDeclaration,
    MissingArgumentError,
    PgstashError,
    Postgres,
    PostgresInstructionsRepository,
)

SECRET = "hunter2-secret"

# (template, the position define names)
REFUSED = [
    ("hello {name", 6),
    ("}", 0),
    ("a } b", 2),
    ("{0}", 0),
    ("{}", 0),
    ("{a!z}", 0),
    ("{a!r}", 0),
    ("x{u.__init__.__globals__[SECRET]}", 1),
    ("{a.__class__.__mro__}", 0),
    ("{text:{width}}", 0),
    ("{n:>4}", 0),
    ("{item[name]}", 0),
    ("{{ok}} {bad-name}", 7),
    ("{ spaced }", 0),
    ("{{{", 2),
]


class Spy:
    """An argument that records every attribute looked up on it (beyond str())."""

    def __init__(self) -> None:
        self.touched: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.touched.append(name)
        raise AttributeError(name)

    def __format__(self, spec: str) -> str:
        self.touched.append(f"format:{spec}")
        return "formatted"


@pytest.mark.parametrize(("template", "position"), REFUSED, ids=[case[0] for case in REFUSED])
async def test_define_refuses_anything_but_name_placeholders_naming_the_position(
    postgres: Postgres, template: str, position: int
) -> None:
    repository = PostgresInstructionsRepository(postgres)
    with pytest.raises(ValueError, match=rf"position {position}\b"):
        await repository.define("t", template)
    assert await postgres.fetch_value("SELECT count(*) FROM instructions") == 0


@pytest.mark.parametrize("template", [case[0] for case in REFUSED])
async def test_a_stored_template_define_would_refuse_raises_at_resolve_and_evaluates_nothing(
    postgres: Postgres, template: str
) -> None:
    await postgres.execute("INSERT INTO instructions (name, content) VALUES ('evil', $1)", template)
    repository = PostgresInstructionsRepository(postgres)
    spy = Spy()
    values = {"u": spy, "a": spy, "text": spy, "width": ">300000000", "n": spy, "item": spy, "name": spy}
    started = time.monotonic()
    with pytest.raises(PgstashError, match="'evil'") as failure:
        await repository.resolve("evil", values)
    assert time.monotonic() - started < 5  # no 300 MB string was built
    assert SECRET not in str(failure.value)
    assert spy.touched == []


async def test_resolve_substitutes_values_as_text_and_never_formats_them(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    arguments = (InstructionsArgumentDeclaration("a"), InstructionsArgumentDeclaration("b", required=False))
    declaration = InstructionsDeclaration("t", arguments=arguments)
    await repository.define(declaration, "{{{a}}}-{b}-{a}{c}")
    resolved = await repository.resolve("t", {"a": "{c.__class__}", "c": 1})
    assert resolved == "{{c.__class__}}-" + "-{c.__class__}1"


async def test_a_placeholder_the_declaration_does_not_list_stays_a_required_argument(
    postgres: Postgres,
) -> None:
    repository = PostgresInstructionsRepository(postgres)
    await repository.define("undeclared", "Hi {who}")
    with pytest.raises(MissingArgumentError, match="'who'") as failure:
        await repository.resolve("undeclared")
    assert failure.value.argument == "who"
    assert await repository.resolve("undeclared", {"who": "Ada"}) == "Hi Ada"
