"""Maximal Marginal Relevance in numpy: picks results that are near the query and far from each
other (Carbonell and Goldstein, 1998)."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["maximal_marginal_relevance", "reranked"]


class _Row(Protocol):
    def __getitem__(self, key: str, /) -> Any: ...


Row = TypeVar("Row", bound=_Row)  # a result row with its "embedding"


def _unit_rows(matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
    norms[norms == 0.0] = 1.0
    result: NDArray[np.float64] = matrix / norms[:, None]
    return result


def maximal_marginal_relevance(
    query: ArrayLike, candidates: ArrayLike, limit: int, diversity: float = 0.5
) -> list[int]:
    """Indices of `min(limit, len(candidates))` candidates in the order MMR picks them: each
    step takes the candidate maximising `(1 - diversity) * cos(query, c) - diversity *
    max(cos(c, picked))`. `diversity` 0 is plain nearest-first, 1 only spreads the results."""
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be within [0, 1], got {diversity}")
    matrix = np.asarray(candidates, dtype=np.float64)
    count = matrix.shape[0] if matrix.ndim == 2 else 0
    if count == 0 or limit <= 0:
        return []
    rows = _unit_rows(matrix)
    relevance = (1.0 - diversity) * (rows @ _unit_rows(np.asarray(query, dtype=np.float64)[None, :])[0])
    penalty = np.zeros(count)  # diversity * max cosine to a picked row (0 before any pick)
    scores = relevance.copy()
    picked: list[int] = []
    for step in range(min(limit, count)):
        best = int(np.argmax(scores))
        picked.append(best)
        similarity = diversity * (rows @ rows[best])  # one row at a time: a full matmul costs more
        penalty = similarity if step == 0 else np.maximum(penalty, similarity)
        scores = relevance - penalty
        scores[picked] = -np.inf
    return picked


def reranked(query: ArrayLike, rows: list[Row], limit: int, diversity: float) -> list[Row]:
    """`rows` (each with its `embedding`) picked and ordered by MMR: at most `limit` of them."""
    if not rows:
        return rows
    embeddings = np.stack([row["embedding"] for row in rows])
    return [rows[at] for at in maximal_marginal_relevance(query, embeddings, limit, diversity)]
