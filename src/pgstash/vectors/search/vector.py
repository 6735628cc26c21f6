"""The `"vector"` search mode (queries/vectors.sql): the rows nearest to a query by cosine
similarity, filtered, thresholded and optionally re-ranked by MMR; without a query, the newest
rows. The statement and its exact fallback are run by `planning.nearest`."""

from __future__ import annotations

import math
from typing import Any

import asyncpg

from pgstash.errors import DimensionMismatchError
from pgstash.sql import names
from pgstash.sql.composer import Fragment, compose
from pgstash.vectors import quantize
from pgstash.vectors.filter_fragments import EVERYTHING
from pgstash.vectors.gate import custom_plans
from pgstash.vectors.inputs import as_stored, given_query
from pgstash.vectors.search import planning
from pgstash.vectors.search.mmr import reranked
from pgstash.vectors.search.options import SearchOptions
from pgstash.vectors.table import VectorTable

__all__ = ["newest", "search"]


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
    if facts.dimension is not None and vector.shape[0] != facts.dimension:
        raise DimensionMismatchError(facts.dimension, vector.shape[0], f'query for table "{table.name}"')
    stored = vector  # the vector as stored: float16 for halfvec
    if facts.precision == "float16":
        stored = as_stored(vector[None, :], facts.precision, "query vector")[0]
    values = {
        "query_vector": stored,
        "candidates": options.fetched,
        "max_distance": options.max_distance,
        "with_embeddings": options.rerank,
    }
    scanned = options.fetched
    if facts.quantized:  # quantize.py: the Hamming shortlist, re-ranked exactly
        scanned = quantize.pool_size(options.fetched, options.candidates)
        search = quantize.binary_search(table.name, facts, where, values, scanned)
    elif options.candidates is not None:
        raise ValueError(
            'candidates sizes the two arms of mode="hybrid", or the Hamming shortlist of a '
            'quantize="binary" table; vector search takes limit'
        )
    else:
        # IVFFlat's iterative scans return rows out of distance order: that statement sorts them
        ordered = names.vectors_search_relaxed if "ivfflat" in facts.methods else names.vectors_search
        search = planning.Search(
            ordered, names.vectors_search_exact, {"table": table.name}, where, values, counted=False,
        )  # fmt: skip
    with table.required():
        rows = await planning.nearest(
            postgres, facts, search, scanned, requirements is not None, options.ef_search,
            options.probes,
        )  # fmt: skip
    if not (scores or options.rerank):  # the models alone: each row's payload read once
        return table.reader()([payload for row in rows if (payload := row["payload"]) is not None])
    found: list[asyncpg.Record] = [row for row in rows if row["payload"] is not None]
    if options.rerank:
        found = reranked(vector, found, options.limit, options.mmr_diversity)
    return table.scored(found, scores)


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
