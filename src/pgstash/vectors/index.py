"""`PostgresVectorIndex`: one pgvector table per model (the seed's five columns, id the primary
key), binary COPY for ingest, cosine search with payload filters, score thresholds and MMR
re-ranking.

Every statement comes from a template: `schema/templates/vector_table.sql` (the table and its
indexes, see `tables.py`) and `queries/vectors.sql` (copy, search, newest, delete), their
`{table}` slot filled with a validated, quoted identifier and the payload filter composed from
`queries/filters.sql`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import attrs
import cattrs
import numpy as np

from pgstash.connection import Postgres, resolve
from pgstash.errors import ConfigurationError, DatabaseError, DimensionMismatchError, SchemaMissingError
from pgstash.sql.catalogue import query as named_query
from pgstash.sql.composer import Fragment, compose
from pgstash.validators import positive_int
from pgstash.vectors import bulk, inputs, maintenance, payloads, planning, tables
from pgstash.vectors import keys as row_keys
from pgstash.vectors import text as fulltext
from pgstash.vectors.filters import AttributeRequirement, requirement_fragment
from pgstash.vectors.index_builds import IndexBuilds
from pgstash.vectors.ingest import copy_stream, microseconds_since_2000
from pgstash.vectors.inputs import ImageEmbedding, TextEmbedding, table_name
from pgstash.vectors.mmr import maximal_marginal_relevance
from pgstash.vectors.payload_keys import payload_key_of

__all__ = ["PostgresVectorIndex"]

Model = TypeVar("Model")
_INDEXES = ("hnsw", "ivfflat", None)


@attrs.frozen(slots=True)
class PostgresVectorIndex(IndexBuilds):
    """A pgvector index of attrs or dataclass models, one table per model.

    `embedding` embeds texts and `image_embedding` images (bytes): async callables returning an
    `(n, d)` array-like. `mmr_multiplier`: how many candidates per result `rerank=True` weighs;
    `mmr_diversity`: MMR's trade-off (0 nearest first, 1 only diverse). `converter` turns models
    into the stored payload and back (default: cattrs' orjson preset, so bytes, sets, datetimes,
    UUIDs, Decimals and times become JSON and read back). Text and hybrid search: a query holds at
    most `max_query_terms` terms and `max_query_characters` characters (`ValueError` beyond,
    before anything is sent) and runs under a statement timeout of its own, `text_timeout`
    seconds (the session's when lower; None: none of its own), set inside its transaction.
    """

    postgres: Postgres | None = None
    embedding: TextEmbedding | None = attrs.field(default=None, kw_only=True)
    image_embedding: ImageEmbedding | None = attrs.field(default=None, kw_only=True)
    mmr_multiplier: int = attrs.field(default=8, kw_only=True)
    converter: cattrs.Converter = attrs.field(
        default=None, kw_only=True, converter=payloads.default_converter
    )
    mmr_diversity: float = attrs.field(default=0.5, kw_only=True)
    max_query_terms: int = attrs.field(default=64, kw_only=True)
    max_query_characters: int = attrs.field(default=4_096, kw_only=True)
    text_timeout: float | None = attrs.field(default=5.0, kw_only=True)

    @max_query_terms.validator
    @max_query_characters.validator
    def _query_bound(self, attribute: attrs.Attribute[int], value: int) -> None:
        positive_int(value, attribute.name, 1_000_000)

    @text_timeout.validator
    def _text_timeout(self, _: attrs.Attribute[float | None], value: float | None) -> None:
        if value is not None and not (
            isinstance(value, int | float) and not isinstance(value, bool) and 0.001 <= value <= 86_400
        ):
            raise ValueError(f"text_timeout must be None or seconds from 0.001 to 86,400, got {value!r}")

    @mmr_multiplier.validator
    def _multiplier(self, _: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"mmr_multiplier must be a positive integer, got {value!r}")

    @mmr_diversity.validator
    def _diversity(self, _: attrs.Attribute[float], value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"mmr_diversity must be within [0, 1], got {value!r}")

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
    ) -> None:
        """Creates the model's table (the seed's five columns, `PRIMARY KEY (id)`, vectors stored
        inline), an `"hnsw"` or `"ivfflat"` cosine index on `embedding` (none with `index=None`:
        exact search), a GIN index on `payload` (filters) and a B-tree on `created` (listing).
        Only what the catalog shows missing is made (on an existing table: the key, the storage,
        the indexes, built `CONCURRENTLY` when it holds rows); IVFFlat waits for enough rows to
        train on (see `tables.py`). An existing table of another dimension raises
        `DimensionMismatchError`. `precision="float16"` stores `halfvec(dimension)` (2 bytes a
        component instead of 4; HNSW and IVFFlat index up to 4,000 dimensions instead of 2,000);
        vectors are cast to float16 on ingest. An existing table of another precision raises
        `ConfigurationError`."""
        inputs.check_model(model, self.converter)
        name = table_name(model, table)
        inputs.positive(dimension, "dimension", inputs.MAX_DIMENSION)
        if index not in _INDEXES:
            raise ValueError(f'index must be "hnsw", "ivfflat" or None, got {index!r}')
        stored = tables.check_precision(precision, dimension, index)
        if distance != "cosine":
            raise ValueError(
                f"distance {distance!r} is not supported: pgstash scores and ranks by cosine "
                "similarity, which only a cosine index serves; use distance='cosine'"
            )
        try:
            key_of = payload_key_of(self.converter, model)
            column = None if text is None else fulltext.text_column(text, language, key_of)
            await tables.create_table(self._postgres(), name, dimension, index, column, stored)
        except DatabaseError as error:
            if error.sqlstate == "42704" and "vector" in str(error):
                raise ConfigurationError(
                    "this database has no pgvector extension: run `pgstash migrate` "
                    "(or `await pgstash.migrate(postgres)`), which installs it"
                ) from error
            raise

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
    ) -> int:
        """Embeds what `attribute` (a field name, an attrs field or a callable) yields for each
        value (text with `embedding`, bytes with `image_embedding`, else a ready vector) and
        writes every row with one binary COPY, `created` increasing in input order. Every vector
        is checked (dimension, NaN, infinity, zero norm) and the model's payload read back once
        before anything is written. `meta` is one mapping for every row or one per value.
        Returns the number of rows written.

        With `key` (a field name, dotted payload path, attrs field or callable), each row's `id`
        is derived from the table and its key (`keys.py`), and the rows of the keys written are
        deleted in the COPY's transaction: ingesting again leaves one row per key, the newest.
        Two values with the same key raise `ValueError` before anything is written.

        Into a table with an HNSW/IVFFlat index, a batch of 100 rows or more while the table holds
        fewer than 3x as many is a bulk load (`bulk.py`): the index dropped in a short transaction,
        then the keyed DELETE, the COPY and the index built from the data in one transaction.
        Searches meanwhile see the table as it was, exactly; writes wait for the commit."""
        inputs.check_model(model, self.converter)
        name = table_name(model, table)
        items = list(values)
        if not items:
            return 0
        for item in items:
            if not isinstance(item, model):
                raise TypeError(f"index({model.__name__}) got a {type(item).__name__} value")
        metas = payloads.metas(meta, len(items))
        select = inputs.selector(model, attribute)
        payloads.check_round_trip(self.converter, model, items[0], name)
        stored: Sequence[Any] = items
        unstructure: Callable[[Any], Any] = self.converter.unstructure
        ids = None
        if key is not None:  # payloads first: keys may be read from them (then encoded as they are)
            read = row_keys.key_reader(key, payload_key_of(self.converter, model))
            stored = [unstructure(item) for item in items]
            ids = row_keys.row_ids(name, [read(item, stored[at]) for at, item in enumerate(items)])
            unstructure = _as_is
        postgres = self._postgres()
        facts = await planning.table_facts(postgres, name, lambda: self._missing(name, model), fresh=True)
        vectors = await inputs.vectors_of(
            [select(item) for item in items], facts.dimension, name, self.embedding, self.image_embedding
        )
        rows = copy_stream(
            inputs.as_stored(vectors, facts.precision, "vector"),  # float16 for a halfvec table
            microseconds_since_2000(facts.now),
            metas,
            payloads.payload_fields(stored, unstructure),
            ids,
        )
        with self._requires_table(name, model):
            write = _writer(postgres, name, rows, ids)
            pending = facts.ivfflat_pending and not facts.methods
            if facts.methods or pending:  # a large batch: ANN index built from the data
                if await bulk.ingest(postgres, name, write, len(items), vectors.shape[1], pending):
                    return len(items)
            else:
                await write()
            await bulk.repair(postgres, name, facts)  # an index a killed bulk load left dropped
        await tables.build_pending_ivfflat(postgres, facts, name)
        return len(items)

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
        scored = await self.search_scored(
            model,
            query=query,
            limit=limit,
            score_threshold=score_threshold,
            requirements=requirements,
            rerank=rerank,
            table=table,
            ef_search=ef_search,
            probes=probes,
            mode=mode,
            candidates=candidates,
            rrf_k=rrf_k,
            weights=weights,
        )
        return [found for found, _ in scored]

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
        inputs.check_model(model, self.converter)
        name = table_name(model, table)
        if mode != "vector":
            if mode not in fulltext.MODES:
                raise ValueError(f'mode is "vector", "text" or "hybrid", not {mode!r}')
            options = {
                "score_threshold": score_threshold,
                "rerank": rerank,
                "ef_search": ef_search,
                "probes": probes,
                "candidates": candidates,
                "rrf_k": rrf_k,
                "weights": weights,
                "filtered": requirements is not None,
            }
            where = self._where(model, requirements)
            return await fulltext.search(self, model, name, where, mode, query, limit, options)
        if candidates is not None:
            raise ValueError('candidates sizes the two arms of mode="hybrid"; vector search takes limit')
        candidates = inputs.candidates_for(limit, rerank, self.mmr_multiplier)
        inputs.check_search_settings(score_threshold, ef_search, probes)
        where = self._where(model, requirements)
        postgres = self._postgres()
        if query is None:
            if score_threshold is not None or rerank:
                raise ValueError("score_threshold and rerank need a query to compare rows with")
            newest = compose(
                named_query("vectors_newest"),
                slots={"table": name},
                # custom plans when filtered: a generic one of a filtered listing can read the table
                fragments={"requirements": planning.custom_plans(where, requirements is not None)},
                candidates=limit,
            )
            with self._requires_table(name, model):
                rows = await postgres.run_statement(newest)
            return [(self._read(row["payload"], model, name), math.nan) for row in rows]

        vector = await inputs.query_vector(query, self.embedding, self.image_embedding)
        facts = await planning.table_facts(postgres, name, lambda: self._missing(name, model))
        if facts.dimension is not None and vector.shape[0] != facts.dimension:
            raise DimensionMismatchError(facts.dimension, vector.shape[0], f'query for table "{name}"')
        search = planning.Search(
            named_query("vectors_search"),
            named_query("vectors_search_exact"),
            slots={"table": name},
            requirements=where,
            values={
                "query_vector": inputs.as_stored(vector[None, :], facts.precision, "query vector")[0],
                "candidates": candidates,
                "max_distance": math.inf if score_threshold is None else 1.0 - float(score_threshold),
                "with_embeddings": rerank,
            },
        )
        with self._requires_table(name, model):
            rows = await planning.nearest(
                postgres, facts, search, candidates, requirements is not None, ef_search, probes
            )
        found = [row for row in rows if row["payload"] is not None]
        if rerank and found:
            order = maximal_marginal_relevance(
                vector, np.stack([row["embedding"] for row in found]), limit, self.mmr_diversity
            )
            found = [found[position] for position in order]
        return [(self._read(row["payload"], model, name), float(row["score"])) for row in found]

    def _where(self, model: type, requirements: AttributeRequirement | None) -> Fragment:
        """The `{requirements}` fragment; the converter's payload keys are read (a walk of the
        model's fields and hooks) only when there are requirements to map onto them."""
        if requirements is None:
            return requirement_fragment(None)
        return requirement_fragment(requirements, key_of=payload_key_of(self.converter, model))

    # -- delete ----------------------------------------------------------------------------------

    async def delete(
        self,
        model: type,
        *,
        requirements: AttributeRequirement | None = None,
        everything: bool = False,
        table: str | None = None,
        keys: Iterable[str | int] | None = None,
    ) -> int:
        """Deletes the rows meeting `requirements` (every row only with `everything=True`), or
        the rows of `keys` (as `index(..., key=...)` wrote them), and returns how many it
        deleted. A delete by requirements of more than a quarter of the table's rows then
        rebuilds its nearest-neighbour index concurrently and vacuums it (`maintenance.py`), so
        that searches keep their speed; inside a transaction it logs that recommendation instead."""
        inputs.check_model(model, self.converter)
        name = table_name(model, table)
        if keys is not None:
            if requirements is not None or everything:
                raise ValueError("pass one of keys, requirements or everything=True to delete")
            with self._requires_table(name, model):
                return await row_keys.delete_keys(self._postgres(), name, keys)
        if requirements is None and everything is not True:
            raise ValueError("delete needs requirements, or everything=True to delete every row")
        if requirements is not None and everything:
            raise ValueError("pass either requirements or everything=True to delete, not both")
        where = self._where(model, requirements)
        postgres = self._postgres()
        statement = compose(
            named_query("vectors_delete"),
            slots={"table": name},
            fragments={"requirements": planning.custom_plans(where, requirements is not None)},
        )
        with self._requires_table(name, model):
            status: str = await postgres.run_statement(statement)
        deleted = int(status.rsplit(" ", 1)[-1])
        facts = await planning.table_facts(postgres, name, lambda: self._missing(name, model))
        await maintenance.after_delete(postgres, facts, name, deleted)
        return deleted

    # -- helpers ---------------------------------------------------------------------------------

    def _postgres(self) -> Postgres:
        return resolve(self.postgres)

    def _read(self, payload: Any, model: type[Model], name: str) -> Model:
        found: Model = payloads.read_back(self.converter, payload, model, name)
        return found

    @staticmethod
    def _tables(postgres: Postgres) -> dict[str, planning.TableFacts]:
        return planning.tables(postgres)

    @staticmethod
    def _missing(name: str, model: type) -> SchemaMissingError:
        return SchemaMissingError(
            name, f"`await PostgresVectorIndex().create_table({model.__name__}, dimension=...)`"
        )

    @contextlib.contextmanager
    def _requires_table(self, name: str, model: type) -> Iterator[None]:
        """A missing table names `create_table` as its remedy, not `migrate`."""
        try:
            yield
        except SchemaMissingError as error:
            if error.table != name:
                raise
            raise self._missing(name, model) from error


def _as_is(payload: Any) -> Any:
    return payload


def _writer(
    postgres: Postgres, name: str, rows: AsyncIterator[bytes], ids: Any
) -> Callable[[], Awaitable[int]]:
    """The batch's write: its binary COPY, or with keys the keyed lock, DELETE and COPY
    (`keys.replace_rows`); returns the rows copied."""
    if ids is not None:
        return lambda: row_keys.replace_rows(postgres, name, ids, rows)
    copy = attrs.evolve(compose(named_query("vectors_copy"), slots={"table": name}), kind="copy")
    return lambda: postgres.copy(copy, rows)  # aiosql reads COPY as "!"
