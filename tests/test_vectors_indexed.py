"""`create_table(..., indexed={path: type})`: comparisons on an indexed payload field read its
generated column, whose B-tree serves range filters (EXPLAIN), and match exactly the rows the
JSONB filter matches on a table without the column (edges: equal to the bound, JSON null, a
missing key, a value of another type); bad input is refused before any SQL."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import attrs
import pytest

from pgstash import AttributeRequirement, Postgres, PostgresVectorIndex
from tests.support.plans import plan_nodes
from tests.support.statements import sent
from tests.support.vectors import Chunk, brute_force, chunks_for, plan_of, unit_rows

R = AttributeRequirement
UTC = dt.UTC


@attrs.frozen
class Paper:
    key: str
    year: Any = None
    lang: str = "en"
    published: dt.datetime | None = None
    meta: dict[str, Any] = attrs.field(factory=dict)


def papers(count: int) -> list[Paper]:
    odd: list[Any] = [None, "2001", True, 2001.0, 2001.5]  # JSON null, other types, a float
    found = []
    for i in range(count):
        year = odd[(i // 10) % len(odd)] if i % 10 == 0 else 1990 + i % 40
        meta = {} if i % 7 == 0 else {"score": (i % 100) / 10}
        published = dt.datetime(2020, 1, 1, tzinfo=UTC) + dt.timedelta(hours=i)
        found.append(Paper(f"p{i}", year, ("en", "de", "fr")[i % 3], published, meta))
    return found


INDEXED = {"year": int, "lang": str, "published": dt.datetime, "meta.score": float}


async def filled(
    postgres: Postgres, table: str, count: int, indexed: Any, dimension: int = 8
) -> PostgresVectorIndex:
    store = PostgresVectorIndex(postgres)
    await store.create_table(Paper, dimension=dimension, table=table, index=None, indexed=indexed)
    vectors = unit_rows(count, dimension)
    values = papers(count)
    by_key = {value.key: vector for value, vector in zip(values, vectors, strict=True)}
    await store.index(Paper, values=values, attribute=lambda value: by_key[value.key], table=table)
    return store


async def keys_of(store: PostgresVectorIndex, table: str, requirement: AttributeRequirement) -> set[str]:
    found = await store.search(
        Paper, query=unit_rows(1, 8, seed=9)[0], limit=10_000, requirements=requirement, table=table
    )
    return {paper.key for paper in found}


REQUIREMENTS = [
    R.equal("year", 2001),
    R.equal("year", 2001.0),
    R.not_equal("year", 2001),
    R.greater("year", 2020),
    R.greater_or_equal("year", 2029),
    R.less("year", 1991),
    R.less_or_equal("year", 1990),
    ~R.greater("year", 2020),
    R.greater("year", 2020) & R.equal("lang", "de"),
    R.greater_or_equal("lang", "en"),
    R.less("lang", "en"),
    R.not_equal("lang", "fr"),
    R.greater("meta.score", 9.5),
    R.less_or_equal("meta.score", 0),
    ~R.less("meta.score", 5),
    R.equal("year", None),
    R.not_equal("year", None),
    R.greater("published", dt.datetime(2020, 1, 2, tzinfo=UTC)),
    R.less_or_equal("published", "2020-01-01T05:00:00+00:00"),
]


async def test_indexed_fields_match_what_the_jsonb_filters_match_at_every_edge(postgres: Postgres) -> None:
    plain = await filled(postgres, "papers_plain", 500, None)
    indexed = await filled(postgres, "papers_indexed", 500, INDEXED)
    for requirement in REQUIREMENTS:
        expected = await keys_of(plain, "papers_plain", requirement)
        assert await keys_of(indexed, "papers_indexed", requirement) == expected, requirement
    # the bound itself, JSON null, another type and a missing key
    at_bound = await keys_of(indexed, "papers_indexed", R.greater_or_equal("year", 2029))
    assert {"p39", "p79"} <= at_bound and "p38" not in at_bound
    assert "p30" in await keys_of(indexed, "papers_indexed", R.equal("year", 2001))  # 2001.0
    assert "p0" not in await keys_of(indexed, "papers_indexed", R.less("year", 3000))  # JSON null
    assert "p10" not in await keys_of(indexed, "papers_indexed", R.less("year", 3000))  # "2001"
    assert "p0" not in await keys_of(
        indexed, "papers_indexed", R.greater_or_equal("meta.score", 0)
    )  # missing
    assert "p0" in await keys_of(indexed, "papers_indexed", ~R.greater_or_equal("meta.score", 0))


async def test_a_range_filter_is_served_by_the_fields_btree(postgres: Postgres) -> None:
    store = await filled(postgres, "papers_range", 20_000, {"year": int, "published": dt.datetime})
    await postgres.execute("ANALYZE papers_range")
    query = unit_rows(1, 8, seed=3)[0]

    async def search() -> None:
        await store.search(
            Paper, query=query, limit=10, requirements=R.greater("year", 2028), table="papers_range"
        )

    plan = await plan_of(postgres, search)
    assert "papers_range_field_year_idx" in plan and "Seq Scan" not in plan
    late = dt.datetime(2020, 1, 1, tzinfo=UTC) + dt.timedelta(hours=19_980)

    async def recent() -> None:
        await store.search(
            Paper, query=query, limit=10, requirements=R.greater("published", late), table="papers_range"
        )

    plan = await plan_of(postgres, recent)
    assert "papers_range_field_published_idx" in plan and "Seq Scan" not in plan
    found = await store.search(
        Paper, query=query, limit=50, requirements=R.greater("published", late), table="papers_range"
    )
    assert sorted(paper.key for paper in found) == sorted(f"p{i}" for i in range(19_981, 20_000))


async def test_a_comparison_of_the_wrong_type_names_the_indexed_path(postgres: Postgres) -> None:
    store = await filled(postgres, "papers_types", 20, INDEXED)
    query = unit_rows(1, 8)[0]
    for requirement in (
        R.greater("year", "2001"),
        R.equal("lang", 3),
        R.less("published", "yesterday"),
        R.equal("year", True),
    ):
        with pytest.raises(TypeError, match=r"'(year|lang|published)' is an indexed"):
            await store.search(Paper, query=query, requirements=requirement, table="papers_types")


async def test_bad_indexed_input_is_refused_before_any_sql(postgres: Postgres) -> None:
    store = PostgresVectorIndex(postgres)
    for indexed, message in (
        ({"year": list}, "is not one of"),
        ({"year": "int"}, "is not one of"),
        ({"nothing": int}, "not a field of Paper"),
        ({"lang.deeper": str}, "not a field of Paper"),
        ({"year; DROP": int}, "each key"),
    ):
        with pytest.raises(ValueError, match=message):
            await store.create_table(Paper, dimension=8, table="papers_bad", indexed=indexed)
    assert await postgres.fetch_value("SELECT to_regclass('papers_bad')") is None


async def test_fields_are_added_to_a_table_holding_rows(postgres: Postgres) -> None:
    store = await filled(postgres, "papers_later", 300, None)
    await store.create_table(Paper, dimension=8, table="papers_later", index=None, indexed={"year": int})
    valid = await postgres.fetch_value(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'papers_later_field_year_idx'::regclass"
    )
    assert valid is True
    found = await keys_of(store, "papers_later", R.greater_or_equal("year", 2029))
    assert found == {f"p{i}" for i in range(300) if i % 40 == 39}
    await store.create_table(Paper, dimension=8, table="papers_later", index=None, indexed={"year": int})
    with pytest.raises(ValueError, match="indexes 'year' as number, not text"):
        await store.create_table(Paper, dimension=8, table="papers_later", index=None, indexed={"year": str})


def _scans(plan: str) -> set[str]:
    """The indexes a JSON plan's scans read."""
    return {node["Index Name"] for node in plan_nodes(json.loads(plan)[0]["Plan"]) if "Index Name" in node}


@pytest.mark.scale
async def test_a_range_search_at_scale_scans_as_its_filter_needs_in_one_statement(postgres: Postgres) -> None:
    """20,000 rows with HNSW and a B-tree on an indexed field: vectors_search (one subquery, the
    count a window, no materialised CTE) still lets each call's custom plan pick its scan, under
    the scan gate: the B-tree and a top-N sort for a range keeping 0.1% of the rows (the exact
    answer, one statement, no re-run), the HNSW walk for one keeping 95%; a score threshold drops
    the farther candidates while the count still counts them (no exact re-run)."""
    store = PostgresVectorIndex(postgres)
    await store.create_table(Chunk, dimension=8, table="ranked", indexed={"rank": int})
    vectors = unit_rows(20_000, 8)
    chunks = chunks_for(vectors)
    await store.index(Chunk, values=chunks, attribute=lambda chunk: vectors[chunk.rank], table="ranked")
    await postgres.execute("VACUUM ANALYZE ranked")
    query = unit_rows(1, 8, seed=5)[0]
    btree, hnsw = "ranked_field_rank_idx", "ranked_embedding_idx"

    def search(requirement: AttributeRequirement, **options: Any) -> Any:
        return store.search_scored(
            Chunk, query=query, limit=10, requirements=requirement, table="ranked", **options
        )

    rare = R.greater("rank", 19_979)  # 20 rows
    assert _scans(await plan_of(postgres, lambda: search(rare))) == {btree}
    with sent(postgres) as statements:
        found = await search(rare)
    assert [statement.name for statement in statements] == ["vectors_search"]
    expected = brute_force(vectors, query, 10, [i > 19_979 for i in range(20_000)])
    assert [(chunk.identifier, round(score, 5)) for chunk, score in found] == [
        (identifier, round(score, 5)) for identifier, score in expected
    ]
    common = R.greater("rank", 999)  # 95% of the rows
    assert _scans(await plan_of(postgres, lambda: search(common))) == {hnsw}
    assert len(await search(common)) == 10
    threshold = expected[4][1] - 1e-6  # the five nearest pass, the other five scanned do not
    with sent(postgres) as statements:
        found = await search(rare, score_threshold=threshold)
    assert [statement.name for statement in statements] == ["vectors_search"]
    assert [chunk.identifier for chunk, _ in found] == [identifier for identifier, _ in expected[:5]]
