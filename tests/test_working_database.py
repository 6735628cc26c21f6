"""The working database each pytest process keeps (tests/support/databases.py): a test that changed
only rows and tables of its own is undone by the cheap reset (TRUNCATE and DROP), not by cloning
the template again; one that changed the catalog otherwise is cloned afresh."""

from __future__ import annotations

import asyncpg
import pytest

from tests.support.databases import WorkingDatabase


async def test_rows_and_a_table_of_the_tests_own_are_undone_without_cloning(
    working_database: WorkingDatabase, direct_dsn: str
) -> None:  # direct_dsn: the database is reset after the test, whatever it asserted
    connection = await asyncpg.connect(direct_dsn)
    try:
        await connection.execute("INSERT INTO configurations (identifier, content) VALUES ('x', '{}')")
        with pytest.raises(asyncpg.UniqueViolationError):  # an insert rolled back still wrote the heap
            await connection.execute(
                "INSERT INTO instructions (name, content, created) "
                "VALUES ('y', 'a', '2026-01-01'), ('y', 'a', '2026-01-01')"
            )
        assert await connection.fetchval("SELECT pg_relation_size('instructions')") > 0
        await connection.execute("CREATE TABLE scratch (id int)")
    finally:
        await connection.close()
    assert await working_database.reset()
    assert await working_database.reset()  # nothing changed: still no clone
    connection = await asyncpg.connect(direct_dsn)
    try:
        assert await connection.fetchval("SELECT count(*) FROM configurations") == 0
        for table in ("configurations", "instructions"):  # truncated: no page left of either
            assert await connection.fetchval("SELECT pg_relation_size($1::regclass)", table) == 0
        assert await connection.fetchval("SELECT to_regclass('scratch')") is None
    finally:
        await connection.close()


async def test_a_function_of_the_tests_own_clones_the_database_again(
    working_database: WorkingDatabase, direct_dsn: str
) -> None:  # direct_dsn: the database is reset after the test, whatever it asserted
    connection = await asyncpg.connect(direct_dsn)
    try:
        await connection.execute("CREATE FUNCTION leftover() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    finally:
        await connection.close()
    assert not await working_database.reset()
    connection = await asyncpg.connect(direct_dsn)
    try:
        assert await connection.fetchval("SELECT to_regproc('leftover')") is None
    finally:
        await connection.close()
    assert await working_database.reset()
