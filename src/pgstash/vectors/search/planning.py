"""How a vector or hybrid search runs on a table (its facts: `pgstash.vectors.facts`): one
statement, its per-call scan settings (ef_search / probes, the filtered HNSW walk's bound) set
inside it, and a second, exact one in the rare case the index scan came back short.

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
from collections.abc import Mapping
from typing import Any

import asyncpg
import attrs

from pgstash.connection import Postgres
from pgstash.sql import names
from pgstash.sql.catalogue import Query
from pgstash.sql.composer import Fragment
from pgstash.sql.statements import Statement
from pgstash.sql.templates import SlotValue
from pgstash.vectors.facts import TableFacts
from pgstash.vectors.search import plans

__all__ = ["Search", "exactly", "nearest", "rolled_back", "route", "scan_settings_for"]

HNSW_DEFAULT_EF_SEARCH = 40  # an HNSW scan without iterative scans yields at most ef_search rows
# A filtered iterative HNSW scan visits at most this many tuples per candidate asked for: a filter
# matching fewer than 1 row in 50 comes back short and runs exactly (the GIN bitmap on payload and
# a top-N sort), which beats walking the graph for it (issue 17: 1% of 200,000 rows, 111 ms by
# HNSW, 17 ms exact).
SCAN_TUPLES_PER_CANDIDATE = 50


@attrs.frozen(slots=True)
class Search:
    """A vector search before its requirements are spliced: `query` (`vectors_search` or
    `vectors_hybrid`: the ANN index serves its ORDER BY ... LIMIT), `exact` (the same rows by an
    exact plan, one statement; None: `query` again under `enable_indexscan = off`), the table
    slot, the requirements fragment and the values of its parameters. `counted`: `query`'s rows
    say how many candidates its scan found (`found`); else each candidate is a row
    (`vectors_search`)."""

    query: Query
    exact: Query | None
    slots: Mapping[str, SlotValue]
    requirements: Fragment
    values: Mapping[str, Any]
    counted: bool = True

    def statement(
        self, *, exact: bool = False, settings: Mapping[str, int | None] | None = None
    ) -> Statement:
        """The statement to send: exact or not; with `settings` (ef_search, probes,
        max_scan_tuples) set inside it by `vectors_scan_gate` around the requirements. Composed
        once per shape (`plans.py`); the exact statement may take fewer slots and values (a
        binary search's dimension, pool)."""
        template = self.exact if exact and self.exact is not None else self.query
        return plans.statement(template, self.slots, self.requirements, self.values, settings)


def scan_settings_for(
    facts: TableFacts,
    candidates: int,
    filtered: bool,
    ef_search: int | None,
    probes: int | None,
    pooled: bool = False,
) -> dict[str, int | None] | None:
    """The per-call settings a search sets inside its statement (None: no `vectors_scan_gate`).
    Iterative index scans are on for every connection of the pool
    (`pgstash.connection.pool.SCAN_SETTINGS`), so only `ef_search`/`probes` when given and, for a
    filtered HNSW scan, the bound on the tuples it visits (`SCAN_TUPLES_PER_CANDIDATE` per
    candidate) remain. A filtered search always gets the gate: it keeps its plans custom.
    `pooled` (behind a transaction pooler: no setting travels with the connection): the gate
    turns the iterative scans on too, for every search that needs them."""
    hnsw = "hnsw" in facts.methods or facts.quantized
    bound = candidates * SCAN_TUPLES_PER_CANDIDATE if filtered and hnsw else None
    iterative = pooled and (filtered or "ivfflat" in facts.methods or candidates > HNSW_DEFAULT_EF_SEARCH)
    if ef_search is None and probes is None and not filtered and not iterative:
        return None
    return {"iterative": int(iterative), "ef_search": ef_search, "probes": probes, "max_scan_tuples": bound}


def route(
    facts: TableFacts,
    candidates: int,
    filtered: bool,
    ef_search: int | None,
    probes: int | None,
    pooled: bool,
) -> tuple[str, dict[str, int | None] | None]:
    """How `nearest` runs a search on a table in the state `facts` describe: `("exact", tuned)`
    on a table without an ANN index (the search is exact: one statement, with the caller's
    ef_search / probes when given, should an index have been built since the facts were read:
    a given probes= never silently drops); `("exactly", None)`: the exact plan from the start
    (pgvector before 0.8, no iterative scans, and a search that could come back short);
    `("scan", settings)`: the index scan with `settings` set inside it (`scan_settings_for`,
    None: nothing to set), run again exactly when it found fewer candidates than asked."""
    if not facts.methods and not facts.quantized:
        tuned = {"ef_search": ef_search, "probes": probes}
        return "exact", tuned if any(tuned.values()) else None
    demanding = filtered or "ivfflat" in facts.methods or candidates > HNSW_DEFAULT_EF_SEARCH
    if demanding and not facts.iterative:
        return "exactly", None
    return "scan", scan_settings_for(facts, candidates, filtered, ef_search, probes, pooled=pooled)


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
    """Runs the search (by its `route`) in one statement, its per-call settings set inside it;
    inside a caller's transaction those settings would outlast the statement, so there it runs
    in a savepoint that is rolled back (not when `contained`: the caller runs it in a transaction
    of its own that is rolled back after it, as a text search's timeout is). When the
    approximate scan found fewer candidates than asked (a filter the bounded HNSW walk did not
    satisfy, iterative scans turned off by the caller's server_settings) the search runs again
    exactly, so it returns `limit` rows whenever that many rows match. Without an ANN index the
    search is exact and one statement; with pgvector before 0.8 (no iterative scans) a search
    that could come back short starts exact."""
    pooled = postgres.lifecycle.pooling.statement_settings  # behind a pooler: nothing set at connect
    way, settings = route(facts, candidates, filtered, ef_search, probes, pooled)
    if way == "exactly":
        return await exactly(postgres, search)
    if settings is None:  # nothing set inside it: one statement, in or out of a transaction
        rows: list[asyncpg.Record] = await postgres.run_statement(search.statement())
    else:
        rows = await _run(postgres, search, settings, contained)
    if way == "exact":
        return rows
    if search.counted:
        found = rows[0]["found"] if rows else 0
    else:
        found = len(rows)  # no row: nothing met the requirements
    if found >= candidates:
        return rows
    return await exactly(postgres, search)


async def _run(
    postgres: Postgres, search: Search, settings: Mapping[str, int | None] | None, contained: bool
) -> list[asyncpg.Record]:
    """The search with `settings` set inside it; in a caller's transaction (unless `contained`),
    in a savepoint rolled back after it when it sets any (a filtered IVFFlat search sets nothing)."""
    rows: list[asyncpg.Record]
    if settings is not None and any(settings.values()) and postgres.in_transaction and not contained:
        async with rolled_back(postgres):
            rows = await postgres.run_statement(search.statement(settings=settings))
        return rows
    rows = await postgres.run_statement(search.statement(settings=settings))
    return rows


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
    await postgres.run(names.vectors_scan_settings, **settings)


def rolled_back(postgres: Postgres) -> contextlib.AbstractAsyncContextManager[Postgres]:
    """A transaction (a savepoint inside one) that is always rolled back: the search's
    `set_config(..., true)` settings must not outlive it."""
    return postgres.transaction(rollback=True)
