"""The composer: splice points filled, parameters numbered, literals and comments left alone.

Templates are loaded through the real catalogue loader (aiosql) from files written here, so each
test sees what `queries/` would give the composer. The composed SQL is run on PostgreSQL where
its meaning matters (a literal that must come back unchanged)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgstash import Postgres
from pgstash.sql.catalogue import Query, load_catalogue
from pgstash.sql.composer import Fragment, compose, fragment
from pgstash.sql.templates import Parameter, Slot, bound_inside_literals, named, pieces

# As aiosql hands it over ($n for :name); composed directly, since aiosql itself would bind a :x
# inside E'...' or $$...$$ (the catalogue refuses such files) and drops /* */ comments.
LITERALS = Query(
    name="literals",
    doc="Literals, quoted identifiers and comments holding what looks like parameters and slots.",
    sql=r"""SELECT
    ':x $1 {y}' AS plain,
    E'it\'s :x $1 {y}' AS escaped,
    $$ :x $1 {y} $$ AS dollar,
    $tag$ $$ {y} $1 $tag$ AS tagged,
    $1::INTEGER AS a, /* a comment with $1 and {y} /* nested {z} */ still */
    1 AS "quoted {y} $1",
    $2::TEXT AS b, -- :x $1 {y}
    $1::INTEGER + 1 AS again;""",
    parameters=("a", "b"),
    kind="fetch_one",
    source=Path("literals.sql"),
)

TEMPLATES = r"""
-- name: loaded_literals(a)^
-- What aiosql leaves alone, through the loader and the composer.
SELECT ':x $1 {y}' AS plain, 1 AS "quoted {y} $1", :a::INTEGER AS a;

-- name: spliced(limit_to)
-- A statement with an identifier slot and a fragment point.
SELECT id FROM {table} WHERE {condition} AND id < :limit_to::INTEGER;

-- name: twice(first)
-- One fragment point used twice, a parameter after it.
SELECT {condition} AS one, {condition} AS two, :first::INTEGER AS three;
"""

FRAGMENTS = """
-- fragment: greater_than(value)
-- The id is above the value.
id > :value::INTEGER

-- fragment: between(low, high)
-- The id is within [low, high]; low is used twice.
id >= :low::INTEGER AND id <= :high::INTEGER AND :low::INTEGER <= :high::INTEGER

-- fragment: both()
-- Both hold.
{lhs} AND {rhs}
"""


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Query]:
    folder = tmp_path_factory.mktemp("templates")
    (folder / "statements.sql").write_text(TEMPLATES)
    (folder / "fragments.sql").write_text(FRAGMENTS)
    return load_catalogue(folder)


def test_literals_quoted_identifiers_and_comments_are_untouched() -> None:
    statement = compose(LITERALS, a=7, b="x")
    assert statement.args == (7, "x")
    for verbatim in (
        "':x $1 {y}'",
        r"E'it\'s :x $1 {y}'",
        "$$ :x $1 {y} $$",
        "$tag$ $$ {y} $1 $tag$",
        "/* a comment with $1 and {y} /* nested {z} */ still */",
        '"quoted {y} $1"',
        "-- :x $1 {y}",
    ):
        assert verbatim in statement.sql
    assert "$1::INTEGER AS a" in statement.sql and "$2::TEXT AS b" in statement.sql
    assert "$1::INTEGER + 1 AS again" in statement.sql  # one name, one $n


async def test_the_literals_come_back_unchanged_from_postgres(
    postgres: Postgres, templates: dict[str, Query]
) -> None:
    loaded = compose(templates["loaded_literals"], a=3)
    assert loaded.sql == "SELECT ':x $1 {y}' AS plain, 1 AS \"quoted {y} $1\", $1::INTEGER AS a;"
    row = await postgres.fetch_one(loaded.sql, *loaded.args)
    assert row is not None and (row["plain"], row["quoted {y} $1"], row["a"]) == (":x $1 {y}", 1, 3)
    statement = compose(LITERALS, a=7, b="x")
    row = await postgres.fetch_one(statement.sql, *statement.args)
    assert row is not None
    assert (row["plain"], row["escaped"], row["dollar"], row["tagged"]) == (
        ":x $1 {y}",
        "it's :x $1 {y}",
        " :x $1 {y} ",
        " $$ {y} $1 ",
    )
    assert (row["a"], row["b"], row["again"], row["quoted {y} $1"]) == (7, "x", 8, 1)


def test_nested_fragments_are_numbered_in_order(templates: dict[str, Query]) -> None:
    inner = fragment(
        templates["both"],
        fragments={
            "lhs": fragment(templates["greater_than"], value=1),
            "rhs": fragment(templates["between"], low=2, high=3),
        },
    )
    assert inner == Fragment(
        "(id > $1::INTEGER) AND (id >= $2::INTEGER AND id <= $3::INTEGER AND $2::INTEGER <= $3::INTEGER)",
        (1, 2, 3),
    )
    outer = fragment(
        templates["both"], fragments={"lhs": inner, "rhs": fragment(templates["greater_than"], value=4)}
    )
    statement = compose(
        templates["spliced"], slots={"table": "items"}, fragments={"condition": outer}, limit_to=9
    )
    assert statement.sql == (
        'SELECT id FROM "items" WHERE (((id > $1::INTEGER) AND (id >= $2::INTEGER AND id <= $3::INTEGER '
        "AND $2::INTEGER <= $3::INTEGER)) AND (id > $4::INTEGER)) AND id < $5::INTEGER;"
    )
    assert statement.args == (1, 2, 3, 4, 9)
    assert (statement.name, statement.kind) == ("spliced", "fetch")


def test_a_fragment_used_twice_binds_its_values_once(templates: dict[str, Query]) -> None:
    statement = compose(
        templates["twice"], fragments={"condition": fragment(templates["between"], low=1, high=2)}, first=3
    )
    assert statement.sql.count("$1") == 4 and "$3::INTEGER AS three" in statement.sql
    assert statement.args == (1, 2, 3)


async def test_composed_statements_run(postgres: Postgres, templates: dict[str, Query]) -> None:
    await postgres.execute("CREATE TABLE items AS SELECT i AS id FROM generate_series(1, 10) AS i")
    condition = fragment(
        templates["both"],
        fragments={
            "lhs": fragment(templates["greater_than"], value=2),
            "rhs": fragment(templates["between"], low=1, high=6),
        },
    )
    statement = compose(
        templates["spliced"], slots={"table": "items"}, fragments={"condition": condition}, limit_to=5
    )
    rows = await postgres.fetch(statement.sql, *statement.args)
    assert sorted(row["id"] for row in rows) == [3, 4]


def test_the_same_shape_gives_the_same_sql(templates: dict[str, Query]) -> None:
    def build(value: int, table: str) -> str:
        condition = fragment(templates["greater_than"], value=value)
        return compose(
            templates["spliced"], slots={"table": table}, fragments={"condition": condition}, limit_to=value
        ).sql

    assert build(1, "items") is build(2, "items")  # cached: the very same string, asyncpg's cache hits
    assert build(1, "items") != build(1, "other")


@pytest.mark.parametrize(
    "table", ["Items", 'x"; DROP TABLE items; --', "pg_class", "", "a b", None, -1, True, 1.5]
)
def test_identifier_slots_are_validated(templates: dict[str, Query], table: object) -> None:
    condition = fragment(templates["greater_than"], value=1)
    with pytest.raises(ValueError):
        compose(
            templates["spliced"],
            slots={"table": table},  # type: ignore[dict-item]
            fragments={"condition": condition},
            limit_to=1,
        )


def test_missing_or_unexpected_values_slots_and_fragments_raise_type_error(
    templates: dict[str, Query],
) -> None:
    spliced, condition = templates["spliced"], fragment(templates["greater_than"], value=1)
    for call in (
        lambda: compose(spliced, slots={"table": "t"}, fragments={"condition": condition}),
        lambda: compose(spliced, slots={"table": "t"}, fragments={"condition": condition}, limit_to=1, x=2),
        lambda: compose(spliced, fragments={"condition": condition}, limit_to=1),
        lambda: compose(
            spliced, slots={"table": "t", "other": "u"}, fragments={"condition": condition}, limit_to=1
        ),
        lambda: compose(
            spliced, slots={"table": "t", "condition": "u"}, fragments={"condition": condition}, limit_to=1
        ),
        lambda: compose(spliced, slots={"table": "t"}, fragments={"condition": "id > 1"}, limit_to=1),  # type: ignore[dict-item]
        lambda: compose(templates["greater_than"], value=1),
        lambda: fragment(spliced, limit_to=1),
    ):
        with pytest.raises(TypeError):
            call()


def test_a_fragment_with_an_unfilled_point_or_foreign_numbers_is_refused(templates: dict[str, Query]) -> None:
    spliced = templates["spliced"]
    for bad in (Fragment("{x} AND TRUE"), Fragment("id > $2", (1,))):
        with pytest.raises(ValueError):
            compose(spliced, slots={"table": "t"}, fragments={"condition": bad}, limit_to=1)


def test_braces_outside_literals_must_be_slots() -> None:
    for bad in ("SELECT {Table}", "SELECT {", "SELECT }", "SELECT '", "SELECT $$ x", "SELECT /* x"):
        with pytest.raises(ValueError):
            pieces(bad)
    assert pieces("SELECT a$1, $1, {t}") == ("SELECT a$1, ", Parameter(1), ", ", Slot("t"))


def test_words_literals_and_parameters_are_told_apart_at_every_boundary() -> None:
    """Identifiers may hold non-ASCII letters and `$`; `E'` opens an escape string only where no
    word character precedes it; a `-` or `/` alone is text."""
    assert pieces("SELECT é$1, $é$ {x} $1 $é$, 1E'{y}', - a / b, \U0001d400$2 {z}") == (
        "SELECT é$1, $é$ {x} $1 $é$, 1E'{y}', - a / b, \U0001d400",
        Parameter(2),
        " ",
        Slot("z"),
    )
    assert pieces("x — ;E'{a}' 😀{b}") == ("x — ;E'{a}' 😀", Slot("b"))
    hidden = bound_inside_literals("SELECT :a, E':b', x; -- :c\n-- :d\nSELECT $t$ :e $t$ — :f")
    assert hidden == ["b", "c", "e"]
    assert named("SELECT 1 — é;\nSELECT 'a;b' — x; 1E'c;' ;é;", "q") == (
        "SELECT /* pgstash:q */ 1 — é;\nSELECT /* pgstash:q */ 'a;b' — x; 1E /* pgstash:q */'c;' ;"
        "é /* pgstash:q */;"
    )


@given(st.text(alphabet="ab'\"$:{}-/*\\E1 \n", max_size=40))
def test_pieces_give_back_the_text(text: str) -> None:
    """Whatever the tokenizer accepts, joining its pieces gives the text back."""
    try:
        found = pieces(text)
    except ValueError:
        return
    rebuilt = "".join(
        piece
        if isinstance(piece, str)
        else f"${piece.number}"
        if isinstance(piece, Parameter)
        else f"{{{piece.name}}}"
        for piece in found
    )
    assert rebuilt == text


def test_files_of_fragments_are_not_statements(tmp_path: Path, templates: dict[str, Query]) -> None:
    assert templates["between"].kind == "fragment"
    assert templates["between"].parameters == ("low", "high")
    assert templates["both"].splice_points == ("lhs", "rhs")
    assert templates["loaded_literals"].kind == "fetch_one"
