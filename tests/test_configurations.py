"""PostgresConfigurationRepository on a real PostgreSQL: typed loads, history, writers that
collide, bad input, the seed's verbatim table and the index behind the newest-snapshot lookup."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest

from pgstash import (
    ConfigurationError,
    ConfigurationSnapshot,
    Postgres,
    PostgresConfigurationRepository,
    PostgresConnectionPool,
    SchemaMissingError,
)
from pgstash.sql.catalogue import query
from tests.support.caches import drained
from tests.support.plans import plan_nodes


@attrs.frozen
class Generation:
    model: str
    temperature: float = 0.7
    retries: int = 3
    stop: tuple[str, ...] = ()


@dataclasses.dataclass
class Limits:
    requests: int
    burst: int | None = None
    since: datetime | None = None


async def snapshots(postgres: Postgres, identifier: str) -> int:
    count: int = await postgres.fetch_value(
        "SELECT count(*) FROM configurations WHERE identifier = $1", identifier
    )
    return count


async def test_define_then_load_an_attrs_class_and_a_dataclass(postgres: Postgres) -> None:
    repository = PostgresConfigurationRepository(postgres)
    await repository.define(Generation("small", temperature=0.2, stop=("\n",)))
    await repository.define(Limits(10, since=datetime(2024, 5, 1, 12, 30, tzinfo=UTC)), "limits-eu")

    assert await repository.load(Generation) == Generation("small", temperature=0.2, stop=("\n",))
    assert await repository.load(Limits, "limits-eu") == Limits(
        10, since=datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    )
    assert await repository.load_raw("Generation") == {
        "model": "small",
        "temperature": 0.2,
        "retries": 3,
        "stop": ["\n"],
    }


async def test_nothing_stored_gives_the_default(postgres: Postgres) -> None:
    repository = PostgresConfigurationRepository(postgres)
    assert await repository.load(Generation) is None
    fallback = Generation("fallback")
    assert await repository.load(Generation, "missing", default=fallback) is fallback
    assert await repository.load_raw("missing") is None
    assert await repository.history("missing") == ()


async def test_the_newest_snapshot_wins_and_history_keeps_them_all(postgres: Postgres) -> None:
    repository = PostgresConfigurationRepository(postgres)
    for index in range(3):
        await repository.define({"version": index}, "app")
    assert await repository.load_raw("app") == {"version": 2}

    history = await repository.history("app")
    assert [snapshot.content for snapshot in history] == [{"version": 2}, {"version": 1}, {"version": 0}]
    assert all(isinstance(snapshot, ConfigurationSnapshot) for snapshot in history)
    assert history[0].identifier == "app"
    assert history[0].created > history[1].created > history[2].created


async def test_load_raw_returns_a_copy_the_caller_may_change(postgres: Postgres) -> None:
    repository = PostgresConfigurationRepository(postgres)
    await repository.define({"tags": ["a"]}, "copy")
    first = await repository.load_raw("copy")
    assert first is not None
    first["tags"].append("changed")  # type: ignore[index]
    assert await repository.load_raw("copy") == {"tags": ["a"]}


async def test_configurations_lists_every_identifier_sorted(postgres: Postgres) -> None:
    repository = PostgresConfigurationRepository(postgres)
    assert await repository.configurations() == ()
    for identifier in ("b", "A", "a", "b", "ä"):
        await repository.define({"x": 1}, identifier)
    assert list(await repository.configurations()) == ["A", "a", "b", "ä"]
    await repository.remove("a")
    assert list(await repository.configurations()) == ["A", "b", "ä"]


async def test_remove_deletes_every_snapshot_of_the_identifier_only(postgres: Postgres) -> None:
    repository = PostgresConfigurationRepository(postgres)
    for index in range(3):
        await repository.define({"v": index}, "gone")
    await repository.define({"v": 9}, "kept")
    await repository.remove("gone")
    assert await repository.load_raw("gone") is None
    assert await snapshots(postgres, "gone") == 0
    assert await repository.load_raw("kept") == {"v": 9}
    await repository.remove("never-defined")  # nothing to remove is not an error


async def test_a_snapshot_that_does_not_fit_names_the_identifier_and_the_field(postgres: Postgres) -> None:
    repository = PostgresConfigurationRepository(postgres)
    await repository.define({"model": "m", "retries": "three"}, "Generation")
    with pytest.raises(ConfigurationError) as failure:
        await repository.load(Generation, default=Generation("never used"))
    message = str(failure.value)
    assert "'Generation'" in message and "retries" in message and "int" in message

    await repository.define({"burst": 2}, "limits")
    with pytest.raises(ConfigurationError, match=r"'limits'.*required field missing @ \$\.requests"):
        await repository.load(Limits, "limits")


@pytest.mark.parametrize(
    ("stored", "field"),
    [
        ({"model": 5}, "model"),  # cattrs alone would store str(5)
        ({"model": "m", "retries": 2.5}, "retries"),  # ... int(2.5)
        ({"model": "m", "retries": True}, "retries"),  # ... a bool for an int
        ({"model": "m", "temperature": "0.1"}, "temperature"),  # ... float("0.1")
        ({"model": "m", "stop": "abc"}, "stop"),  # ... ("a", "b", "c")
        ({"model": "m", "stop": [1]}, r"stop\[0\]"),
    ],
)
async def test_values_are_not_coerced_into_a_field(
    postgres: Postgres, stored: dict[str, Any], field: str
) -> None:
    repository = PostgresConfigurationRepository(postgres)
    await repository.define(stored, "Generation")
    with pytest.raises(ConfigurationError, match=rf"'Generation'.*\$\.{field}"):
        await repository.load(Generation)


async def test_an_int_is_a_valid_float(postgres: Postgres) -> None:
    repository = PostgresConfigurationRepository(postgres)
    await repository.define({"model": "m", "temperature": 1}, "Generation")
    loaded = await repository.load(Generation)
    assert loaded is not None and loaded.temperature == 1.0 and isinstance(loaded.temperature, float)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda r: r.define({"a": 1}), TypeError),  # a Mapping needs the identifier
        (lambda r: r.define({"a": 1}, ""), ValueError),
        (lambda r: r.define({"a": 1}, 7), TypeError),
        (lambda r: r.define({"a": 1}, "nul\x00"), ValueError),
        (lambda r: r.define({"a": object()}, "x"), TypeError),  # not JSON
        (lambda r: r.define({1: "a"}, "x"), TypeError),  # JSON keys are strings
        (lambda r: r.define(["a"], "x"), TypeError),
        (lambda r: r.define("text", "x"), TypeError),
        (lambda r: r.define(Generation, "x"), TypeError),  # the class, not an instance
        (lambda r: r.load(dict, "x"), TypeError),
        (lambda r: r.load(Generation, ""), ValueError),
        (lambda r: r.load_raw(None), TypeError),
        (lambda r: r.remove(""), ValueError),
        (lambda r: r.history(3), TypeError),
    ],
)
async def test_bad_input_is_refused_before_anything_is_written(
    postgres: Postgres, call: Any, error: type
) -> None:
    repository = PostgresConfigurationRepository(postgres)
    with pytest.raises(error):
        await call(repository)
    assert await postgres.fetch_value("SELECT count(*) FROM configurations") == 0


def test_cache_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="cache_limit"):
        PostgresConfigurationRepository(cache_limit=-1)
    with pytest.raises(ValueError, match="cache_expiration"):
        PostgresConfigurationRepository(cache_expiration="10")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="postgres"):
        PostgresConfigurationRepository("postgresql://x")  # type: ignore[arg-type]


async def test_fifty_concurrent_defines_on_one_identifier_are_all_kept(postgres: Postgres) -> None:
    repository = PostgresConfigurationRepository(postgres)
    await asyncio.gather(*(repository.define({"writer": index}, "contended") for index in range(50)))

    history = await repository.history("contended")
    assert sorted(snapshot.content["writer"] for snapshot in history) == list(range(50))
    created = [snapshot.created for snapshot in history]
    assert len(set(created)) == 50 and created == sorted(created, reverse=True)
    assert await repository.load_raw("contended") == history[0].content


async def test_defines_in_one_transaction_share_its_timestamp_yet_are_all_kept(postgres: Postgres) -> None:
    # The seed's default `created` is the transaction's start time: two inserts in one transaction
    # would collide on the primary key. define() must not rely on it.
    repository = PostgresConfigurationRepository(postgres)
    async with postgres.transaction():
        for index in range(5):
            await repository.define({"step": index}, "one-transaction")
    history = await repository.history("one-transaction")
    assert [snapshot.content["step"] for snapshot in history] == [4, 3, 2, 1, 0]


async def test_a_define_after_a_snapshot_stamped_in_the_future_is_the_newest(postgres: Postgres) -> None:
    # Another writer with a clock ahead of ours: `created` must still increase.
    repository = PostgresConfigurationRepository(postgres)
    await postgres.execute(
        "INSERT INTO configurations (identifier, content, created) "
        "VALUES ('skewed', '{\"v\": \"future\"}', now() + interval '1 hour')"
    )
    await repository.define({"v": "ours"}, "skewed")
    assert await repository.load_raw("skewed") == {"v": "ours"}


async def test_an_adapter_without_postgres_uses_the_current_pool_at_call_time(database_dsn: str) -> None:
    repository = PostgresConfigurationRepository()
    with pytest.raises(ConfigurationError, match="no PostgreSQL pool is active"):
        await repository.load_raw("x")
    async with PostgresConnectionPool.of(dsn=database_dsn):
        await repository.define(Generation("current"))
        assert await repository.load(Generation) == Generation("current")
    async with PostgresConnectionPool.of(dsn=database_dsn):  # a new pool: a new cache, same rows
        assert await repository.load(Generation) == Generation("current")
    with pytest.raises(ConfigurationError):
        await repository.configurations()


async def test_a_missing_table_names_it_and_the_command_that_creates_it(empty_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=empty_dsn) as postgres:
        repository = PostgresConfigurationRepository(postgres)
        with pytest.raises(SchemaMissingError, match=r'"configurations".*pgstash migrate'):
            await repository.load(Generation)
        with pytest.raises(SchemaMissingError, match='"configurations"'):
            await repository.define(Generation("x"))


# Verbatim from seed.md.
SEED_CONFIGURATIONS = """
CREATE TABLE configurations (
    identifier TEXT NOT NULL,
    content JSONB NOT NULL,
    created TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (identifier, created)
);
"""


async def test_the_seeds_verbatim_table_is_enough(empty_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=empty_dsn) as postgres:
        await postgres.execute(SEED_CONFIGURATIONS)
        repository = PostgresConfigurationRepository(postgres)
        await asyncio.gather(*(repository.define(Generation(f"m{index}")) for index in range(20)))
        assert len(await repository.history("Generation")) == 20
        await repository.define(Generation("last"))
        assert await repository.load(Generation) == Generation("last")
        assert list(await repository.configurations()) == ["Generation"]
        await repository.remove("Generation")
        assert await repository.load(Generation) is None


async def explain(postgres: Postgres, name: str, *args: Any) -> list[dict[str, Any]]:
    document = await postgres.fetch_value(f"EXPLAIN (FORMAT JSON) {query(name).sql}", *args)
    return plan_nodes(json.loads(document)[0]["Plan"])


async def test_the_newest_snapshot_lookup_is_a_primary_key_scan(postgres: Postgres) -> None:
    await postgres.execute(
        "INSERT INTO configurations (identifier, content, created) "
        "SELECT 'config-' || i, jsonb_build_object('i', i, 'v', v), "
        "       timestamptz '2024-01-01' + make_interval(secs => v) "
        "FROM generate_series(1, 10000) AS i, generate_series(1, 10) AS v"
    )
    await postgres.execute("ANALYZE configurations")

    nodes = await explain(postgres, "configurations_newest", "config-4242")
    types = {node["Node Type"] for node in nodes}
    assert "Seq Scan" not in types and "Sort" not in types, types
    scans = [node for node in nodes if node["Node Type"] in ("Index Scan", "Index Only Scan")]
    assert scans and scans[0]["Index Name"] == "configurations_pkey", nodes
    assert scans[0]["Scan Direction"] == "Backward", nodes

    # history reads one identifier's range of the same index (a sort of its few rows is fine)
    nodes = await explain(postgres, "configurations_history", "config-4242")
    assert "Seq Scan" not in {node["Node Type"] for node in nodes}
    assert any(node.get("Index Name") == "configurations_pkey" for node in nodes)

    # define's read of the newest `created` is served by the same index
    nodes = await explain(postgres, "configurations_insert", "config-99", {"x": 1}, None)
    assert "Seq Scan" not in {node["Node Type"] for node in nodes}
    assert any(node.get("Index Name") == "configurations_pkey" for node in nodes)

    repository = PostgresConfigurationRepository(postgres)
    assert await repository.load_raw("config-4242") == {"i": 4242, "v": 10}


async def test_a_loaded_mutable_configuration_is_the_callers_own(postgres: Postgres) -> None:
    repository = PostgresConfigurationRepository(postgres)
    await repository.define(Limits(5), "limits")
    first = await repository.load(Limits, "limits")
    assert first is not None
    first.requests = 99
    assert await repository.load(Limits, "limits") == Limits(5)
    # a frozen one cannot change, so the cached snapshot's instance is shared
    await repository.define(Generation("g"))
    await drained(postgres)  # the define's own NOTIFY, which evicts once more
    assert await repository.load(Generation) is await repository.load(Generation)
    await repository.define(Generation("h"))
    assert await repository.load(Generation) == Generation("h")


async def test_configurations_of_a_kind(postgres: Postgres) -> None:
    repository = PostgresConfigurationRepository(postgres)
    await repository.define(Generation("a"), "first")
    await repository.define(Generation("b"))
    await repository.define({"x": 1}, "plain")
    await repository.define({"x": 2}, "tagged", kind="Generation")
    assert list(await repository.configurations(kind="Generation")) == ["Generation", "first", "tagged"]
    assert list(await repository.configurations(kind="Missing")) == []
    assert list(await repository.configurations()) == ["Generation", "first", "plain", "tagged"]
    stored = await postgres.fetch("SELECT identifier, name FROM configurations ORDER BY identifier")
    assert [(row["identifier"], row["name"]) for row in stored] == [
        ("Generation", "Generation"), ("first", "Generation"), ("plain", None), ("tagged", "Generation"),
    ]  # fmt: skip
    async with postgres.session(), postgres.connection() as connection:
        await connection.execute("SET enable_seqscan = off")
        plan = await connection.fetchval(
            f"EXPLAIN (FORMAT JSON) {query('configurations_of_kind').sql}", "Generation"
        )
        await connection.execute("RESET enable_seqscan")
    assert "configurations_name_identifier_idx" in plan


async def test_kind_on_the_seeds_verbatim_table_names_the_migration(empty_dsn: str) -> None:
    async with PostgresConnectionPool.of(dsn=empty_dsn) as postgres:
        await postgres.execute(SEED_CONFIGURATIONS)
        repository = PostgresConfigurationRepository(postgres)
        await repository.define(Generation("m"))  # stored, without its kind
        with pytest.raises(ConfigurationError, match="0009_configuration_names"):
            await repository.configurations(kind="Generation")
        with pytest.raises(ConfigurationError, match="pgstash migrate"):
            await repository.define({"x": 1}, "x", kind="Generation")
        assert await repository.load(Generation) == Generation("m")
