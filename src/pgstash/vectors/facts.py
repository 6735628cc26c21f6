"""What a vector table is, as the catalog describes it: its facts (dimension, precision, storage,
indexes, text column, pgvector's version) read in one statement (`vectors_table_facts`) and
remembered by the pool for `FACTS_TTL` seconds, and the names its indexes get."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping
from datetime import datetime

import attrs

from pgstash.connection import Postgres
from pgstash.errors import ConfigurationError
from pgstash.sql import names

__all__ = [
    "FACTS_TTL", "IVFFLAT_COMMENT", "PRECISIONS", "Precision", "TableFacts", "check_precision", "index_name",
    "read_facts", "remembered", "table_facts", "tables",
]  # fmt: skip

FACTS_TTL = 30.0  # seconds a table's dimension and indexes are remembered between searches
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
    field_columns: tuple[str, ...] = ()  # indexed payload fields: "name type: expression" each
    quantized: bool = False  # a valid HNSW index over binary_quantize(embedding) (quantize.py)


def _version(text: str | None) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text or "")[:3])


async def read_facts(postgres: Postgres, name: str) -> TableFacts:
    """The table's facts from the catalog (one statement), remembered for searches."""
    row = await postgres.run(names.vectors_table_facts, table_name=name)
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
        field_columns=tuple(row["field_columns"] or ()),
        quantized=bool(row["quantized"]),
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


def remembered(postgres: Postgres, name: str) -> TableFacts | None:
    """The table's facts as this pool remembers them, when at most `FACTS_TTL` seconds old."""
    known = tables(postgres).get(name)
    if known is not None and time.monotonic() - known.read_at < FACTS_TTL:
        return known
    return None


async def table_facts(
    postgres: Postgres, name: str, missing: Callable[[], Exception], fresh: bool = False
) -> TableFacts:
    """The facts of a vector table that must exist (`missing()` is raised otherwise), at most
    `FACTS_TTL` seconds old unless `fresh`."""
    known = None if fresh else remembered(postgres, name)
    if known is not None:
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
class Precision:
    """What a precision stores: the embedding column's type, its cosine operator class, the most
    dimensions the type holds and the most an HNSW or IVFFlat index on it takes (pgvector's limits)."""

    name: str
    vector_type: str
    opclass: str
    max_dimension: int
    max_indexed_dimension: int


# The allow-list that fills the template's {vector_type} and {opclass} slots (never caller text).
PRECISIONS: Mapping[str, Precision] = {
    "float32": Precision("float32", "vector", "vector_cosine_ops", 16_000, 2_000),
    "float16": Precision("float16", "halfvec", "halfvec_cosine_ops", 16_000, 4_000),
}


def check_precision(precision: object, dimension: int, index: str | None) -> Precision:
    """The precision `create_table` was asked for; `ValueError` for another name, or a dimension
    beyond what its type holds or what an index on it takes."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        allowed = " or ".join(f'"{name}"' for name in PRECISIONS)
        raise ValueError(f"precision must be {allowed}, got {precision!r}")
    chosen = PRECISIONS[precision]
    if dimension > chosen.max_dimension:
        raise ValueError(
            f"pgvector's {chosen.vector_type} holds at most {chosen.max_dimension:,} dimensions, "
            f"got {dimension:,}"
        )
    if index is not None and dimension > chosen.max_indexed_dimension:
        half = PRECISIONS["float16"]
        hint = (
            f', or precision="float16" ({half.vector_type}: indexed up to '
            f"{half.max_indexed_dimension:,} dimensions)"
            if dimension <= half.max_indexed_dimension
            else ""
        )
        raise ValueError(
            f"pgvector's {index} index on {chosen.vector_type} ({chosen.name}) takes at most "
            f"{chosen.max_indexed_dimension:,} dimensions, got {dimension:,}: pass index=None for "
            f"exact search{hint}"
        )
    return chosen
