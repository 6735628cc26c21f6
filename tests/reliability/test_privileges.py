"""Least privilege: a superuser creates the extension, an owner role runs `migrate`, and the
application's role, holding only the grants of the README's Deployment section (run from the
README itself), uses every store, and can neither change stored content nor run `migrate`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import attrs
import pytest

import pgstash
from pgstash import (
    AttributeRequirement,
    DatabaseError,
    HashingEmbedding,
    MigrationError,
    ModelInput,
    ModelOutput,
    PostgresConfigurationRepository,
    PostgresConnectionPool,
    PostgresInstructionsRepository,
    PostgresModelMemory,
    PostgresVectorIndex,
)
from pgstash.stores.listener import Listener
from tests.support.caches import drained
from tests.support.readme import database_preparation, deployment_grants
from tests.support.roles import as_role, login_roles


@attrs.frozen
class Chunk:
    text: str
    group: int


@pytest.fixture
async def roles(empty_dsn: str) -> AsyncIterator[tuple[str, str]]:
    """An owner role and an application role (unique names: roles are server-wide); the
    extension created by the superuser, as the README says."""
    admin = await asyncpg.connect(empty_dsn)
    try:
        async with login_roles(admin, "pgstash_owner", "pgstash_app") as (owner, app):
            await admin.execute(f"GRANT CREATE ON SCHEMA public TO {owner}")
            await admin.execute(database_preparation().replace("pgstash_app", app))
            yield owner, app
    finally:
        await admin.close()


async def test_every_store_works_through_the_application_role_and_migrate_needs_the_owner(
    empty_dsn: str, roles: tuple[str, str]
) -> None:
    owner, app = roles
    async with PostgresConnectionPool.of(dsn=as_role(empty_dsn, owner)) as postgres:
        assert await pgstash.migrate(postgres)
        tables, vector_table = deployment_grants()
        await postgres.execute(tables.replace("pgstash_app", app))
        await PostgresVectorIndex(postgres).create_table(Chunk, dimension=16)
        await postgres.execute(vector_table.replace("pgstash_app", app))

    async with PostgresConnectionPool.of(dsn=as_role(empty_dsn, app)) as postgres:
        assert await postgres.fetch_value("SELECT current_user") == app
        assert await postgres.fetch_value("SHOW lock_timeout") == "5s"  # the README's role settings
        assert await postgres.fetch_value("SHOW idle_in_transaction_session_timeout") == "1min"
        configurations = PostgresConfigurationRepository(postgres)
        await configurations.define({"model": "m-1"}, "app")
        await configurations.define({"model": "m-2"}, "app")
        assert await configurations.load_raw("app") == {"model": "m-2"}
        assert list(await configurations.configurations()) == ["app"]
        assert len(await configurations.history("app")) == 2
        assert Listener.of(postgres).listening  # LISTEN needs no privilege
        await drained(postgres)  # and the NOTIFYs of its defines arrive
        await configurations.remove("app")
        assert await configurations.load_raw("app") is None

        instructions = PostgresInstructionsRepository(postgres)
        await instructions.define("greet", "Hello {name}")
        assert await instructions.resolve("greet", {"name": "Ada"}) == "Hello Ada"
        assert [declaration.name for declaration in await instructions.available_instructions()] == ["greet"]
        await instructions.remove("greet")
        assert await instructions.load("greet") is None

        memory = PostgresModelMemory("chat", postgres=postgres)
        await memory.remember(ModelInput("Hi"), ModelOutput("Hello"), variables={"turn": 1})
        await memory.remember(ModelInput("Again"))  # an existing memory: its row is locked
        await memory.maintenance(variables={"turn": 2})
        recall = await memory.recall()
        assert [element.content for element in recall.context] == ["Hi", "Hello", "Again"]
        assert recall.variables == {"turn": 2}
        await memory.forget()  # the cascade to elements and variables runs as the tables' owner
        assert (await memory.recall()).context == ()

        async with postgres.transaction():  # every store in one transaction, as the app role
            await configurations.define({"v": 1}, "together")
            await memory.remember(ModelInput("together"))
            await instructions.define("together", "x")

        vectors = PostgresVectorIndex(postgres, embedding=HashingEmbedding(16))
        chunks = [Chunk(f"chunk number {n}", n % 3) for n in range(30)]
        assert await vectors.index(Chunk, values=chunks, attribute="text") == 30
        found = await vectors.search(
            Chunk, query="chunk number 7", limit=3, requirements=AttributeRequirement.equal("group", 1)
        )
        assert found[0] == chunks[7] and all(chunk.group == 1 for chunk in found)
        assert len(await vectors.search(Chunk, query="chunk", limit=5, rerank=True, score_threshold=-1)) == 5
        assert await vectors.delete(Chunk, requirements=AttributeRequirement.equal("group", 0)) == 10
        await vectors.create_table(Chunk, dimension=16)  # complete already: a catalog read, no DDL
        with pytest.raises(DatabaseError) as refused:  # DDL is the owner's
            await vectors.create_table(Chunk, dimension=16, table="chunk_new")
        assert refused.value.sqlstate == "42501"

        # what the role may not do
        for statement in (
            "UPDATE configurations SET content = '{}'",
            "UPDATE memories_elements SET content = '{}'",
            "UPDATE chunk SET payload = '{}'",
            "DROP TABLE instructions",
            "CREATE TABLE intruder (x INT)",
        ):
            with pytest.raises(DatabaseError) as refused:
                await postgres.execute(statement)
            assert refused.value.sqlstate == "42501", statement
        with pytest.raises(MigrationError, match=r"migrate must run as the role that owns.*Deployment"):
            await pgstash.migrate(postgres)
