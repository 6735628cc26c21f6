"""What a vector table is (its facts, read from the catalog in one query) and how a search runs on
it: one statement, or a rolled-back transaction scoping its scan settings (custom plans,
iterative index scans, an exact plan, ef_search / probes)."""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import asyncpg
import attrs

from pgstash.connection import Postgres
from pgstash.errors import ConfigurationError
from pgstash.statements import Statement

__all__ = ["IVFFLAT_COMMENT", "TableFacts", "index_name", "nearest", "read_facts", "table_facts"]

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


def scan_path(facts: TableFacts, candidates: int, filtered: bool, tuned: bool) -> tuple[bool, bool]:
    """(settings, exact): whether the search needs its rolled-back transaction of scan settings,
    and whether it starts with an exact plan. Without an ANN index a search is exact and one
    statement; a filter, an IVFFlat index, more candidates than an HNSW scan yields, or a tuned
    scan need iterative scans (pgvector 0.8+; an exact plan before that)."""
    ann = bool(facts.methods)
    demanding = filtered or "ivfflat" in facts.methods or candidates > HNSW_DEFAULT_EF_SEARCH
    if not ann or not (demanding or tuned):
        return False, False
    return True, not facts.iterative and demanding


async def nearest(
    postgres: Postgres,
    facts: TableFacts,
    search: Statement,
    candidates: int,
    filtered: bool,
    ef_search: int | None,
    probes: int | None,
) -> list[asyncpg.Record]:
    """Runs the search statement, with settings when `scan_path` says so; when the
    approximate scan found fewer candidates than asked it runs again exactly, so a search returns
    `limit` rows whenever that many rows match. Its settings, custom plans included, live in a
    transaction that is always rolled back."""
    settings, exact = scan_path(facts, candidates, filtered, ef_search is not None or probes is not None)
    if not settings:
        rows: list[asyncpg.Record] = await postgres.run_statement(search)
        if not facts.methods or rows[0]["found"] >= candidates:
            return rows
        exact = True

    async def scan(postgres: Postgres) -> list[asyncpg.Record]:
        async with rolled_back(postgres):
            iterative = facts.iterative and not exact
            bound = candidates * SCAN_TUPLES_PER_CANDIDATE if iterative and filtered else None
            await scan_settings(
                postgres, iterative=iterative, exact=exact, ef_search=ef_search, probes=probes,
                max_scan_tuples=bound,
            )  # fmt: skip
            rows: list[asyncpg.Record] = await postgres.run_statement(search)
            if not exact and rows[0]["found"] < candidates:
                await scan_settings(postgres, iterative=False, exact=True, ef_search=None, probes=None)
                rows = await postgres.run_statement(search)
        return rows

    return await postgres.on_replica(scan)  # a read: on a replica when the pool has one


async def scan_settings(postgres: Postgres, **settings: Any) -> None:
    settings.setdefault("max_scan_tuples", None)
    await postgres.run("vectors_scan_settings", **settings)


def rolled_back(postgres: Postgres) -> contextlib.AbstractAsyncContextManager[Postgres]:
    """A transaction (a savepoint inside one) that is always rolled back: the search's
    `set_config(..., true)` settings must not outlive it."""
    return postgres.transaction(rollback=True)


async def run(postgres: Postgres, statement: Statement, *, custom_plans: bool, commit: bool = False) -> Any:
    """Runs `statement`; with `custom_plans`, in a transaction (rolled back, or committed with a
    write) that sets `plan_cache_mode = force_custom_plan` first, whatever the server's default."""
    if not custom_plans:
        return await postgres.run_statement(statement)

    async def planned(postgres: Postgres) -> Any:
        async with postgres.transaction(rollback=not commit):
            await scan_settings(postgres, iterative=False, exact=False, ef_search=None, probes=None)
            return await postgres.run_statement(statement)

    # rolled back, it is a read: on a replica when the pool has one
    return await (planned(postgres) if commit else postgres.on_replica(planned))
