"""Full text on a vector table: its text column (a payload field and a text search configuration,
checked before any DDL) and the `"text"` and `"hybrid"` search modes (queries/vectors_text.sql).

Hybrid search is reciprocal rank fusion in one statement: the `candidates` nearest rows by cosine
and the `candidates` best by `ts_rank_cd`, each ranked 1, 2, 3, ...; a row scores
`weights[0] / (rrf_k + vector rank) + weights[1] / (rrf_k + text rank)`, an arm it is absent from
adding 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg
import attrs
import numpy as np

from pgstash.connection import Postgres
from pgstash.errors import DatabaseError, SchemaMissingError
from pgstash.sql.catalogue import query as named_query
from pgstash.sql.composer import Fragment, compose
from pgstash.sql.templates import Constant
from pgstash.validators import no_nul
from pgstash.vectors import inputs, planning
from pgstash.vectors.filters import KeyOf, path_of
from pgstash.vectors.inputs import MAX_CANDIDATES
from pgstash.vectors.mmr import maximal_marginal_relevance
from pgstash.vectors.planning import TableFacts, index_name

if TYPE_CHECKING:
    from pgstash.vectors.index import PostgresVectorIndex

__all__ = [
    "MODES",
    "Fusion",
    "TextColumn",
    "TextColumnMissingError",
    "check_language",
    "existing_column",
    "language_of",
    "search",
    "text_column",
    "words_of",
]

MODES = ("vector", "text", "hybrid")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")  # a payload key the DDL may name
_TERM = re.compile(r"\w+")  # a term of a text query, as its bound counts them
_LANGUAGE = re.compile(r"[a-z_][a-z0-9_]{0,62}")  # a text search configuration's name
# The generation expression as pg_get_expr prints it (the configuration qualified when it is not
# on the search path): to_tsvector('english'::regconfig, (payload #>> '{meta,title}'::text[])).
_EXPRESSION = re.compile(
    r"(?:pg_catalog\.)?to_tsvector\('([a-z_][a-z0-9_.]*)'::regconfig, "
    r"\(payload #>> '\{([^']*)\}'::text\[\]\)\)"
)


@attrs.frozen(slots=True)
class TextColumn:
    """What `text_vector` is generated from: a payload path and a text search configuration."""

    path: tuple[str, ...]
    language: str

    @property
    def field(self) -> str:
        return ".".join(self.path)

    def slots(self, table: str) -> dict[str, str | int | Constant]:
        """The DDL's slots: the configuration and the path as string constants (each key quoted
        inside the text[] constant, so a key named null is no NULL), the GIN index's name."""
        path = "{" + ",".join(f'"{key}"' for key in self.path) + "}"
        return {
            "language": Constant(self.language),
            "text_path": Constant(path),
            "text_index": index_name(table, "text_idx"),
        }

    def check_existing(self, facts: TableFacts, table: str) -> bool:
        """Whether the table already has this text column; `ValueError` when it has another."""
        if facts.text_expression is None:
            return False
        if existing_column(facts) == self:
            return True
        raise ValueError(
            f'table "{table}" already has a text column, {facts.text_expression}, not the '
            f"{self.field!r} field in {self.language!r}: to change it, drop it first "
            f"(ALTER TABLE {table} DROP COLUMN text_vector) and call create_table again"
        )


def existing_column(facts: TableFacts) -> TextColumn | None:
    """The table's text column as its expression says, or None (no column, or one pgstash did not
    make: a plain column, or another expression)."""
    found = _EXPRESSION.fullmatch(facts.text_expression or "")
    if found is None:
        return None
    return TextColumn(tuple(key.strip('"') for key in found.group(2).split(",")), found.group(1))


def text_column(text: Any, language: object, key_of: KeyOf | None = None) -> TextColumn:
    """The checked column: `text` names payload keys as a requirement's path does (a dotted
    string, an attrs field, mapped by `key_of` to the key the converter writes, or a sequence),
    each key 1 to 63 of A-Z, a-z, 0-9 and _; `language` a configuration's plain name."""
    path = path_of(text, key_of)
    if not all(_KEY.fullmatch(key) for key in path):
        raise ValueError(
            f"text={text!r}: each key of the path is 1 to 63 of A-Z, a-z, 0-9 and _, not starting "
            "with a digit"
        )
    if not isinstance(language, str) or _LANGUAGE.fullmatch(language) is None:
        raise ValueError(
            f"language must be the name of a text search configuration such as 'english', got {language!r}"
        )
    return TextColumn(path, language)


def check_language(language: str, known: Sequence[str]) -> None:
    """`ValueError` unless the server has the configuration (`vectors_text_languages`)."""
    if language not in known:
        few = sorted(known, key=lambda name: (name not in ("english", "simple"), name))[:8]
        raise ValueError(
            f"language {language!r} is not a text search configuration of this server (pg_ts_config); "
            f"it has {len(known)}, such as {', '.join(few)}"
        )


@attrs.frozen(slots=True)
class Fusion:
    """Checked hybrid settings: `candidates` per arm, `rrf_k`, `weights` (vector, text)."""

    candidates: int
    rrf_k: int
    weights: tuple[float, float]

    @classmethod
    def of(cls, limit: int, candidates: object, rrf_k: object, weights: object) -> Fusion:
        chosen = max(4 * limit, 20) if candidates is None else candidates
        if not isinstance(chosen, int) or isinstance(chosen, bool) or not limit <= chosen <= MAX_CANDIDATES:
            raise ValueError(
                f"candidates must be an integer from limit ({limit}) to {MAX_CANDIDATES:,}, "
                f"got {candidates!r}"
            )
        if not isinstance(rrf_k, int) or isinstance(rrf_k, bool) or not 0 <= rrf_k <= 1_000_000:
            raise ValueError(f"rrf_k must be an integer from 0 to 1,000,000, got {rrf_k!r}")
        if not (
            isinstance(weights, tuple)
            and len(weights) == 2
            and all(_weight(weight) for weight in weights)
            and any(weights)
        ):
            raise ValueError(
                f"weights is (vector, text): two finite numbers >= 0, not both 0; got {weights!r}"
            )
        return cls(chosen, rrf_k, (float(weights[0]), float(weights[1])))


def _weight(value: object) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    )


class TextColumnMissingError(SchemaMissingError):
    """Text or hybrid search on a table without the text column pgstash makes."""

    def __init__(self, table: str, remedy: str) -> None:
        super().__init__(table, remedy)
        what = f'table "{table}" has no text column, which text and hybrid search read'
        self.args = (f"{what}: add it with {remedy}",)


def words_of(query: object, most_terms: int, most_characters: int) -> str:
    """The text of a text or hybrid search, bounded before anything is sent: at most
    `most_characters` characters and `most_terms` terms (runs of letters and digits, `\\w+`, an
    `or` included); `ts_rank_cd`'s cost grows faster than the cube of the query's terms."""
    if not isinstance(query, str):
        raise TypeError(f'mode "text" and "hybrid" search with a text query, not {type(query).__name__}')
    if len(query) > most_characters:
        raise ValueError(
            f"the query has {len(query):,} characters; a text or hybrid query holds at most "
            f"{most_characters:,} (PostgresVectorIndex(max_query_characters=...))"
        )
    terms = len(_TERM.findall(query))
    if terms > most_terms:
        raise ValueError(
            f"the query has {terms:,} terms; a text or hybrid query holds at most {most_terms:,} "
            "(PostgresVectorIndex(max_query_terms=...)): ranking grows faster than the cube of them"
        )
    return no_nul(query, "the query")


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
            await postgres.run("vectors_text_timeout", milliseconds=max(1, round(timeout * 1000)))
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


def language_of(facts: TableFacts, name: str, model: type) -> str:
    """The text search configuration of the table's text column; `SchemaMissingError` naming
    `create_table(..., text=...)` when it has none pgstash made."""
    column = existing_column(facts)
    if column is None:
        raise TextColumnMissingError(
            name, f"`await PostgresVectorIndex().create_table({model.__name__}, dimension=..., text=...)`"
        )
    return column.language


Model = TypeVar("Model")
_T = TypeVar("_T")


async def search(
    index: PostgresVectorIndex,
    model: type[Model],
    name: str,
    where: Fragment,
    mode: str,
    query: object,
    limit: int,
    options: dict[str, Any],
) -> list[tuple[Model, float]]:
    """`mode="text"` or `"hybrid"` search (`options`: score_threshold, rerank, ef_search,
    probes, candidates, rrf_k, weights, filtered), as `PostgresVectorIndex.search_scored`."""
    filtered = options["filtered"]
    words = words_of(query, index.max_query_terms, index.max_query_characters)
    inputs.positive(limit, "limit", MAX_CANDIDATES)
    postgres = index._postgres()
    if mode == "text":
        if (
            any(options[name] is not None for name in ("score_threshold", "ef_search", "probes"))
            or options["rerank"]
        ):
            raise ValueError(
                'mode="text" ranks by ts_rank_cd: score_threshold, rerank, ef_search and probes apply '
                "to vector and hybrid search"
            )
        facts = await planning.table_facts(postgres, name, lambda: index._missing(name, model))
        statement = compose(
            named_query("vectors_text_search"),
            slots={"table": name},
            fragments={"requirements": planning.custom_plans(where, filtered)},
            words=words,
            language=language_of(facts, name, model),
            candidates=limit,
        )
        with index._requires_table(name, model):
            rows = await bounded(postgres, index.text_timeout, lambda pg: pg.run_statement(statement))
        return [(index._read(row["payload"], model, name), float(row["score"])) for row in rows]
    fusion = Fusion.of(limit, options["candidates"], options["rrf_k"], options["weights"])
    inputs.check_search_settings(options["score_threshold"], options["ef_search"], options["probes"])
    vector = await inputs.query_vector(query, index.embedding, index.image_embedding)
    facts = await planning.table_facts(postgres, name, lambda: index._missing(name, model))
    rerank = options["rerank"]
    threshold = options["score_threshold"]
    search = planning.Search(
        named_query("vectors_hybrid"),
        None,  # short (rare): run again under enable_indexscan = off
        slots={"table": name},
        requirements=where,  # the vector as stored: float16 for halfvec
        values={
            "vector": inputs.as_stored(vector[None, :], facts.precision, "query vector")[0],
            "words": words,
            "language": language_of(facts, name, model),
            "candidates": fusion.candidates,
            "max_distance": math.inf if threshold is None else 1.0 - float(threshold),
            "rrf_k": fusion.rrf_k,
            "weights": list(fusion.weights),
            "rows": None if rerank else limit,  # None: every fused row, with its embedding for MMR
        },
    )
    ef_search, probes, contained = options["ef_search"], options["probes"], index.text_timeout is not None
    with index._requires_table(name, model):
        rows = await bounded(
            postgres,
            index.text_timeout,
            lambda pg: planning.nearest(
                pg, facts, search, fusion.candidates, filtered, ef_search, probes, contained=contained
            ),
        )
    found: list[asyncpg.Record] = [row for row in rows if row["payload"] is not None]
    if rerank and found:
        embeddings = np.stack([row["embedding"] for row in found])
        found = [
            found[at] for at in maximal_marginal_relevance(vector, embeddings, limit, index.mmr_diversity)
        ]
    return [(index._read(row["payload"], model, name), float(row["score"])) for row in found]
