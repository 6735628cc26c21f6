"""`PostgresVectorIndex`: one pgvector table per model (the seed's five columns), binary COPY for
ingest, cosine search with payload filters, score thresholds and MMR re-ranking.

Every statement comes from a template: `schema/templates/vector_table.sql` (the table and its
indexes) and `queries/vectors.sql` (search, newest, delete), their `{table}` slot filled with a
validated, quoted identifier and the payload filter composed from `queries/filters.sql`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import math
import re
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import attrs
import cattrs
import cattrs.preconf.orjson
import numpy as np
from numpy.typing import ArrayLike, NDArray

from pgstash.codecs import dumps_json
from pgstash.composer import compose
from pgstash.connection import Postgres, current_postgres
from pgstash.errors import ConfigurationError, DatabaseError, DimensionMismatchError, SchemaMissingError
from pgstash.filters import AttributeRequirement, requirement_fragment
from pgstash.mmr import maximal_marginal_relevance
from pgstash.payload_keys import payload_key_of
from pgstash.queries import Query, load_catalogue
from pgstash.queries import query as named_query
from pgstash.resources import resource_dir
from pgstash.statements import Statement
from pgstash.templates import render, validate_identifier

__all__ = ["PostgresVectorIndex", "table_name"]

Model = TypeVar("Model")
_T = TypeVar("_T")
TextEmbedding = Callable[[Sequence[str]], Awaitable[ArrayLike]]
ImageEmbedding = Callable[[Sequence[bytes]], Awaitable[ArrayLike]]

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
# COPY column order: the fixed-size fields of a row first, then the JSON ones (see _copy_stream).
_COPY_COLUMNS = ("embedding", "created", "meta", "payload")
_MICROSECOND = timedelta(microseconds=1)
_POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # timestamptz's binary zero
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_COPY_BATCH = 2048  # rows per chunk handed to the connection
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")  # an escaped NUL, not an escaped backslash + "u0000"
_FACTS_TTL = 30.0  # seconds a table's dimension and indexes are remembered between searches
_HNSW_DEFAULT_EF_SEARCH = 40  # an HNSW scan without iterative scans yields at most ef_search rows
_MAX_DIMENSION = 16_000  # pgvector's vector type
_MAX_INDEXED_DIMENSION = 2_000  # pgvector's HNSW and IVFFlat on vector
_INDEXES = ("hnsw", "ivfflat", None)


def table_name(model: type, table: str | None = None) -> str:
    """`table`, else the snake_case of the class name (`HTTPDocument` -> `http_document`);
    `ValueError` unless it matches `^[a-z_][a-z0-9_]{0,62}$`."""
    name = table if table is not None else _CAMEL_BOUNDARY.sub("_", model.__name__).lower()
    return validate_identifier(name)


def _check_model(model: object) -> None:
    if not isinstance(model, type) or not (attrs.has(model) or dataclasses.is_dataclass(model)):
        raise TypeError(f"models are attrs classes or dataclasses, not {model!r}")


def _index_name(table: str, suffix: str) -> str:
    name = f"{table}_{suffix}"
    if len(name) <= 63:
        return name
    digest = hashlib.blake2b(table.encode(), digest_size=4).hexdigest()
    return f"{table[: 63 - len(suffix) - len(digest) - 2]}_{digest}_{suffix}"


@functools.cache
def _schema_templates() -> Mapping[str, Query]:
    return load_catalogue(resource_dir("schema") / "templates")


@attrs.frozen(slots=True)
class _TableFacts:
    dimension: int | None  # None: the embedding column has no fixed dimension
    methods: frozenset[str]  # access methods of valid cosine indexes on embedding
    iterative: bool  # pgvector >= 0.8: iterative index scans
    now: datetime  # the server's clock when the facts were read
    read_at: float  # time.monotonic() when read


def _version(text: str | None) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text or "")[:3])


def _finite_unit_checks(matrix: NDArray[np.float32], what: str) -> None:
    """`ValueError` naming the first row with NaN or infinity, or with only zeros."""
    if np.isfinite(matrix).all() and matrix.any(axis=1).all():
        return
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        raise ValueError(f"{what} {int(np.argmin(finite))} has NaN or infinite components")
    zero = ~matrix.any(axis=1)
    raise ValueError(
        f"{what} {int(np.argmax(zero))} is all zeros: its cosine similarity to anything is undefined"
    )


def _jsonb_field(value: Any, what: str, position: int) -> bytes:
    """One jsonb field of binary COPY: its length, format version 1, the JSON text."""
    try:
        text = dumps_json(value)
    except TypeError as error:
        raise TypeError(
            f"{what} {position} is not JSON ({error}); nothing was written: give PostgresVectorIndex "
            "a converter= that unstructures the model to JSON values"
        ) from None
    except ValueError as error:
        raise ValueError(f"{what} {position} cannot be stored as JSON: {error}") from None
    if b"\\u0000" in text and _JSON_NUL.search(text):
        raise ValueError(f"{what} {position} holds a NUL character, which PostgreSQL text cannot store")
    return (len(text) + 1).to_bytes(4, "big") + b"\x01" + text


def _payloads(items: Sequence[Any], unstructure: Callable[[Any], Any]) -> Iterator[bytes]:
    """Each model's payload as a jsonb field, made while the COPY runs (so that the server
    stores one batch while the next is encoded). One that is not JSON ends the COPY with a
    `TypeError`, and the aborted COPY leaves nothing written."""
    for position, item in enumerate(items):
        yield _jsonb_field(unstructure(item), "payload", position)


async def _copy_stream(
    vectors: NDArray[np.float32], first: int, metas: Sequence[bytes], payloads: Iterator[bytes]
) -> AsyncIterator[bytes]:
    """The rows in PostgreSQL's binary COPY format, built a batch at a time: numpy lays out each
    row's fixed part (field count, the vector as pgvector's binary `vector`, `created` as
    microseconds since 2000-01-01, `first` plus the row's position), then its meta and payload
    jsonb fields follow. No per-row encoder calls: asyncpg only forwards the bytes."""
    count, dimension = vectors.shape
    layout = np.dtype(
        [
            ("fields", ">i2"),
            ("vector_size", ">i4"),
            ("dimension", ">u2"),
            ("unused", ">u2"),
            ("vector", ">f4", (dimension,)),
            ("created_size", ">i4"),
            ("created", ">i8"),
        ]
    )
    size = layout.itemsize
    yield _COPY_HEADER
    for start in range(0, count, _COPY_BATCH):
        stop = min(count, start + _COPY_BATCH)
        block = np.empty(stop - start, dtype=layout)
        block["fields"] = len(_COPY_COLUMNS)
        block["vector_size"] = 4 + 4 * dimension
        block["dimension"] = dimension
        block["unused"] = 0
        block["vector"] = vectors[start:stop]
        block["created_size"] = 8
        block["created"] = np.arange(first + start, first + stop, dtype=np.int64)
        fixed = memoryview(block.tobytes())
        parts: list[bytes | memoryview] = []
        for row in range(stop - start):
            parts += (fixed[row * size : (row + 1) * size], metas[start + row], next(payloads))
        yield b"".join(parts)
    yield _COPY_TRAILER


def _or_default_converter(converter: cattrs.Converter | None) -> cattrs.Converter:
    """The given converter, else cattrs' orjson preset: payloads JSON can hold (bytes as base85
    text, sets as lists, ...) and back."""
    return cattrs.preconf.orjson.make_converter() if converter is None else converter


@attrs.frozen(slots=True)
class PostgresVectorIndex:
    """A pgvector index of attrs or dataclass models, one table per model.

    `embedding` embeds texts and `image_embedding` images (bytes): async callables returning an
    `(n, d)` array-like. `mmr_multiplier`: how many candidates per result `rerank=True` weighs;
    `mmr_diversity`: MMR's trade-off (0 nearest first, 1 only diverse). `converter` turns models
    into the stored payload and back (default: cattrs' orjson preset, so bytes, sets and
    datetimes become JSON).
    """

    postgres: Postgres | None = None
    embedding: TextEmbedding | None = attrs.field(default=None, kw_only=True)
    image_embedding: ImageEmbedding | None = attrs.field(default=None, kw_only=True)
    mmr_multiplier: int = attrs.field(default=8, kw_only=True)
    converter: cattrs.Converter = attrs.field(default=None, kw_only=True, converter=_or_default_converter)
    mmr_diversity: float = attrs.field(default=0.5, kw_only=True)

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
    ) -> None:
        """Creates the model's table (the seed's five columns) and, unless `index=None`, an
        `"hnsw"` or `"ivfflat"` cosine index on `embedding`, a GIN index on `payload` and a B-tree
        on `created`. Idempotent; an existing table of another dimension raises
        `DimensionMismatchError`."""
        _check_model(model)
        name = table_name(model, table)
        if (
            not isinstance(dimension, int)
            or isinstance(dimension, bool)
            or not 1 <= dimension <= _MAX_DIMENSION
        ):
            raise ValueError(f"dimension must be an integer from 1 to {_MAX_DIMENSION}, got {dimension!r}")
        if index not in _INDEXES:
            raise ValueError(f'index must be "hnsw", "ivfflat" or None, got {index!r}')
        if index is not None and dimension > _MAX_INDEXED_DIMENSION:
            raise ValueError(
                f"pgvector's {index} indexes vectors of at most {_MAX_INDEXED_DIMENSION} dimensions, "
                f"got {dimension}: pass index=None for exact search"
            )
        if distance != "cosine":
            raise ValueError(
                f"distance {distance!r} is not supported: pgstash scores and ranks by cosine "
                "similarity, which only a cosine index serves; use distance='cosine'"
            )
        templates = _schema_templates()
        slots: dict[str, str | int] = {
            "table": name,
            "dimension": dimension,
            "embedding_index": _index_name(name, "embedding_idx"),
            "payload_index": _index_name(name, "payload_idx"),
            "created_index": _index_name(name, "created_idx"),
        }
        steps = ["vector_table_create"]
        if index is not None:
            steps += [
                f"vector_table_{index}_index",
                "vector_table_payload_index",
                "vector_table_created_index",
            ]
        postgres = self._postgres()
        try:
            async with postgres.transaction():
                await postgres.run("vectors_table_lock", table_name=name)
                for step in steps:
                    named = templates[step]
                    sql = render(named.sql, **slots)
                    await postgres.run_statement(Statement(named.name, named.kind, sql, ()))
                    if step == "vector_table_create":
                        facts = await postgres.run("vectors_table_facts", table_name=name)
                        if facts["dimension"] not in (dimension, -1, None):
                            raise DimensionMismatchError(
                                facts["dimension"], dimension, f'table "{name}" already exists'
                            )
        except DatabaseError as error:
            if error.sqlstate == "42704" and "vector" in str(error):
                raise ConfigurationError(
                    "this database has no pgvector extension: run `pgstash migrate` "
                    "(or `await pgstash.migrate(postgres)`), which installs it"
                ) from error
            raise
        self._tables(postgres).pop(name, None)

    # -- ingest ----------------------------------------------------------------------------------

    async def index(
        self,
        model: type[Model],
        *,
        values: Iterable[Model],
        attribute: Any,
        meta: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        table: str | None = None,
    ) -> int:
        """Embeds what `attribute` (a field name, an attrs field or a callable) yields for each
        value (text with `embedding`, bytes with `image_embedding`, else a ready vector) and
        writes every row with one binary COPY, `created` increasing in input order. Every vector
        is checked (dimension, NaN, infinity, zero) before anything is written. `meta` is one
        mapping for every row or one per value. Returns the number of rows written."""
        _check_model(model)
        name = table_name(model, table)
        items = list(values)
        if not items:
            return 0
        for item in items:
            if not isinstance(item, model):
                raise TypeError(f"index({model.__name__}) got a {type(item).__name__} value")
        metas = self._metas(meta, len(items))
        select = self._selector(model, attribute)
        postgres = self._postgres()
        facts = await self._facts(postgres, name, model, fresh=True)
        vectors = await self._vectors([select(item) for item in items], facts.dimension, name)
        first = (facts.now - _POSTGRES_EPOCH) // _MICROSECOND
        payloads = _payloads(items, self.converter.unstructure)
        copy = named_query("vectors_copy")
        statement = Statement(copy.name, "copy", postgres.render(copy, {"table": name}), ())
        with self._requires_table(name, model):
            await postgres.copy(statement, _copy_stream(vectors, first, metas, payloads))
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
    ) -> list[Model]:
        """The `limit` rows nearest to `query` by cosine similarity (a text, image bytes or a
        vector; None: the newest rows), among rows meeting `requirements` and scoring at least
        `score_threshold`; `rerank=True` picks them by MMR among `limit * mmr_multiplier`
        candidates. `ef_search` / `probes` tune an HNSW / IVFFlat scan for this query only."""
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
    ) -> list[tuple[Model, float]]:
        """`search` with each model's score, the cosine similarity `1 - (embedding <=> query)`
        (NaN for the newest-first listing, which has no query)."""
        _check_model(model)
        name = table_name(model, table)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        if score_threshold is not None and not (
            isinstance(score_threshold, int | float)
            and not isinstance(score_threshold, bool)
            and -1.0 <= score_threshold <= 1.0
        ):
            raise ValueError(
                f"score_threshold is a cosine similarity within [-1, 1], got {score_threshold!r}"
            )
        for setting, value, most in (("ef_search", ef_search, 1000), ("probes", probes, 32768)):
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most
            ):
                raise ValueError(f"{setting} must be an integer from 1 to {most}, got {value!r}")
        where = requirement_fragment(requirements, key_of=payload_key_of(self.converter, model))
        postgres = self._postgres()
        if query is None:
            if score_threshold is not None or rerank:
                raise ValueError("score_threshold and rerank need a query to compare rows with")
            newest = compose(
                named_query("vectors_newest"),
                slots={"table": name},
                fragments={"requirements": where},
                candidates=limit,
            )
            with self._requires_table(name, model):
                rows = await postgres.run_statement(newest)
            return [(self.converter.structure(row["payload"], model), math.nan) for row in rows]

        vector = await self._query_vector(query)
        facts = await self._facts(postgres, name, model)
        if facts.dimension is not None and vector.shape[0] != facts.dimension:
            raise DimensionMismatchError(facts.dimension, vector.shape[0], f'query for table "{name}"')
        candidates = limit * self.mmr_multiplier if rerank else limit
        search = compose(
            named_query("vectors_search"),
            slots={"table": name},
            fragments={"requirements": where},
            query_vector=vector,
            candidates=candidates,
            max_distance=math.inf if score_threshold is None else 1.0 - float(score_threshold),
            with_embeddings=rerank,
        )
        sql, args = search.sql, list(search.args)
        with self._requires_table(name, model):
            rows = await self._nearest(
                postgres, facts, sql, args, candidates, requirements, ef_search, probes
            )
        found = [row for row in rows if row["payload"] is not None]
        if rerank and found:
            order = maximal_marginal_relevance(
                vector, np.stack([row["embedding"] for row in found]), limit, self.mmr_diversity
            )
            found = [found[position] for position in order]
        return [(self.converter.structure(row["payload"], model), float(row["score"])) for row in found]

    async def _nearest(
        self,
        postgres: Postgres,
        facts: _TableFacts,
        sql: str,
        args: list[Any],
        candidates: int,
        requirements: AttributeRequirement | None,
        ef_search: int | None,
        probes: int | None,
    ) -> list[asyncpg.Record]:
        """Runs the search statement. Without an ANN index it is exact: one statement. With one,
        a filter, an IVFFlat index, many candidates or a tuned scan run it in a rolled-back
        transaction with iterative index scans (pgvector 0.8+; an exact plan before that); and
        when the approximate scan found fewer candidates than asked, it runs again exactly, so a
        search returns `limit` rows whenever that many rows match."""
        ann = bool(facts.methods)
        tuned = ef_search is not None or probes is not None
        demanding = (
            requirements is not None or "ivfflat" in facts.methods or candidates > _HNSW_DEFAULT_EF_SEARCH
        )
        exact = not facts.iterative and demanding
        search = Statement("vectors_search", "fetch", sql, tuple(args))
        if not ann or not (demanding or tuned):
            rows: list[asyncpg.Record] = await postgres.run_statement(search)
            if not ann or rows[0]["found"] >= candidates:
                return rows
            exact = True
        async with postgres.transaction(rollback=True):
            await postgres.run(
                "vectors_scan_settings",
                iterative=facts.iterative and not exact,
                exact=exact,
                ef_search=ef_search,
                probes=probes,
            )
            rows = await postgres.run_statement(search)
            if not exact and rows[0]["found"] < candidates:
                await postgres.run(
                    "vectors_scan_settings", iterative=False, exact=True, ef_search=None, probes=None
                )
                rows = await postgres.run_statement(search)
        return rows

    # -- delete ----------------------------------------------------------------------------------

    async def delete(
        self,
        model: type,
        *,
        requirements: AttributeRequirement | None = None,
        everything: bool = False,
        table: str | None = None,
    ) -> int:
        """Deletes the rows meeting `requirements` (every row only with `everything=True`) and
        returns how many it deleted."""
        _check_model(model)
        name = table_name(model, table)
        if requirements is None and everything is not True:
            raise ValueError("delete needs requirements, or everything=True to delete every row")
        if requirements is not None and everything:
            raise ValueError("pass either requirements or everything=True to delete, not both")
        where = requirement_fragment(requirements, key_of=payload_key_of(self.converter, model))
        postgres = self._postgres()
        statement = compose(
            named_query("vectors_delete"), slots={"table": name}, fragments={"requirements": where}
        )
        with self._requires_table(name, model):
            status: str = await postgres.run_statement(statement)
        return int(status.rsplit(" ", 1)[-1])

    # -- helpers ---------------------------------------------------------------------------------

    def _postgres(self) -> Postgres:
        return self.postgres if self.postgres is not None else current_postgres()

    @staticmethod
    def _tables(postgres: Postgres) -> dict[str, _TableFacts]:
        tables: dict[str, _TableFacts] = postgres.shared("pgstash.vectors.tables", lambda _: {})
        return tables

    @staticmethod
    def _missing(name: str, model: type) -> SchemaMissingError:
        return SchemaMissingError(
            name, f"`await PostgresVectorIndex().create_table({model.__name__}, dimension=...)`"
        )

    @contextlib.contextmanager
    def _requires_table(self, name: str, model: type) -> Any:
        """A missing table names `create_table` as its remedy, not `migrate`."""
        try:
            yield
        except SchemaMissingError as error:
            if error.table != name:
                raise
            raise self._missing(name, model) from error

    async def _facts(self, postgres: Postgres, name: str, model: type, fresh: bool = False) -> _TableFacts:
        tables = self._tables(postgres)
        known = tables.get(name)
        if known is not None and not fresh and time.monotonic() - known.read_at < _FACTS_TTL:
            return known
        row = await postgres.run("vectors_table_facts", table_name=name)
        if not row["present"]:
            tables.pop(name, None)
            raise self._missing(name, model)
        if row["dimension"] is None:
            raise ConfigurationError(
                f'table "{name}" has no embedding column, so it is not a vector table; '
                f"pass table= to name another, or create one with create_table({model.__name__}, ...)"
            )
        facts = _TableFacts(
            dimension=row["dimension"] if row["dimension"] > 0 else None,
            methods=frozenset(row["methods"]),
            iterative=_version(row["vector_version"]) >= (0, 8),
            now=row["now"],
            read_at=time.monotonic(),
        )
        tables[name] = facts
        return facts

    @staticmethod
    def _metas(meta: object, count: int) -> list[bytes]:
        if meta is None:
            return [_jsonb_field({}, "meta", 0)] * count
        if isinstance(meta, Mapping):
            return [_jsonb_field(meta, "meta", 0)] * count
        if isinstance(meta, Sequence) and not isinstance(meta, str | bytes):
            if len(meta) != count:
                raise ValueError(f"meta has {len(meta)} mappings for {count} values; give one per value")
            return [_jsonb_field(item, "meta", position) for position, item in enumerate(meta)]
        raise TypeError(f"meta is a mapping or a sequence of mappings, not {type(meta).__name__}")

    @staticmethod
    def _selector(model: type, attribute: Any) -> Callable[[Any], Any]:
        name: str | None = None
        if isinstance(attribute, str):
            name = attribute
        elif isinstance(attribute, attrs.Attribute | dataclasses.Field):
            name = attribute.name
        elif not callable(attribute):
            raise TypeError(f"attribute is a field name, an attrs field or a callable, not {attribute!r}")
        if name is None:
            selector: Callable[[Any], Any] = attribute
            return selector
        field = name

        def select(item: Any) -> Any:
            try:
                return getattr(item, field)
            except AttributeError:
                raise ValueError(f"{model.__name__} has no attribute {field!r} to embed") from None

        return select

    async def _embedded(self, kind: str, inputs: Sequence[Any]) -> NDArray[np.float32]:
        embed: Callable[[Sequence[Any]], Awaitable[ArrayLike]] | None = getattr(self, kind)
        if embed is None:
            what = "texts" if kind == "embedding" else "images (bytes)"
            raise ConfigurationError(
                f"PostgresVectorIndex has no {kind} to embed {what}: pass {kind}= to it, or give vectors"
            )
        matrix = np.asarray(await embed(inputs), dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(inputs):
            raise ValueError(f"{kind} returned shape {matrix.shape} for {len(inputs)} inputs, not (n, d)")
        return matrix

    async def _vectors(self, selected: list[Any], expected: int | None, name: str) -> NDArray[np.float32]:
        """One validated float32 row per selected value: texts and images embedded in one call
        each, ready vectors taken as they are."""
        texts: list[int] = []
        images: list[int] = []
        ready: list[int] = []
        for position, item in enumerate(selected):
            if isinstance(item, str):
                texts.append(position)
            elif isinstance(item, bytes | bytearray | memoryview):
                images.append(position)
            else:
                ready.append(position)
        parts: list[tuple[list[int], NDArray[np.float32]]] = []
        if texts:
            parts.append((texts, await self._embedded("embedding", [selected[i] for i in texts])))
        if images:
            parts.append(
                (images, await self._embedded("image_embedding", [bytes(selected[i]) for i in images]))
            )
        if ready:
            items = selected if len(ready) == len(selected) else [selected[i] for i in ready]
            parts.append((ready, _ready_vectors(items, expected, name)))
        dimension = expected if expected is not None else parts[0][1].shape[1]
        for _, part in parts:
            if part.shape[1] != dimension:
                raise DimensionMismatchError(dimension, part.shape[1], f'table "{name}"')
        if dimension < 1:
            raise ValueError("vectors need at least one dimension")
        if len(parts) == 1:
            matrix = parts[0][1]
        else:
            matrix = np.empty((len(selected), dimension), dtype=np.float32)
            for positions, part in parts:
                matrix[positions] = part
        _finite_unit_checks(matrix, "vector")
        return matrix

    async def _query_vector(self, query: object) -> NDArray[np.float32]:
        if isinstance(query, str):
            vector = (await self._embedded("embedding", [query]))[0]
        elif isinstance(query, bytes | bytearray | memoryview):
            vector = (await self._embedded("image_embedding", [bytes(query)]))[0]
        elif isinstance(query, np.ndarray) and query.ndim == 1:
            vector = query.astype(np.float32, copy=False)
        elif isinstance(query, list | tuple | np.ndarray) or hasattr(query, "to_numpy"):
            vector = _ready_vectors([query], None, "query")[0]
        else:
            raise TypeError(f"query is a text, image bytes, a vector or None, not {type(query).__name__}")
        if vector.shape[0] < 1:
            raise ValueError("the query vector is empty")
        _finite_unit_checks(vector[None, :], "query vector")
        result: NDArray[np.float32] = vector
        return result


def _ready_vectors(items: list[Any], expected: int | None, name: str) -> NDArray[np.float32]:
    """The vectors as one (n, d) float32 matrix; a row that does not fit is named."""
    rows = [item if type(item) is np.ndarray else _array_like(item) for item in items]
    try:
        matrix: NDArray[np.float32] | None = np.asarray(rows, dtype=np.float32)
    except (ValueError, TypeError):  # ragged, or not numbers: find the culprit below
        matrix = None
    if matrix is not None and matrix.ndim == 2 and matrix.shape[0] == len(rows):
        return matrix
    dimension = expected
    for position, row in enumerate(rows):
        try:
            vector = np.asarray(row, dtype=np.float32)
        except (ValueError, TypeError) as error:
            raise TypeError(
                f"value {position} is neither text, bytes nor a vector of numbers: {error}"
            ) from None
        if vector.ndim != 1:
            raise ValueError(f"vector {position} has shape {vector.shape}, not (d,)")
        if dimension is None:
            dimension = vector.shape[0]
        elif vector.shape[0] != dimension:
            raise DimensionMismatchError(dimension, vector.shape[0], f'vector {position} for "{name}"')
    raise ValueError(f"the vectors for {name!r} do not form an (n, d) matrix")


def _array_like(item: Any) -> Any:
    """pgvector's Vector and the like convert with to_numpy(); lists and tuples stay as they are."""
    to_numpy = getattr(item, "to_numpy", None)
    return to_numpy() if to_numpy is not None else item
