"""HashingEmbedding (lexical, deterministic) and Maximal Marginal Relevance."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import pgstash
from pgstash.embeddings import HashingEmbedding
from pgstash.vectors.search.mmr import maximal_marginal_relevance


async def test_shape_dtype_and_unit_length() -> None:
    vectors = await HashingEmbedding(48)(["hello world", "", "   ", "ünïcode wörds", "a"])
    assert vectors.shape == (5, 48) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    assert pgstash.embeddings.HashingEmbedding is pgstash.HashingEmbedding
    assert (await HashingEmbedding(8)([])).shape == (0, 8)


async def test_shared_words_are_near_and_unrelated_texts_far() -> None:
    embed = HashingEmbedding(256)
    cat, cats, stocks = await embed(
        ["the cat sat on the mat", "a cat sat on a mat", "stock markets fell sharply"]
    )
    assert float(cat @ cats) > 0.5 > float(cat @ stocks)
    upper, lower = await embed(["Hello World", "hello world"])
    assert float(upper @ lower) == pytest.approx(1.0)  # case-insensitive


@pytest.mark.process
def test_the_same_vectors_in_every_process() -> None:
    script = (
        "import asyncio, pgstash; print(asyncio.run(pgstash.HashingEmbedding(16)(['same text']))[0].tolist())"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1
    assert outputs.pop().strip() == str(HashingEmbedding(16).embed("same text").tolist())


async def test_bad_arguments() -> None:
    for dimension in (0, -1, 2.5, True):
        with pytest.raises(ValueError):
            HashingEmbedding(dimension)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sequence of texts"):
        await HashingEmbedding(4)("one string")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await HashingEmbedding(4)([b"bytes"])  # type: ignore[list-item]


def test_the_docstring_says_lexical_not_semantic() -> None:
    assert "lexical, not semantic" in (HashingEmbedding.__doc__ or "")


def test_mmr_without_diversity_is_nearest_first() -> None:
    rng = np.random.default_rng(1)
    candidates = rng.standard_normal((30, 8))
    query = rng.standard_normal(8)
    cosine = candidates @ query / (np.linalg.norm(candidates, axis=1) * np.linalg.norm(query))
    assert maximal_marginal_relevance(query, candidates, 5, diversity=0.0) == list(np.argsort(-cosine)[:5])


def test_mmr_skips_near_duplicates() -> None:
    query = np.array([1.0, 0.0])
    candidates = np.array([[1.0, 0.05], [1.0, 0.06], [1.0, 0.07], [0.6, -0.8]])
    picked = maximal_marginal_relevance(query, candidates, 2, diversity=0.5)
    assert picked == [0, 3]  # the second duplicate adds nothing; the far row adds coverage
    assert sorted(maximal_marginal_relevance(query, candidates, 10)) == [0, 1, 2, 3]
    assert maximal_marginal_relevance(query, np.empty((0, 2)), 3) == []
    with pytest.raises(ValueError):
        maximal_marginal_relevance(query, candidates, 2, diversity=1.5)


def _materialised(text: str, dimension: int) -> np.ndarray:
    """The first implementation, which listed every feature of the text at once: the reference."""
    import hashlib
    import itertools
    import re

    words = re.findall(r"\w+", text.lower())
    features: list[tuple[str, float]] = []
    for word in words:
        features.append((f"w:{word}", 1.0))
        padded = f"<{word}>"
        for size in (3, 4):
            for start in range(max(1, len(padded) - size + 1)):
                features.append((f"c{size}:{padded[start : start + size]}", 0.25))
    features += [(f"b:{a} {b}", 0.5) for a, b in itertools.pairwise(words)]
    features = features or [("\x00empty", 1.0)]
    hashes = np.array(
        [int.from_bytes(hashlib.blake2b(f.encode(), digest_size=8).digest(), "little") for f, _ in features],
        dtype=np.uint64,
    )
    signs = np.where(hashes >> np.uint64(63), 1.0, -1.0)
    vector = np.zeros(dimension)
    np.add.at(vector, (hashes % np.uint64(dimension)).astype(np.intp), signs * [w for _, w in features])
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def test_streamed_features_give_the_vectors_of_the_materialised_ones() -> None:
    texts = ["", "!!", "hello world", "a", "x" * 300 + " y", "Ünïcode wörds, and more words " * 5000]
    for dimension in (1, 7, 384):
        for text in texts:
            expected = _materialised(text, dimension)
            assert np.array_equal(HashingEmbedding(dimension).embed(text), expected), (dimension, text[:20])


@pytest.mark.process
def test_a_25_mb_line_embeds_in_bounded_memory() -> None:
    script = """
import random, resource
from pgstash.embeddings import HashingEmbedding
rng = random.Random(7)
letters = "abcdefghijklmnopqrstuvwxyz"
vocabulary = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(150)]
text = " ".join(rng.choice(vocabulary) for _ in range(4_200_000))
assert len(text) > 25_000_000
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
vector = HashingEmbedding(384).embed(text + " " + "z" * 1_000_000)  # and one 1 MB word
print(before // 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    before, peak = map(int, result.stdout.split())
    assert peak < 500, f"peak RSS {peak} MB (before embedding: {before} MB)"
