"""Embeddings that need no model: for tests, demos and benchmarks.

`HashingEmbedding` is LEXICAL, NOT SEMANTIC: texts are near each other when they share words and
spellings, never because they mean the same thing ("car" and "automobile" are unrelated to it).
Use a real embedding model for retrieval by meaning.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import re
from collections.abc import Sequence

import attrs
import numpy as np
from numpy.typing import NDArray

__all__ = ["HashingEmbedding"]

_WORD = re.compile(r"\w+")
_EMPTY = "\x00empty"  # the one feature of a text without words


@functools.lru_cache(maxsize=1 << 18)
def _hash(feature: str) -> int:
    """A stable 64-bit hash (blake2b), the same in every process, unlike `hash()`."""
    return int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")


def _features(text: str) -> tuple[list[str], list[float]]:
    words = _WORD.findall(text.lower())
    features: list[str] = []
    weights: list[float] = []
    for word in words:
        features.append(f"w:{word}")
        weights.append(1.0)
        padded = f"<{word}>"
        for size in (3, 4):
            for start in range(max(1, len(padded) - size + 1)):
                features.append(f"c{size}:{padded[start : start + size]}")
                weights.append(0.25)
    for first, second in itertools.pairwise(words):
        features.append(f"b:{first} {second}")
        weights.append(0.5)
    if not features:
        features.append(_EMPTY)
        weights.append(1.0)
    return features, weights


@attrs.frozen(slots=True)
class HashingEmbedding:
    """A deterministic lexical embedding: hashed words, word pairs and character 3- and 4-grams
    (the hashing trick, signed), L2-normalised to unit length. No model, no download, the same
    vectors in every process and on every machine.

    It is lexical, not semantic: similarity means shared words and spellings, not shared
    meaning. Use it for tests and demos; use a real embedding model for retrieval by meaning.

    `await HashingEmbedding(384)(["some text", ...])` returns an `(n, 384)` float32 array. A text
    without any word maps to one fixed unit vector."""

    dimension: int = attrs.field()

    @dimension.validator
    def _positive(self, _: attrs.Attribute[int], value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"HashingEmbedding needs a positive integer dimension, got {value!r}")

    def embed(self, text: str) -> NDArray[np.float32]:
        """One text's unit vector."""
        features, weights = _features(text)
        hashes = np.fromiter((_hash(feature) for feature in features), dtype=np.uint64, count=len(features))
        signs = np.where(hashes >> np.uint64(63), 1.0, -1.0)
        vector = np.zeros(self.dimension, dtype=np.float64)
        np.add.at(vector, (hashes % np.uint64(self.dimension)).astype(np.intp), signs * np.asarray(weights))
        norm = np.linalg.norm(vector)
        if norm == 0.0:  # every feature cancelled out: fall back to the empty text's vector
            return self.embed("")
        return (vector / norm).astype(np.float32)

    async def __call__(self, texts: Sequence[str]) -> NDArray[np.float32]:
        if isinstance(texts, str):
            raise TypeError("HashingEmbedding takes a sequence of texts, not one string")
        matrix = np.empty((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"HashingEmbedding embeds texts, not {type(text).__name__}")
            matrix[row] = self.embed(text)
        return matrix
