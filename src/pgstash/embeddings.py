"""Embeddings that need no model: for tests, demos and benchmarks.

`HashingEmbedding` is LEXICAL, NOT SEMANTIC: texts are near each other when they share words and
spellings, never because they mean the same thing ("car" and "automobile" are unrelated to it).
Use a real embedding model for retrieval by meaning.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterator, Sequence

import attrs
import numpy as np
from numpy.typing import NDArray

from pgstash.validators import positive_int

__all__ = ["HashingEmbedding"]

_WORD = re.compile(r"\w+")
_EMPTY = "\x00empty"  # the one feature of a text without words


_CACHED = 64  # features and words up to this length are cached; longer ones are hashed each time
_CHUNK = 1 << 16  # features hashed and added to the vector at a time: memory stays bounded


def _hash_uncached(feature: str) -> int:
    """A stable 64-bit hash (blake2b), the same in every process, unlike `hash()`."""
    return int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")


_hash_cached = functools.lru_cache(maxsize=1 << 16)(_hash_uncached)


def _hash(feature: str) -> int:
    return _hash_cached(feature) if len(feature) <= _CACHED else _hash_uncached(feature)


def _grams(word: str) -> Iterator[tuple[str, float]]:
    """A word's features in order: the word (weight 1), then its character 3- and 4-grams (0.25)."""
    yield f"w:{word}", 1.0
    padded = f"<{word}>"
    for size in (3, 4):
        for start in range(max(1, len(padded) - size + 1)):
            yield f"c{size}:{padded[start : start + size]}", 0.25


@functools.lru_cache(maxsize=1 << 14)
def _word_hashes(word: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
    pairs = [(_hash(feature), weight) for feature, weight in _grams(word)]
    return tuple(h for h, _ in pairs), tuple(w for _, w in pairs)


def _chunks(text: str) -> Iterator[tuple[list[int], list[float]]]:
    """The text's hashed features and weights in a fixed order, about `_CHUNK` at a time, never
    all at once: words and their character n-grams, then word pairs (0.5); a text without words
    has one fixed feature. Memory is bounded by the text plus one chunk, whatever the text."""
    lowered = text.lower()
    hashes: list[int] = []
    weights: list[float] = []
    any_word = False
    for match in _WORD.finditer(lowered):
        any_word = True
        word = match.group()
        if len(word) <= _CACHED:
            some_hashes, some_weights = _word_hashes(word)
            hashes += some_hashes
            weights += some_weights
        else:
            for feature, weight in _grams(word):
                hashes.append(_hash(feature))
                weights.append(weight)
                if len(hashes) >= _CHUNK:
                    yield hashes, weights
                    hashes, weights = [], []
        if len(hashes) >= _CHUNK:
            yield hashes, weights
            hashes, weights = [], []
    if not any_word:
        yield [_hash(_EMPTY)], [1.0]
        return
    previous = None
    for match in _WORD.finditer(lowered):
        word = match.group()
        if previous is not None:
            hashes.append(_hash(f"b:{previous} {word}"))
            weights.append(0.5)
            if len(hashes) >= _CHUNK:
                yield hashes, weights
                hashes, weights = [], []
        previous = word
    if hashes:
        yield hashes, weights


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
        positive_int(value, "HashingEmbedding's dimension")

    def embed(self, text: str) -> NDArray[np.float32]:
        """One text's unit vector. Features are hashed and added a chunk at a time, so memory
        stays bounded by the text plus the dimension (a 25 MB text needs no list of its words)."""
        vector = np.zeros(self.dimension, dtype=np.float64)
        for hashes, weights in _chunks(text):
            hashed = np.array(hashes, dtype=np.uint64)
            signs = np.where(hashed >> np.uint64(63), 1.0, -1.0)
            np.add.at(
                vector, (hashed % np.uint64(self.dimension)).astype(np.intp), signs * np.asarray(weights)
            )
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
