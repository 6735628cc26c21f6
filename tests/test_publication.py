"""Keys: every table `pgstash migrate` creates has a primary key, hence a replica identity, so
the stores' deletes work on tables in a `FOR ALL TABLES` publication (logical replication,
change-data capture, blue/green upgrades); `created` defaults to `clock_timestamp()`, so another
writer's two inserts for one key in one transaction do not collide on those keys, and pgstash's
own writers stamp distinct `created` values inside one transaction."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg

from pgstash import (
    ModelInput,
    ModelOutput,
    Postgres,
    PostgresConfigurationRepository,
    PostgresInstructionsRepository,
    PostgresModelMemory,
)

TABLES = ("configurations", "instructions", "memories", "memories_elements", "memories_variables")


async def test_every_table_of_migrate_has_a_primary_key(postgres: Postgres) -> None:
    rows = await postgres.fetch(
        "SELECT c.relname, i.indexrelid::regclass::text AS key FROM pg_class AS c "
        "JOIN pg_namespace AS n ON n.oid = c.relnamespace AND n.nspname = current_schema() "
        "LEFT JOIN pg_index AS i ON i.indrelid = c.oid AND i.indisprimary WHERE c.relkind = 'r'"
    )
    keys = {row["relname"]: row["key"] for row in rows}
    assert set(TABLES) <= set(keys)
    assert {table: key for table, key in keys.items() if key is None} == {}


async def test_forget_remove_and_prune_work_under_a_publication_for_all_tables(
    postgres: Postgres, database_dsn: str
) -> None:
    admin = await asyncpg.connect(database_dsn)
    try:
        await admin.execute("CREATE PUBLICATION pgstash_everything FOR ALL TABLES")
        configurations = PostgresConfigurationRepository(postgres)
        instructions = PostgresInstructionsRepository(postgres)
        memory = PostgresModelMemory("replicated", postgres=postgres)
        for version in range(3):
            await configurations.define({"version": version}, "replicated")
            await instructions.define("replicated", f"version {version}")
        await memory.remember(ModelInput("hello"), ModelOutput("hi"), variables={"turn": 1})
        assert await postgres.run("configurations_prune", keep=2, older_than=None) == 1
        assert await postgres.run("instructions_prune", keep=1, older_than=None) == 2
        await memory.forget()  # the cascade deletes elements and variables
        await configurations.remove("replicated")
        await instructions.remove("replicated")
        await PostgresModelMemory("idle", postgres=postgres).remember(ModelInput("old"))
        async with postgres.transaction():
            for lock_only in (True, False):
                forgotten = await postgres.run(
                    "memory_forget_idle", idle_before=datetime(9999, 1, 1, tzinfo=UTC), lock_only=lock_only
                )
        assert forgotten == 1
        for table in TABLES:
            assert await postgres.fetch_value(f"SELECT count(*) FROM {table}") == 0, table
    finally:
        await admin.execute("DROP PUBLICATION IF EXISTS pgstash_everything")
        await admin.close()


async def test_two_inserts_by_another_writer_in_one_transaction_do_not_collide(postgres: Postgres) -> None:
    """Without `created`, as a hand-written script or another service would insert."""
    async with postgres.transaction():
        for _ in range(2):
            await postgres.execute("INSERT INTO configurations (identifier, content) VALUES ('k', '{}')")
            await postgres.execute("INSERT INTO instructions (name, content) VALUES ('k', 'text')")
            await postgres.execute("INSERT INTO memories (identifier) VALUES ('k') ON CONFLICT DO NOTHING")
            await postgres.execute("INSERT INTO memories_elements (identifier, content) VALUES ('k', '{}')")
            await postgres.execute(
                "INSERT INTO memories_variables (identifier, variables) VALUES ('k', '{}')"
            )
    for table in ("configurations", "instructions", "memories_elements", "memories_variables"):
        assert await postgres.fetch_value(f"SELECT count(DISTINCT created) FROM {table}") == 2, table


async def test_pgstash_writers_stamp_distinct_created_values_in_one_transaction(postgres: Postgres) -> None:
    configurations = PostgresConfigurationRepository(postgres)
    instructions = PostgresInstructionsRepository(postgres)
    memory = PostgresModelMemory("one-transaction", postgres=postgres)
    async with postgres.transaction():
        for turn in range(3):
            await configurations.define({"turn": turn}, "k")
            await instructions.define("k", f"turn {turn}")
            await memory.remember(
                ModelInput(f"in {turn}"), ModelOutput(f"out {turn}"), variables={"turn": turn}
            )
            await memory.maintenance(variables={"turn": turn, "maintained": True})
    assert [snapshot.content["turn"] for snapshot in await configurations.history("k")] == [2, 1, 0]
    assert len(await instructions.history("k")) == 3
    recall = await memory.recall()
    assert [element.content for element in recall.context] == [
        text for turn in range(3) for text in (f"in {turn}", f"out {turn}")
    ]
    assert recall.variables == {"turn": 2, "maintained": True}
    assert await postgres.fetch_value("SELECT count(*) FROM memories_variables") == 6
