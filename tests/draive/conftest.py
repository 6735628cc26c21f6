"""Fixtures for the draive adapters (Python 3.13, one draive generation per venv): draive's
`TextEmbedding` and `ImageEmbedding` on a deterministic embedding. The helpers the tests share
are in tests/support/draive.py."""

from __future__ import annotations

from typing import Any

import pytest

draive = pytest.importorskip("draive")

from draive.embedding import ImageEmbedding, TextEmbedding  # noqa: E402

from tests.support.draive import embed  # noqa: E402


@pytest.fixture
def embeddings() -> tuple[Any, Any]:
    return TextEmbedding(embedding=embed), ImageEmbedding(embedding=embed)
