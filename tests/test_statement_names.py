"""Issue 22 item 2: every statement pgstash writes names itself (`SELECT /* pgstash:NAME */ ...`),
so that the DBA finds each statement the server saw in pg_stat_statements by its pgstash name:
the named queries of queries/ and schema/templates, the migrations (after their file), the
transaction control and the `DISCARD TEMP` pgstash adds to asyncpg's reset. Exempt, and said so:
the caller's own SQL, and what asyncpg writes itself (its type introspection, its reset on
release, LISTEN).

pg_stat_statements needs `shared_preload_libraries`, so the test starts its own server."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import attrs
import pytest

import pgstash
from pgstash import (
    AttributeRequirement,
    HashingEmbedding,
    PostgresConfigurationRepository,
    PostgresConnectionPool,
    PostgresInstructionsRepository,
    PostgresModelMemory,
    PostgresVectorIndex,
)
from pgstash.sql.catalogue import catalogue, load_catalogue
from pgstash.sql.resources import resource_dir
from pgstash.sql.templates import named
from pgstash.stores.memory import ModelInput
from tests.support.replication import ReplicaPair

pytestmark = pytest.mark.process

NAMED = re.compile(r"/\* pgstash:([^*]+) \*/")
# What asyncpg writes itself (exempt): its type introspection (with jit turned off around it), and
# its reset of a connection that ran the caller's SQL or a session (one entry per statement).
ASYNCPG = re.compile(
    r"typeinfo|FROM\s+pg_catalog\.pg_type|set_config\(\$\d, \$\d, \$\d\)"
    r"|pg_advisory_unlock_all|^CLOSE ALL|^UNLISTEN|^RESET ALL|^LISTEN",
    re.IGNORECASE,
)


@pytest.fixture(scope="module")
def server() -> Iterator[ReplicaPair]:
    settings = "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track_utility = on\n"
    folder = Path(tempfile.mkdtemp(prefix="pgstash-statements-"))
    with ReplicaPair.start(folder, standby=False, settings=settings) as pair:
        yield pair


@attrs.frozen
class Settings:
    model: str = "m"


@attrs.frozen
class Chunk:
    text: str
    topic: str


async def workload(dsn: str) -> None:
    """What an application does: migrate, then each store's calls, caches off so reads reach
    the database."""
    async with PostgresConnectionPool.of(dsn=dsn) as postgres:
        await pgstash.migrate(postgres)
        configurations = PostgresConfigurationRepository(postgres, cache_limit=0)
        await configurations.define(Settings())
        assert await configurations.load(Settings) == Settings()
        await configurations.history("Settings")
        instructions = PostgresInstructionsRepository(postgres, cache_limit=0)
        await instructions.define("greeting", "Hello {user}")
        await instructions.resolve("greeting", {"user": "Ada"})
        memory = PostgresModelMemory("session", postgres=postgres)
        await memory.remember(ModelInput("hello"), variables={"n": 1})
        await memory.recall(limit=10)
        vectors = PostgresVectorIndex(postgres, embedding=HashingEmbedding(16))
        await vectors.create_table(Chunk, dimension=16, text="text")
        chunks = [Chunk(f"passage {i} on postgres", topic=f"topic-{i % 3}") for i in range(150)]
        await vectors.index(Chunk, values=chunks, attribute="text")
        topic = AttributeRequirement.equal("topic", "topic-1")
        await vectors.search(Chunk, query="postgres", limit=5)
        await vectors.search(Chunk, query="postgres", limit=5, requirements=topic)
        await vectors.search(Chunk, query="postgres", mode="hybrid", limit=5)
        await vectors.delete(Chunk, requirements=topic)
        async with postgres.transaction(), postgres.transaction():  # BEGIN, SAVEPOINT
            await configurations.define(Settings("n"))
        await configurations.remove("Settings")
        await memory.forget_idle(timedelta(days=30), postgres=postgres)


async def test_the_dba_finds_every_statement_in_pg_stat_statements_by_its_pgstash_name(
    server: ReplicaPair,
) -> None:
    admin = await asyncpg.connect(server.primary_dsn)
    try:
        await admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await admin.execute("DROP DATABASE IF EXISTS app WITH (FORCE)")
        await admin.execute("CREATE DATABASE app")
        await admin.execute("SELECT pg_stat_statements_reset()")
        await workload(server.dsn(server.primary_port, "app"))
        rows = await admin.fetch(
            "SELECT s.query FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
            "WHERE d.datname = 'app'"
        )
    finally:
        await admin.close()
    queries = [row["query"] for row in rows]
    unnamed = [text for text in queries if not NAMED.search(text) and not ASYNCPG.search(text.strip())]
    assert unnamed == []
    names = {match for text in queries for match in NAMED.findall(text)}
    templates = load_catalogue(resource_dir("schema") / "templates")
    # transaction control, reset: the DISCARD TEMP pgstash adds to asyncpg's reset, and
    # introspection: the SET LOCAL jit = off pgstash puts around asyncpg's type introspection
    control = {"begin", "commit", "savepoint", "release savepoint", "rollback", "reset", "introspection"}
    known = {*catalogue(), *templates, *control}
    migrations = {name for name in names if name.startswith("schema/")}
    assert names - known - migrations == set()  # every name is a query's, a migration's or control
    assert {"schema/0001_vector_extension", "schema/0002_configurations"} <= migrations
    assert {
        "configurations_insert",
        "configurations_newest",
        "instructions_newest",
        "memory_recall",
        "vectors_search",
        "vectors_hybrid",
        "vectors_copy",
        "vector_table_create",
        "begin",
        "savepoint",
        "commit",
    } <= names
    for text in queries:  # a migration's statements each carry the file's name, not only its first
        if "CREATE TABLE" in text and "configurations" in text:
            assert "pgstash:schema/0002_configurations " in text


def test_each_statement_of_a_text_is_named_after_its_first_token_and_literals_stay() -> None:
    sql = (
        "-- a file's header\nCREATE TABLE t (a TEXT DEFAULT 'x;y');\n\n/* why */\n"
        "CREATE FUNCTION f() RETURNS INT AS $$ SELECT 1; $$ LANGUAGE sql;\n"
        "(SELECT 1) UNION (SELECT 2);\n"
    )
    assert named(sql, "schema/0009_x") == (
        "-- a file's header\nCREATE /* pgstash:schema/0009_x */ TABLE t (a TEXT DEFAULT 'x;y');\n\n"
        "/* why */\nCREATE /* pgstash:schema/0009_x */ FUNCTION f() RETURNS INT AS $$ SELECT 1; $$ "
        "LANGUAGE sql;\n(SELECT /* pgstash:schema/0009_x */ 1) UNION (SELECT 2);\n"
    )
    assert named("SELECT 1", "a*/ DROP TABLE t; /*") == "SELECT /* pgstash:a* / DROP TABLE t; / * */ 1"
