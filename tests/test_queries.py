"""The named SQL: every file loads, no name is defined twice, every query prepares, every
fragment lints with sqlfluff and prepares inside each statement that receives it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgstash import DatabaseError, Postgres
from pgstash.sql.catalogue import Query, catalogue, load_catalogue
from pgstash.sql.resources import resource_dir
from tests.support.sqlcheck import TEMPLATE_SLOTS, TEMPLATE_VARIANTS, fragment_hosts, prepare_all

ROOT = Path(__file__).resolve().parent.parent


def test_every_query_has_a_parameter_list_and_a_doc_line() -> None:
    queries = catalogue()
    assert queries, "queries/ is empty"
    for named in queries.values():
        assert named.doc, f"{named.name} in {named.source} has no -- doc line"
        text = named.source.read_text()
        header = "fragment" if named.kind == "fragment" else "name"
        assert f"-- {header}: {named.name}(" in text, f"{named.name} needs an explicit parameter list"


def test_a_name_defined_twice_in_two_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("-- name: same()\n-- one\nSELECT 1;\n")
    (tmp_path / "b.sql").write_text("-- name: same()\n-- two\nSELECT 2;\n")
    with pytest.raises(ValueError, match="'same' is defined twice"):
        load_catalogue(tmp_path)


def test_a_name_defined_twice_in_one_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text(
        "-- name: same()\n-- one\nSELECT 1;\n\n-- name: same()\n-- two\nSELECT 2;\n"
    )
    with pytest.raises(ValueError, match="defined twice"):
        load_catalogue(tmp_path)


def test_the_catalogue_is_the_whole_queries_folder() -> None:
    files = sorted(resource_dir("queries").rglob("*.sql"))
    named = sum(path.read_text().count("-- name:") + path.read_text().count("-- fragment:") for path in files)
    assert named == len(catalogue())
    assert {named.name for named in catalogue().values() if named.kind == "fragment"} >= {
        "filter_everything",
        "filter_equal",
        "filter_and",
    }


def test_parameters_are_bound_in_order() -> None:
    named = catalogue()["migrations_record"]
    assert named.parameters == ("name", "checksum")
    assert "$1" in named.sql and "$2" in named.sql and ":name" not in named.sql
    assert named.arguments({"checksum": "c", "name": "n"}) == ["n", "c"]
    with pytest.raises(TypeError, match="missing"):
        named.arguments({"name": "n"})


async def test_every_query_prepares_against_the_real_schema(postgres: Postgres) -> None:
    prepared = await prepare_all(postgres, catalogue().values())
    fragments = sum(named.kind == "fragment" for named in catalogue().values())
    hosts = {host.name for host in fragment_hosts()}
    assert hosts == {
        "vectors_search",
        "vectors_search_exact",  # the exact re-run of a search that came back short
        "vectors_search_relaxed",  # a search on IVFFlat, its candidates sorted again
        "vectors_newest",
        "vectors_delete",
        "vectors_text_search",  # full text: queries/vectors_text.sql
        "vectors_hybrid",
        "vectors_page",  # keyset paging: queries/vectors_reads.sql
        "vectors_search_binary",  # binary quantization: queries/vectors_binary.sql
    }
    variants = sum(len(slots) for slots in TEMPLATE_VARIANTS.values())  # float16 tables
    assert prepared == len(catalogue()) - fragments + fragments * len(hosts) + variants


async def test_preparing_catches_a_missing_column(postgres: Postgres, tmp_path: Path) -> None:
    (tmp_path / "broken.sql").write_text(
        "-- name: broken_newest(identifier)^\n-- reads a column the table does not have\n"
        "SELECT no_such_column FROM configurations WHERE identifier = :identifier;\n"
    )
    broken: list[Query] = list(load_catalogue(tmp_path).values())
    with pytest.raises(DatabaseError) as failure:
        await prepare_all(postgres, broken)
    assert failure.value.query == "broken_newest"
    assert failure.value.sqlstate == "42703"  # undefined_column


def test_template_slots_cover_every_template() -> None:
    for named in catalogue().values():
        if named.is_template and named.kind != "fragment":
            assert named.name in TEMPLATE_SLOTS, f"tests/sqlcheck.py needs slots for {named.name}"


def test_bind_names_the_statement_and_orders_its_values() -> None:
    statement = catalogue()["migrations_record"].bind(checksum="c", name="n")
    assert (statement.name, statement.kind, statement.args) == ("migrations_record", "execute", ("n", "c"))
    with pytest.raises(TypeError, match="missing"):
        catalogue()["migrations_record"].bind(name="n")
    with pytest.raises(TypeError, match="composer"):
        catalogue()["vectors_delete"].bind()
    with pytest.raises(TypeError, match="composer"):
        catalogue()["filter_equal"].bind(document={}, path=[], value=1)


def test_splice_points_are_never_parameters_in_queries() -> None:
    """A DBA tells splice points from parameters at a glance: `{name}` is spliced, `:name` bound;
    no statement declares a splice point as a parameter."""
    for named in catalogue().values():
        assert not set(named.splice_points) & set(named.parameters), named.name
    assert catalogue()["vectors_search"].splice_points == ("table", "requirements")
    assert "requirements" not in catalogue()["vectors_search"].parameters
    assert catalogue()["filter_and"].splice_points == ("lhs", "rhs")


def test_a_file_mixing_statements_and_fragments_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("-- name: one()\n-- one\nSELECT 1;\n\n-- fragment: two()\n-- two\nTRUE\n")
    with pytest.raises(ValueError, match="mixes"):
        load_catalogue(tmp_path)


@pytest.mark.parametrize(
    "text",
    [
        "-- name: hidden(x)$\n-- a parameter only inside a dollar-quoted string\nSELECT $$ :x $$;\n",
        "-- name: hidden(x)$\n-- a parameter only inside a comment\nSELECT 1; -- the :x\n",
        "-- name: hidden(x)$\n-- a parameter only inside an escape string\nSELECT E'\\' :x ';\n",
        "-- name: hidden(x)$\n-- also inside a dollar-quoted string\nSELECT :x::TEXT || $$ :x $$;\n",
    ],
)
def test_a_parameter_aiosql_would_bind_inside_a_literal_is_refused(tmp_path: Path, text: str) -> None:
    (tmp_path / "a.sql").write_text(text)
    with pytest.raises(ValueError, match="inside a string literal or a comment"):
        load_catalogue(tmp_path)


def test_every_fragment_lints_with_sqlfluff() -> None:
    """`sqlfluff lint queries/` skips queries/fragments/ (.sqlfluffignore): a bare expression is
    no statement. Here each fragment is linted as it reads after a WHERE, with the project's
    .sqlfluff, and a violation names the fragment and its line in the file."""
    from sqlfluff.core import FluffConfig, Linter

    linter = Linter(config=FluffConfig.from_path(str(ROOT)))
    fragments = [named for named in catalogue().values() if named.kind == "fragment"]
    assert fragments
    problems = []
    for named in fragments:
        # `named.sql` has aiosql's $n; lint the text as written, with its :name parameters.
        written = _written(named)
        body = "\n".join(f"    {line}" if line else line for line in written.splitlines())
        result = linter.lint_string(f"SELECT 1\nWHERE\n{body};\n")
        for violation in result.get_violations():
            problems.append(f"{named.name}: line {violation.line_no - 2}: {violation.desc()}")
    assert not problems, "\n".join(problems)


def _written(named: Query) -> str:
    """The fragment's SQL as written in its file (without its header and doc lines)."""
    text = named.source.read_text()
    start = text.index(f"-- fragment: {named.name}(")
    end = text.find("\n-- fragment:", start + 1)
    lines = text[start : end if end >= 0 else len(text)].splitlines()[1:]
    return "\n".join(line for line in lines if not line.startswith("--")).strip()


def test_sqlfluff_lint_skips_only_the_fragments_file() -> None:
    ignored = [
        line
        for line in (ROOT / ".sqlfluffignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert ignored == ["queries/fragments/"]
    fragments = resource_dir("queries") / "fragments"
    assert all(named.kind == "fragment" for named in catalogue().values() if named.source.parent == fragments)
    assert all(named.source.parent == fragments for named in catalogue().values() if named.kind == "fragment")
