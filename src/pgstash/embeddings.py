"""The embedding contract, and an embedding that needs no model (for tests).

An embedding is any callable taking a sequence of texts (or image bytes) and returning an
`(n, d)` array-like, one row per input, in order: a plain function (sentence-transformers'
`encode`), an `async def`, or an object with either `__call__`. `as_embedding` wraps one into an
`Embedder`, which `PostgresVectorIndex` does with whatever it is given: inputs go in batches of
`batch_size`, at most `concurrency` batches at a time (a sync callable runs in a worker thread, off
the event loop), and the dimension found by the first call is kept: a later result of another
width raises `DimensionMismatchError`.

`HashingEmbedding` is LEXICAL, NOT SEMANTIC: texts are near each other when they share words and
spellings, never because they mean the same thing ("car" and "automobile" are unrelated to it).
Keep it for tests that need exact control; `pgstash.embedding_models` has real models
(`WordLlamaEmbedding`, the default of the demo and the CLI with `pgstash[embed]`).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import itertools
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import attrs
import numpy as np
from numpy.typing import ArrayLike, NDArray

from pgstash.errors import DimensionMismatchError
from pgstash.validators import positive_int

__all__ = ["Embedder", "EmbeddingFunction", "HashingEmbedding", "as_embedding"]

EmbeddingFunction = Callable[[Sequence[Any]], "ArrayLike | Awaitable[ArrayLike]"]


def _is_async(function: object) -> bool:
    call = getattr(type(function), "__call__", None)  # noqa: B004 (the class's, not the instance's)
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(call)


@attrs.define(eq=False)
class Embedder:
    """An embedding callable made safe to await: `await embedder(texts)` is an `(n, d)` float32
    array, computed `batch_size` inputs at a time with at most `concurrency` batches in flight.
    `dimension` is None until the first call finds it (or as given), then fixed."""

    function: EmbeddingFunction
    batch_size: int = attrs.field(default=256, kw_only=True)
    concurrency: int = attrs.field(default=4, kw_only=True)
    dimension: int | None = attrs.field(default=None, kw_only=True)
    name: str = attrs.field(default="", kw_only=True)

    @batch_size.validator
    @concurrency.validator
    def _positive(self, attribute: attrs.Attribute[int], value: int) -> None:
        positive_int(value, f"as_embedding's {attribute.name}")

    def __attrs_post_init__(self) -> None:
        if not callable(self.function):
            raise TypeError(f"an embedding is a callable, not {type(self.function).__name__}")
        if not self.name:
            self.name = getattr(self.function, "name", "") or type(self.function).__name__

    async def _batch(self, inputs: Sequence[Any], gate: asyncio.Semaphore) -> NDArray[np.float32]:
        async with gate:
            if _is_async(self.function):
                result = await self.function(inputs)  # type: ignore[misc]
            else:
                result = await asyncio.to_thread(self.function, inputs)
                if inspect.isawaitable(result):  # a callable that returns an awaitable
                    result = await result
        matrix = np.asarray(result, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(inputs):
            raise ValueError(
                f"embedding {self.name} returned shape {matrix.shape} for {len(inputs)} inputs, "
                "not (n, d): it must return one row per input"
            )
        return matrix

    async def __call__(self, inputs: Sequence[Any]) -> NDArray[np.float32]:
        if isinstance(inputs, str | bytes):
            raise TypeError("an embedding takes a sequence of inputs, not one string or bytes")
        items = list(inputs)
        if not items:
            return np.empty((0, self.dimension or 0), dtype=np.float32)
        gate = asyncio.Semaphore(self.concurrency)
        batches = [items[start : start + self.batch_size] for start in range(0, len(items), self.batch_size)]
        parts = await asyncio.gather(*(self._batch(batch, gate) for batch in batches))
        for part in parts:
            if self.dimension is None:
                self.dimension = int(part.shape[1])
            elif part.shape[1] != self.dimension:
                raise DimensionMismatchError(self.dimension, int(part.shape[1]), f"embedding {self.name}")
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    async def discover_dimension(self) -> int:
        """The embedding's dimension: embeds one short text the first time, if not known yet."""
        if self.dimension is None:
            await self(["dimension"])
        assert self.dimension is not None
        return self.dimension


def as_embedding(
    function: EmbeddingFunction | Embedder, *, batch_size: int = 256, concurrency: int = 4
) -> Embedder:
    """`function` (sync or async, from a sequence of inputs to an `(n, d)` array) as an
    `Embedder`; an `Embedder` is returned as it is."""
    if isinstance(function, Embedder):
        return function
    dimension = getattr(function, "dimension", None)
    return Embedder(
        function,
        batch_size=batch_size,
        concurrency=concurrency,
        dimension=dimension if isinstance(dimension, int) else None,
    )


_WORD = re.compile(r"\w+")
_NON_WORD = re.compile(r"\W")
_EMPTY = "\x00empty"  # the one feature of a text without words
_CACHED = 64  # features and words up to this length are cached; longer ones are hashed each time
_CHUNK = 1 << 16  # distinct features hashed and added to the vector at a time: memory stays bounded
_SEGMENT = 1 << 20  # characters of text whose words and word pairs are counted at a time
_NUMBERED = 1 << 12  # words of a segment from which its pairs are counted by number


def _hash_uncached(feature: str) -> int:
    """A stable 64-bit hash (blake2b), the same in every process, unlike `hash()`."""
    return int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")


_hash_cached = functools.lru_cache(maxsize=1 << 16)(_hash_uncached)


def _hash(feature: str) -> int:
    return _hash_cached(feature) if len(feature) <= _CACHED else _hash_uncached(feature)


@functools.lru_cache(maxsize=1 << 14)
def _word_hashes(word: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """A short word's features, hashed: the word (weight 1), its character 3- and 4-grams (0.25)."""
    padded = f"<{word}>"
    grams = [
        f"c{size}:{padded[start : start + size]}"
        for size in (3, 4)
        for start in range(max(1, len(padded) - size + 1))  # "<a>" is its own 4-gram
    ]
    return (_hash(f"w:{word}"), *map(_hash, grams)), (1.0, *[0.25] * len(grams))


def _segments(lowered: str) -> Iterator[str]:
    """The text in pieces of about `_SEGMENT` characters, each cut at a non-word character, so
    that every word lies whole in one piece, and in the text's order."""
    start = 0
    while len(lowered) - start > _SEGMENT:
        cut = _NON_WORD.search(lowered, start + _SEGMENT)
        if cut is None:
            break
        yield lowered[start : cut.start()]
        start = cut.end()
    yield lowered[start:]


class _Sum:
    """The signed sum of hashed features (the hashing trick), each with its weight times its count,
    added `_CHUNK` at a time. Every term is a multiple of 0.25 and every sum far below 2**51, so
    each sum is exact: weight * count once per distinct feature, in any order, gives the bits of
    the weight once per occurrence in the text's order."""

    def __init__(self, dimension: int) -> None:
        self.vector = np.zeros(dimension, dtype=np.float64)
        self.hashes: list[int] = []
        self.weights: list[float] = []
        self.counts: list[int] = []

    def add(self, hashes: Sequence[int], weights: Sequence[float], counts: Sequence[int]) -> None:
        self.hashes += hashes
        self.weights += weights
        self.counts += counts
        if len(self.hashes) >= _CHUNK:
            self.flush()

    def flush(self) -> NDArray[np.float64]:
        hashed = np.array(self.hashes, dtype=np.uint64)
        signs = np.where(hashed >> np.uint64(63), 1.0, -1.0)
        terms = signs * np.asarray(self.weights) * np.asarray(self.counts, dtype=np.float64)
        buckets = (hashed % np.uint64(len(self.vector))).astype(np.intp)
        self.vector += np.bincount(buckets, weights=terms, minlength=len(self.vector))
        self.hashes, self.weights, self.counts = [], [], []
        return self.vector


def _add_long_word(word: str, count: int, total: _Sum) -> None:
    """A word too long to cache: the word, and its character 3- and 4-grams `_CHUNK` at a time."""
    total.add([_hash(f"w:{word}")], [1.0], [count])
    padded = f"<{word}>"
    for size in (3, 4):
        last = len(padded) - size + 1
        for start in range(0, last, _CHUNK):
            stop = min(start + _CHUNK, last)
            grams = Counter(
                map(padded.__getitem__, map(slice, range(start, stop), range(start + size, stop + size)))
            )
            hashes = [_hash(f"c{size}:{gram}") for gram in grams]
            total.add(hashes, [0.25] * len(hashes), [count * times for times in grams.values()])


def _counted(words: list[str]) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    """How many times each word, and each pair of neighbouring words, occurs in `words`. A long
    list's words are numbered first, so that its pairs are counted as numbers, not tuples."""
    if len(words) < _NUMBERED:
        return Counter(words), Counter(itertools.pairwise(words))
    index = {word: number for number, word in enumerate(dict.fromkeys(words))}
    distinct = list(index)
    ids = np.fromiter(map(index.__getitem__, words), dtype=np.int64, count=len(words))
    codes, counts = np.unique(ids[:-1] * len(distinct) + ids[1:], return_counts=True)
    firsts, seconds = (map(distinct.__getitem__, part.tolist()) for part in np.divmod(codes, len(distinct)))
    return (
        dict(zip(distinct, np.bincount(ids).tolist(), strict=True)),
        dict(zip(zip(firsts, seconds, strict=True), counts.tolist(), strict=True)),
    )


def _add_text(text: str, total: _Sum) -> None:
    """Adds the text's words and their character n-grams (the word 1, an n-gram 0.25) and its
    pairs of neighbouring words (0.5); a text without words is one fixed feature. The text is
    read a segment at a time, each distinct word and pair of a segment hashed once, with how many
    times it occurs there: memory is bounded by the text plus one segment, whatever the text."""
    previous: str | None = None  # the last word before this segment: a pair straddles the cut
    for segment in _segments(text.lower()):
        words = _WORD.findall(segment)
        if not words:
            continue
        if previous is not None:
            total.add([_hash(f"b:{previous} {words[0]}")], [0.5], [1])
        previous = words[-1]
        word_counts, pair_counts = _counted(words)
        for word, count in word_counts.items():
            if len(word) <= _CACHED:
                hashes, weights = _word_hashes(word)
                total.add(hashes, weights, [count] * len(hashes))
            else:
                _add_long_word(word, count, total)
        pairs = iter(pair_counts.items())
        while batch := list(itertools.islice(pairs, _CHUNK)):
            pair_hashes = [_hash(f"b:{first} {second}") for (first, second), _ in batch]
            total.add(pair_hashes, [0.5] * len(batch), [count for _, count in batch])
    if previous is None:
        total.add([_hash(_EMPTY)], [1.0], [1])


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

    @property
    def name(self) -> str:
        return f"hashing-{self.dimension}"

    @dimension.validator
    def _positive(self, _: attrs.Attribute[int], value: int) -> None:
        positive_int(value, "HashingEmbedding's dimension")

    def embed(self, text: str) -> NDArray[np.float32]:
        """One text's unit vector. The text is read a segment at a time, so memory stays bounded by
        the text plus one segment (a 25 MB text needs no list of all its words)."""
        total = _Sum(self.dimension)
        _add_text(text, total)
        vector = total.flush()
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
