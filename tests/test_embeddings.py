"""HashingEmbedding (lexical, deterministic) and Maximal Marginal Relevance."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import pgstash
from pgstash.embeddings import HashingEmbedding
from pgstash.mmr import maximal_marginal_relevance


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
