"""What `PostgresVectorIndex` checks before anything reaches the database: table names, models,
the attribute to embed, the embedding calls, and every vector (shape, NaN, infinity, a squared
norm that is zero in float32, and for a float16 table, the values after the cast to float16) and
search bound."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import numpy as np
from numpy.typing import ArrayLike, NDArray

from pgstash.errors import DimensionMismatchError, EmbeddingMissingError
from pgstash.sql.templates import validate_identifier

__all__ = [
    "FLOAT16_MAX",
    "MAX_CANDIDATES",
    "MAX_DIMENSION",
    "MAX_INDEXED_DIMENSION",
    "as_stored",
    "check_model",
    "embedded",
    "given_query",
    "query_vector",
    "refuse_unscorable_rows",
    "selector",
    "table_name",
    "vectors_of",
]

TextEmbedding = Callable[[Sequence[str]], Awaitable[ArrayLike]]
ImageEmbedding = Callable[[Sequence[bytes]], Awaitable[ArrayLike]]

MAX_DIMENSION = 16_000  # pgvector's vector type (halfvec's too)
MAX_INDEXED_DIMENSION = 2_000  # pgvector's HNSW and IVFFlat on vector (halfvec: 4,000)
FLOAT16_MAX = 65_504.0  # the largest finite float16: a component beyond it becomes infinite
# The most rows one search asks the server for (`limit`, and `limit * mmr_multiplier` when
# reranking): past it a search is an export, and `limit=2**62` overflowed int64 in the server.
MAX_CANDIDATES = 10_000

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def table_name(model: type, table: str | None = None) -> str:
    """`table`, else the snake_case of the class name (`HTTPDocument` -> `http_document`);
    `ValueError` unless it matches `^[a-z_][a-z0-9_]{0,62}$`."""
    name = table if table is not None else _CAMEL_BOUNDARY.sub("_", model.__name__).lower()
    return validate_identifier(name)


def check_model(model: object, converter: Any = None) -> None:
    """Models are classes: attrs classes, dataclasses, or any class `converter` (the index's)
    has a structure hook for (a framework's own model type, hooks registered on a converter given
    as `converter=`). Anything else raises `TypeError` naming it."""
    if not isinstance(model, type):
        raise TypeError(f"models are classes (attrs, dataclasses, converter-structured), not {model!r}")
    if attrs.has(model) or dataclasses.is_dataclass(model):
        return
    if model.__module__ == "builtins":
        raise TypeError(
            f"{model.__qualname__} is a builtin type, not a model: models are attrs classes or dataclasses, "
            "or classes the index's converter structures"
        )
    try:
        converter.get_structure_hook(model)
    except Exception:
        raise TypeError(
            f"{model.__qualname__} is not an attrs class or a dataclass and the index's converter has no "
            "structure hook for it: give PostgresVectorIndex a converter= with structure and unstructure "
            "hooks for it"
        ) from None


def refuse_unscorable_rows(matrix: NDArray[np.float32], what: str) -> None:
    """`ValueError` naming the first row whose cosine similarity is undefined: a NaN or infinite
    component, only zeros, or a squared norm that is 0 or infinite in float32 (components of
    1e-30 square to 0 there, as they do in pgvector, which then scored them 1.0 against anything)."""
    if matrix.shape[0] == 1:  # a query: one float32 dot product, a fraction of einsum's cost
        one = float(np.vdot(matrix[0], matrix[0]))  # vdot: no RuntimeWarning on overflow
        if math.isfinite(one) and one > 0:
            return
    squared = np.einsum("ij,ij->i", matrix, matrix)  # float32, as pgvector sums them
    if np.isfinite(squared).all() and (squared > 0).all():
        return
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        raise ValueError(f"{what} {int(np.argmin(finite))} has NaN or infinite components")
    zero = ~matrix.any(axis=1)
    if zero.any():
        raise ValueError(
            f"{what} {int(np.argmax(zero))} is all zeros: its cosine similarity to anything is undefined"
        )
    bad = int(np.argmax(~(np.isfinite(squared) & (squared > 0))))
    raise ValueError(
        f"{what} {bad} has a squared norm of {float(squared[bad])} in float32 (components too close "
        "to zero or too large): its cosine similarity is undefined; scale it to unit length"
    )


def as_stored(matrix: NDArray[np.float32], precision: str | None, what: str) -> NDArray[Any]:
    """The vectors as the table stores them: float32 as they are, or for a `"float16"` (halfvec)
    table cast to float16 and checked again, so that a component beyond +-65,504 (infinite after
    the cast) raises `ValueError` naming the row, and a vector all of whose components underflow
    to zero is refused like any zero vector (`refuse_unscorable_rows`)."""
    if precision != "float16":
        return matrix
    with np.errstate(over="ignore"):
        half = matrix.astype(np.float16)
    infinite = ~np.isfinite(half).all(axis=1)
    if infinite.any():
        row = int(np.argmax(infinite))
        column = int(np.argmax(~np.isfinite(half[row])))
        raise ValueError(
            f"{what} {row} has a component outside float16's range (+-{FLOAT16_MAX:,.0f}): "
            f"{float(matrix[row, column])!r} at position {column}; the table stores halfvec "
            '(precision="float16"): scale the vectors (unit length, for cosine)'
        )
    try:
        refuse_unscorable_rows(half.astype(np.float32), what)
    except ValueError as error:
        raise ValueError(f"{error} (after the cast to float16: the table stores halfvec)") from None
    return half


def selector(model: type, attribute: Any) -> Callable[[Any], Any]:
    """What to embed for each value: a field name, an attrs or dataclass field, or a callable."""
    name: str | None = None
    if isinstance(attribute, str):
        name = attribute
    elif isinstance(attribute, attrs.Attribute | dataclasses.Field):
        name = attribute.name
    elif not callable(attribute):
        raise TypeError(f"attribute is a field name, an attrs field or a callable, not {attribute!r}")
    if name is None:
        select: Callable[[Any], Any] = attribute
        return select
    field = name

    def select_field(item: Any) -> Any:
        try:
            return getattr(item, field)
        except AttributeError:
            raise ValueError(f"{model.__name__} has no attribute {field!r} to embed") from None

    return select_field


async def embedded(
    embed: Callable[[Sequence[Any]], Awaitable[ArrayLike]] | None, kind: str, inputs: Sequence[Any]
) -> NDArray[np.float32]:
    """`embed(inputs)` as an (n, d) float32 matrix; no embedder configured for `kind` raises."""
    if embed is None:
        what = "texts" if kind == "embedding" else "images (bytes)"
        raise EmbeddingMissingError(
            f"PostgresVectorIndex has no {kind} to embed {what}: pass {kind}= to it, or give vectors"
        )
    matrix = np.asarray(await embed(inputs), dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != len(inputs):
        raise ValueError(f"{kind} returned shape {matrix.shape} for {len(inputs)} inputs, not (n, d)")
    return matrix


async def vectors_of(
    selected: list[Any],
    expected: int | None,
    name: str,
    text: TextEmbedding | None,
    image: ImageEmbedding | None,
) -> NDArray[np.float32]:
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
        parts.append((texts, await embedded(text, "embedding", [selected[i] for i in texts])))
    if images:
        parts.append((images, await embedded(image, "image_embedding", [bytes(selected[i]) for i in images])))
    if ready:
        items = selected if len(ready) == len(selected) else [selected[i] for i in ready]
        parts.append((ready, ready_vectors(items, expected, name)))
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
    refuse_unscorable_rows(matrix, "vector")
    return matrix


async def query_vector(
    query: object, text: TextEmbedding | None, image: ImageEmbedding | None
) -> NDArray[np.float32]:
    """The search's query as one checked float32 vector (a text or image is embedded)."""
    ready = given_query(query)
    if ready is not None:
        return ready
    if isinstance(query, str):
        vector = (await embedded(text, "embedding", [query]))[0]
    else:
        vector = (await embedded(image, "image_embedding", [bytes(query)]))[0]  # type: ignore[call-overload]
    return _checked_query(vector)


_FLOAT32 = np.dtype(np.float32)


def given_query(query: object) -> NDArray[np.float32] | None:
    """A query given as a vector, checked, as float32 (without a copy when it is float32
    already); None for a text or image bytes (to embed: `query_vector`)."""
    if type(query) is np.ndarray and query.dtype is _FLOAT32 and query.ndim == 1:
        return _checked_query(query)  # what `astype(np.float32, copy=False)` returns: itself
    if isinstance(query, str | bytes | bytearray | memoryview):
        return None
    if isinstance(query, np.ndarray) and query.ndim == 1:
        vector = query.astype(np.float32, copy=False)
    elif isinstance(query, list | tuple | np.ndarray) or hasattr(query, "to_numpy"):
        vector = ready_vectors([query], None, "query")[0]
    else:
        raise TypeError(f"query is a text, image bytes, a vector or None, not {type(query).__name__}")
    return _checked_query(vector)


def _checked_query(vector: NDArray[np.float32]) -> NDArray[np.float32]:
    if vector.shape[0] < 1:
        raise ValueError("the query vector is empty")
    squared = float(np.vdot(vector, vector))  # refuse_unscorable_rows' test of one row
    if not (math.isfinite(squared) and squared > 0):
        refuse_unscorable_rows(vector[None, :], "query vector")
    return vector


def ready_vectors(items: list[Any], expected: int | None, name: str) -> NDArray[np.float32]:
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
