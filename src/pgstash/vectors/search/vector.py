"""The `"vector"` search mode (queries/vectors.sql): the rows nearest to a query by cosine
similarity, filtered, thresholded and optionally re-ranked by MMR; without a query, the newest
rows. The statement and its exact fallback are run by `planning.nearest`; the default flow's
search (a query vector and a limit, nothing else) is planned once per table state by `Ready`."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any

import asyncpg
import attrs
import numpy as np
from numpy.typing import NDArray

from pgstash.errors import DimensionMismatchError
from pgstash.sql import names
from pgstash.sql.composer import Fragment, compose
from pgstash.vectors import quantize
from pgstash.vectors.facts import TableFacts
from pgstash.vectors.filter_fragments import EVERYTHING
from pgstash.vectors.gate import custom_plans
from pgstash.vectors.inputs import as_stored, given_query
from pgstash.vectors.search import planning, plans
from pgstash.vectors.search.mmr import reranked
from pgstash.vectors.search.options import SearchOptions
from pgstash.vectors.table import VectorTable

__all__ = ["Ready", "newest", "ready", "run", "search"]


async def search(table: VectorTable, options: SearchOptions, scores: bool = True) -> list[Any]:
    """The `limit` rows nearest to the query (as `PostgresVectorIndex.search_scored`); the newest
    rows, scored NaN, when there is no query; the models alone when not `scores` (`search`)."""
    requirements = options.requirements
    where = EVERYTHING if requirements is None else await table.where(requirements)
    postgres = table.postgres  # no pool: ConfigurationError before the query is looked at
    if options.query is None:
        if options.score_threshold is not None or options.rerank:
            raise ValueError("score_threshold and rerank need a query to compare rows with")
        return await newest(table, options, where, scores)
    vector = given_query(options.query)  # a vector as it is; a text or image embedded
    if vector is None:
        vector = await table.query_vector(options.query)
    facts = table.remembered()  # the facts read in the last 30 s: no coroutine to await
    if facts is None:
        facts = await table.facts()
    search, scanned = _search(table, options, facts, where, _stored(table, facts, vector))
    with table.required():
        rows = await planning.nearest(
            postgres, facts, search, scanned, requirements is not None, options.ef_search,
            options.probes,
        )  # fmt: skip
    if options.rerank:
        found = reranked(vector, [row for row in rows if row["payload"] is not None], options.limit,
                         options.mmr_diversity)  # fmt: skip
        return table.scored(found, scores)
    return _read(table, rows, scores)


def _stored(table: VectorTable, facts: TableFacts, vector: NDArray[np.float32]) -> Any:
    """The query vector as the table stores it (float16 for halfvec), its dimension checked."""
    if facts.dimension is not None and vector.shape[0] != facts.dimension:
        raise DimensionMismatchError(facts.dimension, vector.shape[0], f'query for table "{table.name}"')
    if facts.precision == "float16":
        return as_stored(vector[None, :], facts.precision, "query vector")[0]
    return vector


def _search(
    table: VectorTable, options: SearchOptions, facts: TableFacts, where: Fragment, stored: Any
) -> tuple[planning.Search, int]:
    """The search statement for the table's state (`facts`), and how many candidates it scans."""
    values = {
        "query_vector": stored,
        "candidates": options.fetched,
        "max_distance": options.max_distance,
        "with_embeddings": options.rerank,
    }
    if facts.quantized:  # quantize.py: the Hamming shortlist, re-ranked exactly
        scanned = quantize.pool_size(options.fetched, options.candidates)
        return quantize.binary_search(table.name, facts, where, values, scanned), scanned
    if options.candidates is not None:
        raise ValueError(
            'candidates sizes the two arms of mode="hybrid", or the Hamming shortlist of a '
            'quantize="binary" table; vector search takes limit'
        )
    # IVFFlat's iterative scans return rows out of distance order: that statement sorts them
    ordered = names.vectors_search_relaxed if "ivfflat" in facts.methods else names.vectors_search
    search = planning.Search(ordered, names.vectors_search_exact, {"table": table.name}, where, values, False)
    return search, options.fetched


def _read(table: VectorTable, rows: list[asyncpg.Record], scores: bool) -> list[Any]:
    """The rows' models (with their scores when `scores`), rows without a payload left out."""
    if not scores:  # the models alone: each row's payload read once
        return table.reader()([payload for row in rows if (payload := row["payload"]) is not None])
    return table.scored([row for row in rows if row["payload"] is not None], scores)


_MOST_READY = 64  # the limits a table remembers a `Ready` for


def _plain(
    mode: object,
    limit: object,
    candidates: object,
    threshold: object,
    ef_search: object,
    probes: object,
    rerank: object,
    requirements: object,
) -> bool:
    """The default flow's search: a vector search given only its query and an int `limit`."""
    return (
        type(mode) is str and mode == "vector" and rerank is False and type(limit) is int
        and requirements is candidates is threshold is ef_search is probes is None
    )  # fmt: skip


def ready(table: VectorTable, asked: Sequence[Any]) -> Ready | None:
    """The table's `Ready` for a call's arguments (`asked`, in `CALL_FIELDS` order) when the call
    is the default flow's search and one like it ran before (`run` made it); else None."""
    mode, _, limit, candidates, _, _, threshold, ef_search, probes, rerank, requirements = asked
    if _plain(mode, limit, candidates, threshold, ef_search, probes, rerank, requirements):
        return table.ready.get(limit)
    return None


def run(table: VectorTable, options: SearchOptions, scores: bool) -> Awaitable[list[Any]]:
    """A vector search (`options` checked): the default flow's through the table's `Ready` for
    its limit (made now, then found by `ready`), any other through `search`."""
    o = options
    if not _plain(o.mode, o.limit, o.candidates, o.score_threshold, o.ef_search, o.probes, o.rerank,
                  o.requirements):  # fmt: skip
        return search(table, options, scores)
    made = table.ready.get(o.limit)
    if made is None:
        if len(table.ready) >= _MOST_READY:
            table.ready.clear()
        made = table.ready[o.limit] = Ready(table, attrs.evolve(options, query=None))
    return made.run(options.query, scores)


class Ready:
    """The default flow's search planned once: `search(model, query=vector, limit=k)` on one
    table (no requirements, threshold, re-ranking or scan settings), its options checked when
    first asked for (`search_options`). For each state of the table (its remembered
    `TableFacts`, read again every 30 s) it finds once whether `search` would send one plain
    statement (`planning.route`: no settings set inside it) and that statement's plan; a call
    then checks its query vector, binds it, runs the statement and reads the rows as `search`
    does, without deciding again. A query to embed, facts not at hand and any other state go
    through `search` itself."""

    __slots__ = ("approximate", "facts", "options", "plan", "table", "values")

    def __init__(self, table: VectorTable, options: SearchOptions) -> None:
        self.table, self.options = table, options
        self.facts: TableFacts | None = None  # the table's state `plan` is for
        self.plan: plans.Plan | None = None  # None: not planned yet, or that state is not plain
        self.values: Mapping[str, Any] = {}
        self.approximate = False  # an index scan: run again exactly when it comes back short

    async def run(self, query: object, scores: bool) -> list[Any]:
        table = self.table
        postgres = table.postgres  # no pool: ConfigurationError before the query is looked at
        vector = given_query(query) if type(query) is np.ndarray else None
        facts = table.remembered()
        if facts is not None and facts is not self.facts:
            self._plan(facts)
        plan, approximate = self.plan, self.approximate  # another call may plan again meanwhile
        if vector is None or facts is None or plan is None:
            return await search(table, attrs.evolve(self.options, query=query), scores)
        values = {**self.values, "query_vector": _stored(table, facts, vector)}
        with table.required():
            rows: list[asyncpg.Record] = await postgres.run_statement(plan.bind(values, (), None))
            if approximate and len(rows) < self.options.limit:  # short: exactly, as `nearest`
                found, _ = _search(table, self.options, facts, EVERYTHING, values["query_vector"])
                rows = await planning.exactly(postgres, found)
        return _read(table, rows, scores)

    def _plan(self, facts: TableFacts) -> None:
        """Plans the search for the table's state `facts` (no plan when it is not one plain statement)."""
        self.facts, self.plan = facts, None
        if facts.quantized:
            return
        pooled = self.table.postgres.lifecycle.pooling.statement_settings
        way, settings = planning.route(facts, self.options.limit, False, None, None, pooled)
        if way == "exactly" or settings is not None:
            return
        found, _ = _search(self.table, self.options, facts, EVERYTHING, None)
        self.plan = plans.shaped(found.query, found.slots, EVERYTHING, found.values, None)
        self.values, self.approximate = found.values, way == "scan"


async def newest(
    table: VectorTable, options: SearchOptions, where: Fragment, scores: bool = True
) -> list[Any]:
    """The newest `limit` rows meeting the requirements (`where`), each scored NaN (no query to
    score by); the models alone when not `scores`."""
    postgres = table.postgres
    statement = compose(
        names.vectors_newest,
        slots={"table": table.name},
        # custom plans when filtered: a generic one of a filtered listing can read the table
        fragments={"requirements": custom_plans(where, options.filtered)},
        candidates=options.limit,
    )
    with table.required():
        rows = await postgres.run_statement(statement)
    models = table.scored(rows, scores=False)
    return [(found, math.nan) for found in models] if scores else models
