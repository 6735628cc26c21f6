"""The `"text"` and `"hybrid"` search modes (queries/vectors_text.sql) on a table with a text
column (`pgstash.vectors.text_column`).

Hybrid search is reciprocal rank fusion in one statement: the `candidates` nearest rows by cosine
and the `candidates` best by `ts_rank_cd`, each ranked 1, 2, 3, ...; a row scores
`weights[0] / (rrf_k + vector rank) + weights[1] / (rrf_k + text rank)`, an arm it is absent from
adding 0.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from pgstash.connection import Postgres
from pgstash.errors import DatabaseError
from pgstash.sql import names
from pgstash.sql.composer import compose
from pgstash.vectors.gate import custom_plans
from pgstash.vectors.inputs import as_stored
from pgstash.vectors.search import planning
from pgstash.vectors.search.mmr import reranked
from pgstash.vectors.search.options import SearchOptions
from pgstash.vectors.table import VectorTable
from pgstash.vectors.text_column import language_of

__all__ = ["bounded", "search"]

_T = TypeVar("_T")


async def bounded(postgres: Postgres, timeout: float | None, run: Callable[[Postgres], Awaitable[_T]]) -> _T:
    """`run(postgres)` under the search's own statement timeout (`vectors_text_timeout`, the
    smaller of `timeout` and the session's), set in a transaction rolled back after it (a
    savepoint in the caller's), never on the session; on one replica connection when the pool
    has replicas. `timeout` None: `run` as it is. A search cut short raises `DatabaseError`
    57014 naming `text_timeout`."""
    if timeout is None:
        return await run(postgres)

    async def block(postgres: Postgres) -> _T:
        async with planning.rolled_back(postgres):
            await postgres.run(names.vectors_text_timeout, milliseconds=max(1, round(timeout * 1000)))
            return await run(postgres)

    try:
        return await postgres.on_replica(block)
    except DatabaseError as error:
        if error.sqlstate != "57014" or "statement timeout" not in str(error):
            raise
        raise DatabaseError(
            error.query,
            "57014",
            f"the search ran past its statement timeout ({timeout:g} s, PostgresVectorIndex("
            "text_timeout=...), or the session's if lower) and was cancelled: use fewer or rarer "
            "words, add requirements, or raise text_timeout",
        ) from error


async def search(table: VectorTable, options: SearchOptions, scores: bool = True) -> list[Any]:
    """`mode="text"` or `"hybrid"` search, as `PostgresVectorIndex.search_scored` (the models
    alone when not `scores`: `search`)."""
    where = await table.where(options.requirements)
    postgres = table.postgres
    words = options.query
    if options.mode == "text":
        facts = await table.facts()
        statement = compose(
            names.vectors_text_search,
            slots={"table": table.name},
            fragments={"requirements": custom_plans(where, options.filtered)},
            words=words,
            language=language_of(facts, table.name, table.model),
            candidates=options.limit,
        )
        with table.required():
            rows = await bounded(postgres, options.text_timeout, lambda pg: pg.run_statement(statement))
        return table.scored(rows, scores)
    vector = await table.query_vector(options.query)
    facts = await table.facts()
    search = planning.Search(
        names.vectors_hybrid,
        None,  # short (rare): run again under enable_indexscan = off
        slots={"table": table.name},
        requirements=where,  # the vector as stored: float16 for halfvec
        values={
            "vector": as_stored(vector[None, :], facts.precision, "query vector")[0],
            "words": words,
            "language": language_of(facts, table.name, table.model),
            "candidates": options.arm,
            "max_distance": options.max_distance,
            "rrf_k": options.rrf_k,
            "weights": [float(weight) for weight in options.weights],
            "rows": None if options.rerank else options.limit,  # None: every fused row, with embeddings
        },
    )
    contained = options.text_timeout is not None
    with table.required():
        rows = await bounded(
            postgres,
            options.text_timeout,
            lambda pg: planning.nearest(
                pg,
                facts,
                search,
                options.arm,
                options.filtered,
                options.ef_search,
                options.probes,
                contained=contained,
            ),
        )
    found: list[asyncpg.Record] = [row for row in rows if row["payload"] is not None]
    if options.rerank:
        found = reranked(vector, found, options.limit, options.mmr_diversity)
    return table.scored(found, scores)
