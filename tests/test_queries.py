"""The named SQL: every file loads, no name is defined twice, every query prepares."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgstash import DatabaseError, Postgres
from pgstash.queries import Query, catalogue, load_catalogue
from pgstash.resources import resource_dir
from tests.sqlcheck import TEMPLATE_SLOTS, prepare_all


def test_every_query_has_a_parameter_list_and_a_doc_line() -> None:
    queries = catalogue()
    assert queries, "queries/ is empty"
    for named in queries.values():
        assert named.doc, f"{named.name} in {named.source} has no -- doc line"
        text = named.source.read_text()
        assert f"-- name: {named.name}(" in text, f"{named.name} needs an explicit parameter list"


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
    named = sum(path.read_text().count("-- name:") for path in files)
    assert named == len(catalogue())


def test_parameters_are_bound_in_order() -> None:
    named = catalogue()["migrations_record"]
    assert named.parameters == ("name", "checksum")
    assert "$1" in named.sql and "$2" in named.sql and ":name" not in named.sql
    assert named.arguments({"checksum": "c", "name": "n"}) == ["n", "c"]
    with pytest.raises(TypeError, match="missing"):
        named.arguments({"name": "n"})


async def test_every_query_prepares_against_the_real_schema(postgres: Postgres) -> None:
    prepared = await prepare_all(postgres, catalogue().values())
    assert prepared == len(catalogue())


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
        if named.is_template:
            assert named.name in TEMPLATE_SLOTS, f"tests/sqlcheck.py needs slots for {named.name}"
