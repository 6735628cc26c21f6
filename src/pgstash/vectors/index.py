"""`PostgresVectorIndex`: one pgvector table per model (the seed's five columns, id the primary
key), binary COPY for ingest, cosine search with payload filters, score thresholds and MMR
re-ranking.

Every statement comes from a template: `schema/templates/vector_table.sql` (the table and its
indexes, see `write/tables.py`) and `queries/vectors.sql` (copy, search, newest, delete), their
`{table}` slot filled with a validated, quoted identifier and the payload filter composed from
`queries/fragments/filters.sql`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import attrs
import cattrs

from pgstash.connection import Postgres
from pgstash.embeddings import as_embedding
from pgstash.vectors import documents as chunk_sets
from pgstash.vectors import payloads, reads
from pgstash.vectors.filters import AttributeRequirement
from pgstash.vectors.inputs import ImageEmbedding, TextEmbedding
from pgstash.vectors.search import options as settings
from pgstash.vectors.search import text as text_search
from pgstash.vectors.search import vector as vector_search
from pgstash.vectors.table import VectorTable
from pgstash.vectors.write import builds, tables
from pgstash.vectors.write import loading as batches
from pgstash.vectors.write.delete import delete as delete_rows
from pgstash.vectors.write.ingest import ingest

__all__ = ["PostgresVectorIndex"]

Model = TypeVar("Model")


def _embedder(function: Any) -> Any:
    """An embedding as an `Embedder` (see pgstash.embeddings): sync or async, batched."""
    return None if function is None else as_embedding(function)


@attrs.frozen(slots=True)
class PostgresVectorIndex:
    """A pgvector index of attrs or dataclass models, one table per model.

    `embedding` embeds texts and `image_embedding` images (bytes): callables, sync or async,
    returning an `(n, d)` array-like, wrapped by `pgstash.embeddings.as_embedding` (batches,
    bounded concurrency, a sync one in a worker thread). `mmr_multiplier`: how many candidates
    per result `rerank=True` weighs; `mmr_diversity`: MMR's trade-off (0 nearest first, 1 only
    diverse). `converter` turns models into the stored payload and back (default: cattrs' orjson
    preset, so bytes, sets, datetimes, UUIDs, Decimals and times become JSON and read back). Text
    and hybrid search: a query holds at most `max_query_terms` terms and `max_query_characters`
    characters (`ValueError` beyond, before anything is sent) and runs under a statement timeout
    of its own, `text_timeout` seconds (the session's when lower; None: none of its own), set
    inside its transaction.
    """

    postgres: Postgres | None = None
    embedding: TextEmbedding | None = attrs.field(default=None, kw_only=True, converter=_embedder)
    image_embedding: ImageEmbedding | None = attrs.field(default=None, kw_only=True, converter=_embedder)
    mmr_multiplier: int = attrs.field(default=8, kw_only=True, validator=settings.multiplier)
    converter: cattrs.Converter = attrs.field(
        default=None, kw_only=True, converter=payloads.default_converter
    )
    mmr_diversity: float = attrs.field(default=0.5, kw_only=True, validator=settings.diversity)
    max_query_terms: int = attrs.field(default=64, kw_only=True, validator=settings.query_bound)
    max_query_characters: int = attrs.field(default=4_096, kw_only=True, validator=settings.query_bound)
    text_timeout: float | None = attrs.field(default=5.0, kw_only=True, validator=settings.text_timeout)
    _tables: dict[Any, VectorTable] = attrs.field(factory=dict, init=False, repr=False, eq=False, hash=False)

    # -- tables ----------------------------------------------------------------------------------

    async def create_table(
        self,
        model: type,
        *,
        dimension: int,
        index: str | None = "hnsw",
        distance: str = "cosine",
        table: str | None = None,
        text: Any = None,
        language: str = "english",
        precision: str = "float32",
        indexed: Mapping[Any, type] | None = None,
        quantize: str | None = None,
        documents: bool = False,
    ) -> None:
        """Creates the model's table (the seed's five columns, `PRIMARY KEY (id)`, vectors stored
        inline), an `"hnsw"` or `"ivfflat"` cosine index on `embedding` (none with `index=None`:
        exact search), a GIN index on `payload` (filters) and a B-tree on `created` (listing).
        Only what the catalog shows missing is made (on an existing table: the key, the storage,
        the indexes, built `CONCURRENTLY` when it holds rows); IVFFlat waits for enough rows to
        train on (see `write/tables.py`). An existing table of another dimension raises
        `DimensionMismatchError`. `precision="float16"` stores `halfvec(dimension)` (2 bytes a
        component instead of 4; HNSW and IVFFlat index up to 4,000 dimensions instead of 2,000);
        vectors are cast to float16 on ingest. An existing table of another precision raises
        `ConfigurationError`. `indexed={path: type}`: B-tree-served payload fields (`columns.py`);
        `quantize="binary"`: HNSW over the signs, re-ranked (`quantize.py`); `documents=True`: the
        column `index(..., document=...)` needs (`documents.py`)."""
        vectors = self._table(model, table)
        v3 = (indexed, quantize, documents is True)  # issue 26: columns.py, quantize.py, documents.py
        await tables.create(vectors, dimension, index, distance, text, language, precision, *v3)

    # -- ingest ----------------------------------------------------------------------------------

    async def index(
        self,
        model: type[Model],
        *,
        values: Iterable[Model],
        attribute: Any,
        meta: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        table: str | None = None,
        key: Any = None,
        document: Any = None,
    ) -> int:
        """Embeds what `attribute` (a field name, an attrs field or a callable) yields for each
        value (text with `embedding`, bytes with `image_embedding`, else a ready vector) and
        writes every row with one binary COPY, `created` increasing in input order. Every vector
        is checked (dimension, NaN, infinity, zero norm) and the model's payload read back once
        before anything is written. `meta` is one mapping for every row or one per value.
        Returns the number of rows written.

        With `key` (a field name, dotted payload path, attrs field or callable), each row's `id`
        is derived from the table and its key (`write/keys.py`), and the rows of the keys written are
        deleted in the COPY's transaction: ingesting again leaves one row per key, the newest.
        Two values with the same key raise `ValueError` before anything is written.

        Into a table with an HNSW/IVFFlat index, a batch of 100 rows or more while the table holds
        fewer than 3x as many is a bulk load (`write/bulk.py`): the index dropped in a short transaction,
        then the keyed DELETE, the COPY and the index built from the data in one transaction.
        Searches meanwhile see the table as it was, exactly; writes wait for the commit. With
        `document`, each named document's whole chunk set is replaced (`documents.py`)."""
        return await ingest(self._table(model, table), values, attribute, meta, key, document)

    # -- search ----------------------------------------------------------------------------------

    async def search(
        self,
        model: type[Model],
        *,
        query: Any = None,
        limit: int = 8,
        score_threshold: float | None = None,
        requirements: AttributeRequirement | None = None,
        rerank: bool = False,
        table: str | None = None,
        ef_search: int | None = None,
        probes: int | None = None,
        mode: str = "vector",
        candidates: int | None = None,
        rrf_k: int = 60,
        weights: tuple[float, float] = (1.0, 1.0),
    ) -> list[Model]:
        """The `limit` rows nearest to `query` by cosine similarity (a text, image bytes or a
        vector; None: the newest rows), among rows meeting `requirements` and scoring at least
        `score_threshold`; `rerank=True` picks them by MMR among `limit * mmr_multiplier`
        candidates (at most 10,000 either way). `ef_search` / `probes` tune an HNSW / IVFFlat
        scan for this query only.

        On a table with a text column (`create_table(..., text=...)`): `mode="text"` finds the
        rows matching `query` (a string in web-search syntax, `websearch_to_tsquery`), best
        `ts_rank_cd` first, newer first among equals. `mode="hybrid"` fuses, in one statement,
        the `candidates` nearest rows (`score_threshold` applies to them) and the `candidates` best
        text matches (default `max(4 * limit, 20)` each) by reciprocal rank fusion: a row scores
        `weights[0] / (rrf_k + vector rank) + weights[1] / (rrf_k + text rank)`, an arm it is
        absent from adding 0, ties going to the better vector rank, then text rank.
        `requirements` apply in both arms; `rerank=True` picks by MMR among the fused rows."""
        asked = (mode, query, limit, candidates, rrf_k, weights, score_threshold, ef_search, probes, rerank)
        found: list[Model] = await self._search(model, table, *asked, requirements, scores=False)
        return found

    async def search_scored(
        self,
        model: type[Model],
        *,
        query: Any = None,
        limit: int = 8,
        score_threshold: float | None = None,
        requirements: AttributeRequirement | None = None,
        rerank: bool = False,
        table: str | None = None,
        ef_search: int | None = None,
        probes: int | None = None,
        mode: str = "vector",
        candidates: int | None = None,
        rrf_k: int = 60,
        weights: tuple[float, float] = (1.0, 1.0),
    ) -> list[tuple[Model, float]]:
        """`search` with each model's score, the cosine similarity `1 - (embedding <=> query)`
        (NaN for the newest-first listing, which has no query); with `mode="text"` the
        `ts_rank_cd`, with `mode="hybrid"` the fused score."""
        asked = (mode, query, limit, candidates, rrf_k, weights, score_threshold, ef_search, probes, rerank)
        scored: list[tuple[Model, float]] = await self._search(model, table, *asked, requirements)
        return scored

    # -- delete ----------------------------------------------------------------------------------

    async def delete(
        self,
        model: type,
        *,
        requirements: AttributeRequirement | None = None,
        everything: bool = False,
        table: str | None = None,
        keys: Iterable[str | int] | None = None,
        documents: Iterable[str | int] | None = None,
    ) -> int:
        """Deletes the rows meeting `requirements` (every row only with `everything=True`), or
        the rows of `keys` (as `index(..., key=...)` wrote them), and returns how many it
        deleted. A delete by requirements of more than a quarter of the table's rows then
        rebuilds its nearest-neighbour index concurrently and vacuums it (`write/delete.py`), so
        that searches keep their speed; inside a transaction it logs that recommendation instead.
        `documents=[...]` deletes whole chunk sets (`documents.py`)."""
        if documents is not None:
            return await chunk_sets.delete(
                self._table(model, table), documents, requirements, everything, keys
            )
        return await delete_rows(self._table(model, table), requirements, everything, keys)

    # -- reads -----------------------------------------------------------------------------------

    async def get(
        self,
        model: type[Model],
        *,
        keys: Iterable[str | int] | None = None,
        ids: Iterable[Any] | None = None,
        table: str | None = None,
    ) -> list[Model | None]:
        """The models of `keys` or row `ids` in the order asked, None where none (`reads.py`)."""
        return await reads.get(self._table(model, table), keys, ids)

    async def page(
        self,
        model: type[Model],
        requirements: AttributeRequirement | None = None,
        after: str | None = None,
        limit: int = 100,
        *,
        table: str | None = None,
    ) -> reads.Page[Model]:
        """One keyset page by `(created, id)` after the cursor `after` (`reads.py`)."""
        return await reads.page(self._table(model, table), requirements, after, limit)

    # -- index builds ----------------------------------------------------------------------------

    async def build_index(
        self,
        model: type,
        *,
        index: str | None = None,
        table: str | None = None,
        progress: Callable[[builds.BuildProgress], object] | None = None,
    ) -> float:
        """Builds the table's ANN index on `embedding` again from its rows, without blocking reads
        or writes (`CONCURRENTLY`): `index` "hnsw" or "ivfflat" (default: the method it has, else
        the one `create_table` noted, else HNSW); IVFFlat gets lists from today's row count.
        `progress` receives `pg_stat_progress_create_index` samples while it runs. Returns the
        seconds it took."""
        return await batches.build_index(self._table(model, table), index, progress)

    @contextlib.asynccontextmanager
    async def loading(self, model: type, *, rows: int, table: str | None = None) -> AsyncIterator[None]:
        """One transaction for the `index` calls inside it (a load fed in batches): all their
        rows are written, or none. When `rows` (how many the load expects) is large next to the
        table, by `index`'s own rule, the table's HNSW/IVFFlat index is dropped first, in a short
        transaction of its own, the batches are copied into the table without it, and it is built
        from the data once, at the end of the transaction (a failed load puts it back). Meanwhile
        searches see the table as it was, searched exactly. Otherwise the rows go into the
        existing index. Inside a caller's transaction: a savepoint, no index dropped."""
        async with batches.loading(self._table(model, table), rows):
            yield

    # -- helpers ---------------------------------------------------------------------------------

    def _table(self, model: type, table: str | None) -> VectorTable:
        """The call's context: the model checked, the table named (`ValueError` for a bad name),
        remembered by model and `table=` (`VectorTable.of`)."""
        try:
            return self._tables[model, table]
        except (KeyError, TypeError):  # not yet (or not hashable): VectorTable.of checks, makes, remembers
            own = (self.postgres, self.converter, self.embedding, self.image_embedding)
        return VectorTable.of(self._tables, model, table, *own)

    def _search(self, model: type, table: str | None, *asked: Any, scores: bool = True) -> Awaitable[Any]:
        """A search call on its table: by its `Ready` (the default flow, planned once), else its arguments
        (`asked`: `settings.CALL_FIELDS`) checked with the index's settings (`settings.INDEX_FIELDS`)
        by `search_options`. Awaited by the caller (a coroutine less); models alone unless `scores`."""
        vectors = self._table(model, table)
        ready = vector_search.ready(vectors, asked)  # the default flow, planned once
        if ready is not None:
            return ready.run(asked[1], scores)
        own = (self.mmr_multiplier, self.mmr_diversity, self.text_timeout, self.max_query_terms)
        options = settings.search_options(asked, (*own, self.max_query_characters))
        run = vector_search.run if options.mode == "vector" else text_search.search
        return run(vectors, options, scores)
