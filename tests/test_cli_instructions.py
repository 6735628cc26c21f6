"""`pgstash instructions history|labels|diff|move|rollback|label-history`, run as a user would."""

from __future__ import annotations

import pytest

from pgstash import PostgresConnectionPool, PostgresInstructionsRepository
from tests.support.cli import pgstash

pytestmark = pytest.mark.process


async def test_the_instructions_commands_show_and_move_labels(database_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=database_dsn) as postgres:
        repository = PostgresInstructionsRepository(postgres)
        await repository.define("greet", "Hello {user}.", labels=("production",), message="first")
        await repository.define("greet", "Hi {user}!", labels=("staging",), message="shorter")

    history = pgstash("instructions", "history", "greet", "--dsn", database_dsn)
    assert history.returncode == 0, history.stderr
    lines = history.stdout.splitlines()
    assert any(line.split()[:1] == ["2"] and "staging" in line and "shorter" in line for line in lines), lines
    assert any(line.split()[:1] == ["1"] and "production" in line and "first" in line for line in lines), (
        lines
    )

    labels = pgstash("instructions", "labels", "greet", "--dsn", database_dsn)
    assert [line.split() for line in labels.stdout.splitlines()[-3:]] == [
        ["latest", "2"],
        ["production", "1"],
        ["staging", "2"],
    ], labels.stdout

    diff = pgstash("instructions", "diff", "greet", "production", "staging", "--dsn", database_dsn)
    assert diff.returncode == 0 and "-Hello {user}." in diff.stdout and "+Hi {user}!" in diff.stdout

    moved = pgstash("instructions", "move", "greet", "production", "staging", "--dsn", database_dsn)
    assert moved.returncode == 0, moved.stderr
    assert "production of greet: revision 1 -> revision 2" in moved.stdout

    stale = pgstash(
        "instructions", "move", "greet", "production", "1", "--expected", "1", "--dsn", database_dsn
    )
    assert stale.returncode == 1 and "another writer moved it first" in stale.stderr, stale.stderr

    back = pgstash("instructions", "rollback", "greet", "production", "--dsn", database_dsn)
    assert back.returncode == 0 and "revision 2 -> revision 1" in back.stdout

    moves = pgstash("instructions", "label-history", "greet", "production", "--dsn", database_dsn)
    assert moves.returncode == 0 and "rollback" in moves.stdout

    bad = pgstash("instructions", "move", "greet", "Prod", "1", "--dsn", database_dsn)
    assert bad.returncode == 1 and "not a label" in bad.stderr
    missing = pgstash("instructions", "move", "greet", "production", "9", "--dsn", database_dsn)
    assert missing.returncode == 1 and "no revision 9" in missing.stderr
    nothing = pgstash("instructions", "labels", "nope", "--dsn", database_dsn)
    assert nothing.returncode == 1 and "no instructions named 'nope'" in nothing.stdout
