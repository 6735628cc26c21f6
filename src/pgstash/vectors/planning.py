"""What a vector table is (its facts, read from the catalog in one query) and how a search runs on
it: one statement, its per-call scan settings (ef_search / probes, the filtered HNSW walk's
bound) set inside it, and a second, exact one in the rare case the index scan came back short.

Plans: each search shape is one statement prepared once per connection (asyncpg's statement
cache); PostgreSQL's default `plan_cache_mode = auto` may run it with its generic plan after five
custom ones when that plan is not estimated costlier. Measured at 5,000 rows (HNSW + GIN on
payload, equality filters matching 0.5% and 99.5% of the rows): the generic plan of a filtered
search (filter and LIMIT unknown) reads the GIN bitmap and sorts every row it returns, 14-20 ms
for the common filter where its custom plan walks HNSW in 1.1-1.4 ms (10 rows either way), and
`auto` did switch to it (tests/test_round_trips.py). So every filtered search carries
`vectors_scan_gate`, whose never-run branch makes the generic plan cost 1.25e10: `auto` keeps
planning it for its values (0.3-0.5 ms of planning, which the old path's force_custom_plan paid
too) in the same round trip. `plan_cache_mode` set at connect instead would re-plan every
statement of the pool and the caller's SQL, and cannot be set inside the statement (the plan is
chosen before it runs). An unfiltered search has one plan shape, HNSW, generic or custom.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import asyncpg
import attrs

from pgstash.connection import Postgres
from pgstash.errors import ConfigurationError
from pgstash.sql.catalogue import Query
from pgstash.sql.composer import Fragment, compose, fragment
from pgstash.sql.statements import Statement
from pgstash.sql.templates import SlotValue

__all__ = [
    "IVFFLAT_COMMENT", "Search", "TableFacts", "custom_plans", "index_name", "nearest", "read_facts",
    "table_facts",
]  # fmt: skip

FACTS_TTL = 30.0  # seconds a table's dimension and indexes are remembered between searches
HNSW_DEFAULT_EF_SEARCH = 40  # an HNSW scan without iterative scans yields at most ef_search rows
# A filtered iterative HNSW scan visits at most this many tuples per candidate asked for: a filter
# matching fewer than 1 row in 50 comes back short and runs exactly (the GIN bitmap on payload and
# a top-N sort), which beats walking the graph for it (issue 17: 1% of 200,000 rows, 111 ms by
# HNSW, 17 ms exact).
SCAN_TUPLES_PER_CANDIDATE = 50
PRECISION_OF = {"vector": "float32", "halfvec": "float16"}  # the embedding column's type: precision
IVFFLAT_COMMENT = "pgstash: index=ivfflat"  # create_table's note: build IVFFlat once rows are there
_SHARED_KEY = "pgstash.vectors.tables"


def index_name(table: str, suffix: str) -> str:
    """`{table}_{suffix}`, shortened with a digest of the table name to PostgreSQL's 63 bytes."""
    name = f"{table}_{suffix}"
    if len(name) <= 63:
        return name
    digest = hashlib.blake2b(table.encode(), digest_size=4).hexdigest()
    return f"{table[: 63 - len(suffix) - len(digest) - 2]}_{digest}_{suffix}"


@attrs.frozen(slots=True)
class TableFacts:
    """A vector table as the catalog describes it (`vectors_table_facts`)."""

    present: bool
    dimension: int | None  # None: no fixed dimension (or no table)
    precision: str | None  # "float32" (vector), "float16" (halfvec); None: no such column
    storage: str | None  # the embedding column's attstorage: m (MAIN), p, e (EXTERNAL), x
    indexes: frozenset[str]  # names of the table's valid indexes
    invalid_indexes: frozenset[str]  # left by a failed concurrent build
    methods: frozenset[str]  # access methods of valid cosine indexes on embedding
    primary_key: bool
    text_expression: str | None  # the text column's generation expression, as the server prints it
    ivfflat_pending: bool  # create_table(index="ivfflat") ran before the table had rows
    iterative: bool  # pgvector >= 0.8: iterative index scans
    now: datetime  # the server's clock when the facts were read
    read_at: float  # time.monotonic() when read
    comment: str | None = None  # the table's comment: create_table's note, a bulk load's record


def _version(text: str | None) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text or "")[:3])


async def read_facts(postgres: Postgres, name: str) -> TableFacts:
    """The table's facts from the catalog (one statement), remembered for searches."""
    row = await postgres.run("vectors_table_facts", table_name=name)
    facts = TableFacts(
        present=bool(row["present"]),
        dimension=row["dimension"] if row["dimension"] is not None and row["dimension"] > 0 else None,
        precision=PRECISION_OF.get(row["vector_type"] or ""),
        storage=row["storage"],
        indexes=frozenset(row["indexes"] or ()),
        invalid_indexes=frozenset(row["invalid_indexes"] or ()),
        methods=frozenset(row["methods"] or ()),
        primary_key=bool(row["primary_key"]),
        text_expression=row["text_expression"],
        ivfflat_pending=row["comment"] == IVFFLAT_COMMENT,
        iterative=_version(row["vector_version"]) >= (0, 8),
        now=row["now"],
        read_at=time.monotonic(),
        comment=row["comment"],
    )
    known = tables(postgres)
    if facts.present and row["dimension"] is not None:
        known[name] = facts
    else:
        known.pop(name, None)
    return facts


def tables(postgres: Postgres) -> dict[str, TableFacts]:
    """The facts this pool has read, by table name (nothing else is cached: the codecs and the
    statements are the executor's, so a pool opened before `migrate` keeps working)."""
    known: dict[str, TableFacts] = postgres.shared(_SHARED_KEY, lambda _: {})
    return known


async def table_facts(
    postgres: Postgres, name: str, missing: Callable[[], Exception], fresh: bool = False
) -> TableFacts:
    """The facts of a vector table that must exist (`missing()` is raised otherwise), at most
    `FACTS_TTL` seconds old unless `fresh`."""
    known = tables(postgres).get(name)
    if known is not None and not fresh and time.monotonic() - known.read_at < FACTS_TTL:
        return known
    facts = await read_facts(postgres, name)
    if not facts.present:
        raise missing()
    if facts.storage is None:
        raise ConfigurationError(
            f'table "{name}" has no embedding column, so it is not a vector table; '
            "pass table= to name another, or create one with create_table"
        )
    return facts


@attrs.frozen(slots=True)
class Search:
    """A vector search before its requirements are spliced: `query` (`vectors_search` or
    `vectors_hybrid`: the ANN index serves its ORDER BY ... LIMIT), `exact` (the same rows by an
    exact plan, one statement; None: `query` again under `enable_indexscan = off`), the table
    slot, the requirements fragment and the values of its parameters."""

    query: Query
    exact: Query | None
    slots: Mapping[str, SlotValue]
    requirements: Fragment
    values: Mapping[str, Any]

    def statement(
        self, *, exact: bool = False, settings: Mapping[str, int | None] | None = None
    ) -> Statement:
        """The statement to send: exact or not; with `settings` (ef_search, probes,
        max_scan_tuples) set inside it by `vectors_scan_gate` around the requirements."""
        requirements = self.requirements if settings is None else gated(self.requirements, settings)
        template = self.exact if exact and self.exact is not None else self.query
        return compose(template, slots=self.slots, fragments={"requirements": requirements}, **self.values)


def gated(requirements: Fragment, settings: Mapping[str, int | None]) -> Fragment:
    """`requirements` inside `vectors_scan_gate`: `settings` (ef_search, probes,
    max_scan_tuples; None sets nothing) set in the statement, and custom plans kept."""
    return fragment(
        "vectors_scan_gate",
        fragments={"requirements": requirements},
        ef_search=settings.get("ef_search"),
        probes=settings.get("probes"),
        max_scan_tuples=settings.get("max_scan_tuples"),
        custom_plans=True,
    )


def custom_plans(requirements: Fragment, filtered: bool) -> Fragment:
    """The requirements of a filtered listing, text search or delete, whose best plan depends on
    the filter's values: gated (no settings), so the server plans each call for its values in its
    one statement (a generic plan of `ORDER BY created DESC LIMIT` with an unknown filter can read
    the whole table backwards); unfiltered, as they are (one plan shape)."""
    return gated(requirements, {}) if filtered else requirements


def scan_settings_for(
    facts: TableFacts, candidates: int, filtered: bool, ef_search: int | None, probes: int | None
) -> dict[str, int | None] | None:
    """The per-call settings a search sets inside its statement (None: no `vectors_scan_gate`).
    Iterative index scans are on for every connection of the pool
    (`pgstash.connection.pool.SCAN_SETTINGS`), so only `ef_search`/`probes` when given and, for a
    filtered HNSW scan, the bound on the tuples it visits (`SCAN_TUPLES_PER_CANDIDATE` per
    candidate) remain. A filtered search always gets the gate: it keeps its plans custom."""
    bound = candidates * SCAN_TUPLES_PER_CANDIDATE if filtered and "hnsw" in facts.methods else None
    if ef_search is None and probes is None and not filtered:
        return None
    return {"ef_search": ef_search, "probes": probes, "max_scan_tuples": bound}


async def nearest(
    postgres: Postgres,
    facts: TableFacts,
    search: Search,
    candidates: int,
    filtered: bool,
    ef_search: int | None,
    probes: int | None,
    *,
    contained: bool = False,
) -> list[asyncpg.Record]:
    """Runs the search in one statement, its per-call settings (`scan_settings_for`) set inside
    it; inside a caller's transaction those settings would outlast the statement, so there it runs
    in a savepoint that is rolled back (not when `contained`: the caller runs it in a transaction
    of its own that is rolled back after it, as a text search's timeout is). When the
    approximate scan found fewer candidates than asked (a filter the bounded HNSW walk did not
    satisfy, iterative scans turned off by the caller's server_settings) the search runs again
    exactly, so it returns `limit` rows whenever that many rows match. Without an ANN index the
    search is exact and one statement; with pgvector before 0.8 (no iterative scans) a search
    that could come back short starts exact."""
    if not facts.methods:
        rows: list[asyncpg.Record] = await postgres.run_statement(search.statement())
        return rows
    demanding = filtered or "ivfflat" in facts.methods or candidates > HNSW_DEFAULT_EF_SEARCH
    if demanding and not facts.iterative:
        return await exactly(postgres, search)
    settings = scan_settings_for(facts, candidates, filtered, ef_search, probes)
    sets = settings is not None and any(value is not None for value in settings.values())
    if sets and postgres.in_transaction and not contained:  # a filtered IVFFlat search sets nothing
        async with rolled_back(postgres):
            rows = await postgres.run_statement(search.statement(settings=settings))
    else:
        rows = await postgres.run_statement(search.statement(settings=settings))
    if rows[0]["found"] >= candidates:
        return rows
    return await exactly(postgres, search)


async def exactly(postgres: Postgres, search: Search) -> list[asyncpg.Record]:
    """The search by an exact plan: its exact statement (one round trip), or without one the
    search under `enable_indexscan = off` in a rolled-back transaction (on one replica
    connection when the pool has replicas)."""
    if search.exact is not None:
        rows: list[asyncpg.Record] = await postgres.run_statement(search.statement(exact=True))
        return rows

    async def scan(postgres: Postgres) -> list[asyncpg.Record]:
        async with rolled_back(postgres):
            await scan_settings(postgres, iterative=False, exact=True, ef_search=None, probes=None)
            rows: list[asyncpg.Record] = await postgres.run_statement(search.statement())
        return rows

    return await postgres.on_replica(scan)  # a read: on a replica when the pool has one


async def scan_settings(postgres: Postgres, **settings: Any) -> None:
    settings.setdefault("max_scan_tuples", None)
    await postgres.run("vectors_scan_settings", **settings)


def rolled_back(postgres: Postgres) -> contextlib.AbstractAsyncContextManager[Postgres]:
    """A transaction (a savepoint inside one) that is always rolled back: the search's
    `set_config(..., true)` settings must not outlive it."""
    return postgres.transaction(rollback=True)
