"""Maximal Marginal Relevance in numpy: picks results that are near the query and far from each
other (Carbonell and Goldstein, 1998)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["maximal_marginal_relevance"]


def _unit_rows(matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.where(norms == 0.0, 1.0, norms)


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
    relevance = rows @ _unit_rows(np.asarray(query, dtype=np.float64))
    closest_picked = np.full(count, -np.inf)
    available = np.ones(count, dtype=bool)
    picked: list[int] = []
    for _ in range(min(limit, count)):
        redundancy = np.where(np.isfinite(closest_picked), closest_picked, 0.0)
        scores = (1.0 - diversity) * relevance - diversity * redundancy
        scores[~available] = -np.inf
        best = int(np.argmax(scores))
        picked.append(best)
        available[best] = False
        closest_picked = np.maximum(closest_picked, rows @ rows[best])
    return picked
