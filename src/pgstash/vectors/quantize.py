"""Binary quantization: `create_table(model, ..., quantize="binary")`.

The table keeps its float embeddings; its nearest-neighbour index is HNSW over each embedding's
signs (`binary_quantize(embedding)::bit(d)`, one bit a dimension, `bit_hamming_ops`), about 30x
smaller in vectors than float32 and several times smaller as an index (the graph's links remain).
A search (`vectors_search_binary`, queries/vectors_binary.sql) shortlists `candidates` rows by
Hamming distance through that index and re-ranks them exactly by cosine in the same statement,
so scores, `score_threshold`, requirements and MMR are as on any table; recall depends on the
data and on `candidates` (the bench's `--scale million` row says what it costs). A hybrid search's
vector arm and the exact fallback of a filtered search that came back short read the float
embeddings without an index (exact).
"""

from __future__ import annotations

from typing import Any

from pgstash.sql.catalogue import query
from pgstash.sql.composer import Fragment
from pgstash.vectors.facts import TableFacts
from pgstash.vectors.inputs import MAX_CANDIDATES
from pgstash.vectors.search import planning

__all__ = ["MAX_BIT_DIMENSION", "QUANTIZE", "binary_search", "check_quantize", "pool_size"]

QUANTIZE = (None, "binary")
MAX_BIT_DIMENSION = 64_000  # pgvector: an HNSW index on bit takes at most 64,000 dimensions
POOL_PER_RESULT = 10  # default shortlist: this many rows by Hamming distance per row wanted
MIN_POOL = 200


def check_quantize(quantize: object, dimension: int, index: str | None) -> str | None:
    """The quantization `create_table` was asked for; `ValueError` before any SQL for another
    name, an index other than HNSW, or a dimension the bit index cannot take."""
    if quantize is None:
        return None
    if quantize not in QUANTIZE:
        raise ValueError(f'quantize is None or "binary", got {quantize!r}')
    if index != "hnsw":
        raise ValueError(
            f'quantize="binary" builds an HNSW index over the bits: pass index="hnsw", not {index!r}'
        )
    if dimension > MAX_BIT_DIMENSION:
        raise ValueError(
            f"pgvector's HNSW index on bit takes at most {MAX_BIT_DIMENSION:,} dimensions, got {dimension:,}"
        )
    return "binary"


def pool_size(wanted: int, candidates: object) -> int:
    """How many rows the Hamming shortlist takes: `candidates` when given (at least `wanted`, at
    most `MAX_CANDIDATES`), else `POOL_PER_RESULT` per row wanted, at least `MIN_POOL`."""
    if candidates is None:
        return min(MAX_CANDIDATES, max(POOL_PER_RESULT * wanted, MIN_POOL))
    if (
        not isinstance(candidates, int)
        or isinstance(candidates, bool)
        or not wanted <= candidates <= MAX_CANDIDATES
    ):
        raise ValueError(
            f"candidates (the rows shortlisted by Hamming distance) is an integer from {wanted} "
            f"(the rows asked for) to {MAX_CANDIDATES:,}, got {candidates!r}"
        )
    return candidates


def binary_search(
    name: str, facts: TableFacts, where: Fragment, values: dict[str, Any], pool: int
) -> planning.Search:
    """The search of a binary-quantized table: the shortlist and re-rank in one statement, and
    `vectors_search_exact` when a filtered shortlist came back short."""
    return planning.Search(
        query("vectors_search_binary"),
        query("vectors_search_exact"),
        slots={
            "table": name,
            "dimension": facts.dimension or 0,
            "vector_type": "halfvec" if facts.precision == "float16" else "vector",
        },
        requirements=where,
        values={**values, "pool": pool},
    )
