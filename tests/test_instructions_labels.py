"""Instructions v2 (issue 27) on a real PostgreSQL: revision numbers, labels and their moves,
compare-and-set, rollback, label history, diffs, listings by label, prune keeping labelled
revisions, and bad input refused before anything is written."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import pgstash
from pgstash import (
    InstructionsArgumentDeclaration,
    InstructionsDeclaration,
    InstructionsNotFoundError,
    Postgres,
    PostgresConnectionPool,
    PostgresInstructionsRepository,
    SchemaMissingError,
)
from pgstash.errors import LabelConflictError, LabelNotFoundError
from pgstash.stores.labels import LabelMove

LABEL_TABLES = ("instructions", "instructions_revisions", "instructions_labels", "instructions_label_moves")


async def counts(postgres: Postgres) -> dict[str, int]:
    return {table: await postgres.fetch_value(f"SELECT count(*) FROM {table}") for table in LABEL_TABLES}


async def test_revisions_are_numbered_per_name_with_their_message_and_author(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    first = await repository.define("greet", "Hello {user}", message="first draft")
    second = await repository.define("greet", "Hi {user}")
    other = await repository.define("other", "x")
    assert (first.revision, second.revision, other.revision) == (1, 2, 1)
    assert first.message == "first draft" and first.content == "Hello {user}"
    history = await repository.history("greet")
    assert [(entry.revision, entry.content, entry.message) for entry in history] == [
        (2, "Hi {user}", None),
        (1, "Hello {user}", "first draft"),
    ]
    role = await postgres.fetch_value("SELECT current_user::text")
    assert {entry.author for entry in history} == {role}
    assert history[1].created == first.created


async def test_latest_moves_on_every_define_and_production_only_when_named(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    await repository.define("greet", "v1 {user}", labels=("production",), message="ship it")
    await repository.define("greet", "v2 {user}", labels=["staging"])
    await repository.define("greet", "v3 {user}")
    assert await repository.labels("greet") == {"latest": 3, "production": 1, "staging": 2}
    assert await repository.load("greet") == "v3 {user}"  # no label: latest, as ever
    assert await repository.resolve("greet", {"user": "Ada"}) == "v3 Ada"
    assert await repository.resolve("greet", {"user": "Ada"}, label="production") == "v1 Ada"
    assert await repository.load("greet", label="staging") == "v2 {user}"
    assert await repository.load("greet", label="latest") == "v3 {user}"
    assert await repository.load("greet", revision=2) == "v2 {user}"
    assert await repository.resolve("greet", {"user": "Bo"}, revision=1) == "v1 Bo"

    production = PostgresInstructionsRepository(postgres, default_label="production")
    assert await production.resolve("greet", {"user": "Ada"}) == "v1 Ada"
    assert await production.load("greet") == "v1 {user}"
    assert await production.load("greet", label="latest") == "v3 {user}"


async def test_unknown_labels_and_revisions_are_clear_errors(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    await repository.define("greet", "v1")
    with pytest.raises(LabelNotFoundError, match="'greet' have no label 'production'") as failure:
        await repository.resolve("greet", label="production")
    assert isinstance(failure.value, InstructionsNotFoundError) and isinstance(failure.value, LookupError)
    with pytest.raises(LabelNotFoundError, match="no revision 7"):
        await repository.resolve("greet", revision=7)
    assert await repository.load("greet", label="production") is None
    assert await repository.load("greet", revision=7) is None
    with pytest.raises(InstructionsNotFoundError):
        await PostgresInstructionsRepository(postgres, default_label="production").resolve("nope")


async def test_move_label_is_a_compare_and_set(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    for text in ("v1", "v2", "v3"):
        await repository.define("greet", text)
    move = await repository.move_label("greet", "production", to=1, expected=None)
    assert isinstance(move, LabelMove)
    assert (move.from_revision, move.to_revision, move.rollback) == (None, 1, False)
    assert await repository.load("greet", label="production") == "v1"
    await repository.move_label("greet", "production", to=2, expected=1)
    before = await counts(postgres)
    with pytest.raises(LabelConflictError, match="at revision 2, not at revision 1") as failure:
        await repository.move_label("greet", "production", to=3, expected=1)
    assert (failure.value.expected, failure.value.actual) == (1, 2)
    with pytest.raises(LabelConflictError, match="not unset"):
        await repository.move_label("greet", "production", to=3, expected=None)
    assert await counts(postgres) == before
    assert await repository.load("greet", label="production") == "v2"
    # another label's revision, or latest's
    await repository.move_label("greet", "staging", to="latest", expected=None)
    await repository.move_label("greet", "production", to="staging", expected=2)
    assert await repository.labels("greet") == {"latest": 3, "production": 3, "staging": 3}


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda r: r.move_label("greet", "production", to=9, expected=None),
            LabelNotFoundError,
            "no revision 9",
        ),
        (lambda r: r.move_label("greet", "Production", to=1, expected=None), ValueError, "not a label"),
        (lambda r: r.move_label("greet", "prod-1", to=1, expected=None), ValueError, "not a label"),
        (lambda r: r.move_label("greet", "latest", to=1, expected=None), ValueError, "newest revision"),
        (lambda r: r.move_label("greet", "production", to=0, expected=None), ValueError, "revision number"),
        (
            lambda r: r.move_label("greet", "production", to=True, expected=None),
            ValueError,
            "revision number",
        ),
        (
            lambda r: r.move_label("greet", "production", to="nolabel", expected=None),
            LabelNotFoundError,
            "nolabel",
        ),
        (lambda r: r.define("greet", "v", labels=("Bad Label",)), ValueError, "not a label"),
        (lambda r: r.define("greet", "v", labels="production"), TypeError, "sequence"),
        (lambda r: r.define("greet", "v", labels=("latest",)), ValueError, "newest revision"),
        (lambda r: r.define("greet", "v", message=3), TypeError, "message"),
        (lambda r: r.remove_label("greet", "staging"), LabelNotFoundError, "no label 'staging'"),
        (lambda r: r.rollback("greet", "staging"), LabelNotFoundError, "no move left"),
        (lambda r: r.resolve("greet", label="1st"), ValueError, "not a label"),
        (lambda r: r.resolve("greet", label="production", revision=1), TypeError, "not both"),
    ],
)
async def test_bad_label_input_is_refused_before_anything_is_written(
    postgres: Postgres, call: Any, error: type[Exception], match: str
) -> None:
    repository = PostgresInstructionsRepository(postgres)
    await repository.define("greet", "v1")
    before = await counts(postgres)
    with pytest.raises(error, match=match):
        await call(repository)
    assert await counts(postgres) == before


async def test_a_revision_of_another_name_is_refused(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    await repository.define("greet", "v1")
    other = await repository.define("other", "o1")
    before = await counts(postgres)
    with pytest.raises(ValueError, match="revision 1 of 'other', not of 'greet'"):
        await repository.move_label("greet", "production", to=other, expected=None)
    with pytest.raises(ValueError, match="not of 'greet'"):
        await repository.load("greet", revision=other)
    assert await counts(postgres) == before
    own = (await repository.history("greet"))[0]
    await repository.move_label("greet", "production", to=own, expected=None)
    assert await repository.load("greet", label="production") == "v1"


async def test_rollback_after_three_moves_walks_back_through_the_history(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    for text in ("v1", "v2", "v3", "v4"):
        await repository.define("greet", text)
    await repository.move_label("greet", "production", to=1, expected=None)
    await repository.move_label("greet", "production", to=2, expected=1)
    await repository.move_label("greet", "production", to=4, expected=2)

    undone = await repository.rollback("greet", "production")
    assert (undone.from_revision, undone.to_revision, undone.rollback) == (4, 2, True)
    assert await repository.load("greet", label="production") == "v2"
    await repository.rollback("greet", "production")
    assert await repository.load("greet", label="production") == "v1"
    await repository.rollback("greet", "production")  # undoes setting it: removed
    assert "production" not in await repository.labels("greet")
    with pytest.raises(LabelNotFoundError, match="no move left"):
        await repository.rollback("greet", "production")

    # a move to where the label points is kept in the history, and skipped by rollback
    await repository.move_label("greet", "production", to=1, expected=None)
    await repository.move_label("greet", "production", to=2, expected=1)
    await repository.move_label("greet", "production", to=2, expected=2)
    assert (await repository.rollback("greet", "production")).to_revision == 1
    await repository.rollback("greet", "production")
    assert "production" not in await repository.labels("greet")

    # a move after a rollback is undone first, then the walk goes on where it was
    await repository.move_label("greet", "production", to=3, expected=None)
    await repository.rollback("greet", "production")
    assert "production" not in await repository.labels("greet")


async def test_remove_label_is_a_move_rollback_restores_it(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    await repository.define("greet", "v1", labels=("production",))
    removed = await repository.remove_label("greet", "production")
    assert (removed.from_revision, removed.to_revision) == (1, None)
    with pytest.raises(LabelNotFoundError):
        await repository.resolve("greet", label="production")
    await repository.rollback("greet", "production")
    assert await repository.resolve("greet", label="production") == "v1"


async def test_label_history_says_who_when_from_and_to(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    role = await postgres.fetch_value("SELECT current_user::text")
    await repository.define("greet", "v1", labels=("production", "staging"))
    await repository.define("greet", "v2", labels=("staging",))
    await repository.move_label("greet", "production", to=2, expected=1)
    await repository.rollback("greet", "production")
    moves = await repository.label_history("greet", "production")
    assert [(m.from_revision, m.to_revision, m.rollback) for m in moves] == [
        (2, 1, True),
        (1, 2, False),
        (None, 1, False),  # define's move
    ]
    assert {m.moved_by for m in moves} == {role} and {m.label for m in moves} == {"production"}
    assert moves[0].moved > moves[1].moved > moves[2].moved
    staging = await repository.label_history("greet", "staging")
    assert [(m.from_revision, m.to_revision) for m in staging] == [(1, 2), (None, 1)]
    latest = await repository.label_history("greet", "latest")
    assert [(m.from_revision, m.to_revision, m.moved_by) for m in latest] == [(1, 2, role), (None, 1, role)]
    assert await repository.label_history("greet", "canary") == ()


async def test_available_instructions_by_label(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    await repository.define(InstructionsDeclaration("b", description="b1"), "b1", labels=("production",))
    await repository.define(InstructionsDeclaration("b", description="b2"), "b2")
    await repository.define(InstructionsDeclaration("a", description="a1"), "a1", labels=("production",))
    await repository.define("c", "c1")
    production = await repository.available_instructions(label="production")
    assert [(d.name, d.description) for d in production] == [("a", "a1"), ("b", "b1")]
    latest = await repository.available_instructions(label="latest")
    assert [(d.name, d.description) for d in latest] == [("a", "a1"), ("b", "b2"), ("c", None)]
    assert await repository.available_instructions() == latest
    await repository.move_label("b", "production", to=2, expected=1)  # the cached listing is evicted
    production = await repository.available_instructions(label="production")
    assert [(d.name, d.description) for d in production] == [("a", "a1"), ("b", "b2")]
    assert await repository.available_instructions(label="canary") == ()


async def test_diff_of_revisions_and_labels(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    first = InstructionsDeclaration("greet", arguments=(InstructionsArgumentDeclaration("user"),))
    second = InstructionsDeclaration(
        "greet",
        description="friendlier",
        arguments=(
            InstructionsArgumentDeclaration("user"),
            InstructionsArgumentDeclaration("tone", required=False),
        ),
        meta={"owner": "team"},
    )
    await repository.define(first, "Hello {user}.\nBe brief.", labels=("production",))
    await repository.define(second, "Hello {user}!\nBe brief.")
    diff = await repository.diff("greet", "production", 2)
    assert diff.startswith("--- greet@production (revision 1, ")
    assert "\n+++ greet@2 (revision 2, " in diff
    for line in (
        "-description: (none)",
        "+description: friendlier",
        "+  tone (optional)",
        "-Hello {user}.",
        "+Hello {user}!",
        " Be brief.",
        '+    "owner": "team"',
    ):
        assert f"\n{line}" in diff, line
    assert await repository.diff("greet", 1, "production") == ""
    with pytest.raises(LabelNotFoundError):
        await repository.diff("greet", 1, "staging")


async def test_prune_never_deletes_a_labelled_revision(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    await repository.define("greet", "v1", labels=("production",))
    for text in ("v2", "v3", "v4"):
        await repository.define("greet", text)
    assert await repository.prune(keep=1) == 2
    assert [entry.revision for entry in await repository.history("greet")] == [4, 1]
    assert await repository.load("greet", label="production") == "v1"
    await repository.define("greet", "v5")  # numbers are never reused
    assert (await repository.history("greet"))[0].revision == 5
    await repository.remove("greet")
    assert await counts(postgres) == dict.fromkeys(LABEL_TABLES, 0)


async def test_rows_another_writer_stored_are_numbered_by_the_next_define(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    await repository.define("greet", "v1")
    await postgres.execute("INSERT INTO instructions (name, content) VALUES ('greet', 'by hand')")
    history = await repository.history("greet")
    assert [(entry.revision, entry.content) for entry in history] == [(None, "by hand"), (1, "v1")]
    assert (await repository.labels("greet"))["latest"] is None
    third = await repository.define("greet", "v3")
    assert third.revision == 3
    assert [entry.revision for entry in await repository.history("greet")] == [3, 2, 1]


async def test_migration_numbers_the_revisions_stored_before_it(empty_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=empty_dsn) as postgres:
        applied = [m.name for m in pgstash.migrations.migrations() if m.name < "0010"]
        folder = pgstash.migrations.resource_dir("schema")
        for name in applied:
            await postgres.execute((folder / f"{name}.sql").read_text())
        repository = PostgresInstructionsRepository(postgres)  # opened before schema/0010
        await repository.define("greet", "old 1")
        await repository.define("greet", "old 2")
        assert [entry.revision for entry in await repository.history("greet")] == [None, None]
        with pytest.raises(SchemaMissingError, match="schema/0010"):
            await repository.move_label("greet", "production", to=1, expected=None)
        await postgres.execute((folder / "0010_instructions_labels.sql").read_text())
        assert [entry.revision for entry in await repository.history("greet")] == [2, 1]
        await repository.move_label("greet", "production", to=1, expected=None)
        assert await repository.load("greet", label="production") == "old 1"
        assert (await repository.define("greet", "new")).revision == 3


async def test_labels_inside_a_transaction_see_its_own_moves(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    await repository.define("greet", "v1", labels=("production",))
    await repository.define("greet", "v2")
    assert await repository.load("greet", label="production") == "v1"  # cached
    with pytest.raises(RuntimeError):
        async with postgres.transaction():
            await repository.move_label("greet", "production", to=2, expected=1)
            assert await repository.load("greet", label="production") == "v2"
            raise RuntimeError("roll back")
    assert await repository.load("greet", label="production") == "v1"
    assert await repository.labels("greet") == {"latest": 2, "production": 1}


async def test_concurrent_moves_in_one_process_exactly_one_wins(postgres: Postgres) -> None:
    repository = PostgresInstructionsRepository(postgres)
    for text in ("v1", "v2", "v3"):
        await repository.define("greet", text)
    await repository.move_label("greet", "production", to=1, expected=None)
    results = await asyncio.gather(
        *(repository.move_label("greet", "production", to=to, expected=1) for to in (2, 3, 2, 3)),
        return_exceptions=True,
    )
    won = [result for result in results if isinstance(result, LabelMove)]
    lost = [result for result in results if isinstance(result, LabelConflictError)]
    assert len(won) == 1 and len(lost) == 3, results
    assert await repository.labels("greet") == {"latest": 3, "production": won[0].to_revision}
