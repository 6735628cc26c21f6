"""Bulk ingest into indexed tables (issue 13), on a real PostgreSQL with pgvector: the ANN index is
built from the data for a batch large next to the table, kept for a small batch, put back after a
failed load; searches keep working meanwhile; build_index rebuilds without blocking."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from pgstash import Postgres, PostgresVectorIndex
from pgstash.vectors.write import bulk
from tests.support.bulk import Chunk, chunks
from tests.support.vectors import unit_rows


async def ann_index(postgres: Postgres, table: str = "chunk") -> dict[str, Any] | None:
    """The table's embedding index: its oid (a rebuilt index has a new one), method, options, valid."""
    row = await postgres.fetch_one(
        "SELECT ic.oid, am.amname, ic.reloptions, i.indisvalid FROM pg_index AS i "
        "JOIN pg_class AS ic ON ic.oid = i.indexrelid JOIN pg_am AS am ON am.oid = ic.relam "
        "WHERE i.indrelid = $1::regclass AND am.amname IN ('hnsw', 'ivfflat')",
        table,
    )
    return None if row is None else dict(row)


async def test_a_large_batch_into_an_hnsw_table_gets_its_index_built_from_the_data(
    postgres: Postgres,
) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=8)
    before = await ann_index(postgres)
    vectors = unit_rows(600, 8)
    assert await index.index(Chunk, values=chunks(600), attribute=lambda c: vectors[c.rank]) == 600
    after = await ann_index(postgres)
    assert before is not None and after is not None
    assert after["oid"] != before["oid"], "the HNSW index was built again from the data, not grown row by row"
    assert after["amname"] == "hnsw" and after["indisvalid"]
    assert await postgres.fetch_value("SELECT count(*) FROM chunk") == 600
    assert await postgres.fetch_value("SELECT obj_description('chunk'::regclass, 'pg_class')") is None
    found = await index.search(Chunk, query=vectors[17], limit=1)
    assert found == [Chunk("c17", 17)]


async def test_a_small_batch_goes_into_the_existing_index(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=8)
    vectors = unit_rows(700, 8)
    await index.index(Chunk, values=chunks(600), attribute=lambda c: vectors[c.rank])
    built = await ann_index(postgres)
    await index.index(Chunk, values=chunks(100, 600), attribute=lambda c: vectors[c.rank])
    kept = await ann_index(postgres)
    assert built is not None and kept is not None and kept["oid"] == built["oid"]
    assert await index.search(Chunk, query=vectors[650], limit=1) == [Chunk("c650", 650)]


async def test_a_failed_bulk_load_writes_nothing_and_puts_the_index_back(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=8)
    vectors = unit_rows(600, 8)
    values = chunks(600)
    values[500] = Chunk(float("nan"), 500)  # type: ignore[arg-type]  # JSON has no NaN: fails mid-COPY
    with pytest.raises(ValueError, match="payload 500"):
        await index.index(Chunk, values=values, attribute=lambda c: vectors[c.rank])
    restored = await ann_index(postgres)
    assert restored is not None and restored["amname"] == "hnsw" and restored["indisvalid"]
    assert await postgres.fetch_value("SELECT count(*) FROM chunk") == 0
    assert await postgres.fetch_value("SELECT obj_description('chunk'::regclass, 'pg_class')") is None


async def test_searches_during_a_bulk_load_run_exactly_on_the_rows_before_it(postgres: Postgres) -> None:
    """While the load's transaction builds the index, a search neither waits nor fails: it sees
    the table as it was (exact scan), then the new rows and index together after the commit."""
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=64)
    old = unit_rows(200, 64, seed=1)
    await index.index(Chunk, values=chunks(200), attribute=lambda c: old[c.rank])
    new = unit_rows(3000, 64, seed=2)
    load = asyncio.create_task(
        index.index(Chunk, values=chunks(3000, 200), attribute=lambda c: new[c.rank - 200])
    )
    seen_during = 0
    while not load.done():
        building = await postgres.fetch_value(
            "SELECT count(*) FROM pg_stat_progress_create_index WHERE relid = 'chunk'::regclass"
        )
        found = await asyncio.wait_for(index.search(Chunk, query=new[0], limit=3), timeout=30)
        if building and not load.done():
            seen_during += 1
            assert all(chunk.rank < 200 for chunk in found), "only the rows before the load are visible"
        await asyncio.sleep(0.01)
    await load
    assert (await index.search(Chunk, query=new[0], limit=1)) == [Chunk("c200", 200)]
    if not seen_during:
        pytest.skip("the build finished before a search could overlap it")


async def test_ivfflat_is_built_from_the_data_with_lists_from_the_row_count(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=8, index="ivfflat")
    vectors = unit_rows(2500, 8)
    await index.index(Chunk, values=chunks(2500), attribute=lambda c: vectors[c.rank])
    built = await ann_index(postgres)
    assert built is not None and built["amname"] == "ivfflat" and built["reloptions"] == ["lists=2"]


def test_lists_follow_pgvectors_advice() -> None:
    assert [bulk.lists_for(rows) for rows in (0, 999, 2500, 1_000_000, 4_000_000)] == [1, 1, 2, 1000, 2000]


async def test_build_index_rebuilds_without_blocking_writes(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=8)
    vectors = unit_rows(800, 8)
    await index.index(Chunk, values=chunks(600), attribute=lambda c: vectors[c.rank])
    before = await ann_index(postgres)
    samples: list[bulk.BuildProgress] = []
    build = asyncio.create_task(index.build_index(Chunk, progress=samples.append))
    await index.index(Chunk, values=chunks(10, 600), attribute=lambda c: vectors[c.rank])
    await build
    after = await ann_index(postgres)
    assert before is not None and after is not None and after["oid"] != before["oid"] and after["indisvalid"]
    assert await index.search(Chunk, query=vectors[605], limit=1) == [Chunk("c605", 605)]


async def uses_ann_index(postgres: Postgres, vector: NDArray[np.float32]) -> bool:
    """Whether the search's ORDER BY can use the table's ANN index (sequential scans off: on a
    table this small the planner would rather read it all)."""
    async with postgres.transaction(rollback=True):
        await postgres.execute("SET LOCAL enable_seqscan = off")
        plan = await postgres.fetch_value(
            "EXPLAIN (FORMAT JSON) SELECT id FROM chunk ORDER BY embedding <=> $1 LIMIT 5", vector
        )
    return "chunk_embedding_idx" in str(plan)


async def test_keyed_reingest_of_a_bulk_batch_replaces_its_rows_and_builds_the_index(
    postgres: Postgres,
) -> None:
    """The keyed DELETE runs in the bulk load's transaction, before its COPY and index build: a
    second ingest of the same keys leaves one row per key, the newest, and an HNSW index built
    from the data (a new one) that searches use."""
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=8)
    old, new = unit_rows(600, 8, seed=3), unit_rows(600, 8, seed=4)
    await index.index(Chunk, values=chunks(600), attribute=lambda c: old[c.rank], key="identifier")
    first = await ann_index(postgres)
    again = [Chunk(chunk.identifier, chunk.rank + 1000) for chunk in chunks(600)]
    await index.index(Chunk, values=again, attribute=lambda c: new[c.rank - 1000], key="identifier")
    second = await ann_index(postgres)
    assert await postgres.fetch_value("SELECT count(*) FROM chunk") == 600
    assert await postgres.fetch_value("SELECT count(DISTINCT payload->>'identifier') FROM chunk") == 600
    assert await postgres.fetch_value("SELECT min((payload->>'rank')::int) FROM chunk") == 1000
    assert first is not None and second is not None and second["indisvalid"]
    assert second["oid"] != first["oid"], "the re-ingest was a bulk load: the index built again"
    assert await uses_ann_index(postgres, new[42])
    assert await index.search(Chunk, query=new[42], limit=1) == [Chunk("c42", 1042)]


async def test_searches_keep_working_while_a_keyed_bulk_load_runs(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=32)
    old = unit_rows(300, 32, seed=5)
    await index.index(Chunk, values=chunks(300), attribute=lambda c: old[c.rank], key="identifier")
    new = unit_rows(2000, 32, seed=6)
    load = asyncio.create_task(
        index.index(Chunk, values=chunks(2000), attribute=lambda c: new[c.rank], key="identifier")
    )
    searches = 0
    while not load.done() or not searches:
        found = await asyncio.wait_for(index.search(Chunk, query=old[7], limit=5), timeout=30)
        assert len(found) == 5
        searches += 1
        await asyncio.sleep(0.005)
    assert await load == 2000
    assert await postgres.fetch_value("SELECT count(*) FROM chunk") == 2000
    assert await index.search(Chunk, query=new[7], limit=1) == [Chunk("c7", 7)]
    assert await uses_ann_index(postgres, new[7])


async def test_two_bulk_loads_at_once_both_land(postgres: Postgres) -> None:
    """Two loads that both planned before either dropped the index, whose COPYs then overlap, would
    each hold ROW EXCLUSIVE and wait for the other's at CREATE INDEX: a deadlock. The bulk lock
    (`vectors_bulk_lock`) runs them one after the other. Here each load waits up to a second for
    the other's COPY before it builds, so without the lock the COPYs overlap."""
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=16)
    vectors = unit_rows(1200, 16, seed=7)
    loads = [await bulk.plan(postgres, "chunk", 600, 16) for _ in range(2)]
    assert all(load is not None and load.drops for load in loads), "both planned with the index there"
    copied = [asyncio.Event(), asyncio.Event()]

    async def load(which: int) -> None:
        planned = loads[which]
        assert planned is not None and await bulk.drop_indexes(postgres, planned)
        async with bulk.rebuilt(postgres, planned):
            await index.index(Chunk, values=chunks(600, 600 * which), attribute=lambda c: vectors[c.rank])
            copied[which].set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(copied[1 - which].wait(), timeout=1.0)

    await asyncio.gather(load(0), load(1))
    assert await postgres.fetch_value("SELECT count(*) FROM chunk") == 1200
    built = await ann_index(postgres)
    assert built is not None and built["indisvalid"]
    assert await index.search(Chunk, query=vectors[900], limit=1) == [Chunk("c900", 900)]


async def test_loading_builds_the_index_once_for_many_batches_all_or_nothing(postgres: Postgres) -> None:
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=8)
    vectors = unit_rows(2000, 8, seed=8)
    before = await ann_index(postgres)
    async with index.loading(Chunk, rows=1000):
        for first in range(0, 1000, 100):  # small batches: alone each would go in row by row
            await index.index(Chunk, values=chunks(100, first), attribute=lambda c: vectors[c.rank])
        assert await ann_index(postgres) is None, "the index is off while the batches are copied"
    built = await ann_index(postgres)
    assert before is not None and built is not None and built["oid"] != before["oid"] and built["indisvalid"]
    with pytest.raises(RuntimeError, match="stop"):
        async with index.loading(Chunk, rows=1000):
            await index.index(Chunk, values=chunks(1000, 1000), attribute=lambda c: vectors[c.rank])
            raise RuntimeError("stop")
    assert await postgres.fetch_value("SELECT count(*) FROM chunk") == 1000
    restored = await ann_index(postgres)
    assert restored is not None and restored["amname"] == "hnsw" and restored["indisvalid"]
    assert await index.search(Chunk, query=vectors[500], limit=1) == [Chunk("c500", 500)]


async def test_a_bulk_load_into_a_float16_table_builds_its_halfvec_index(postgres: Postgres) -> None:
    """The build templates take the opclass of the index they replace (halfvec_cosine_ops here)."""
    index = PostgresVectorIndex(postgres)
    await index.create_table(Chunk, dimension=8, precision="float16")
    before = await ann_index(postgres)
    vectors = unit_rows(600, 8, seed=9)
    await index.index(Chunk, values=chunks(600), attribute=lambda c: vectors[c.rank])
    after = await ann_index(postgres)
    assert before is not None and after is not None and after["oid"] != before["oid"]
    opclass = await postgres.fetch_value(
        "SELECT oc.opcname FROM pg_index AS i JOIN pg_opclass AS oc ON oc.oid = i.indclass[0] "
        "WHERE i.indexrelid = $1",
        after["oid"],
    )
    assert opclass == "halfvec_cosine_ops"
    assert await index.search(Chunk, query=vectors[5], limit=1) == [Chunk("c5", 5)]
