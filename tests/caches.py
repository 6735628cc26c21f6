"""Moved to tests/support/caches.py: import from there (this name is kept while branches written
before tests/support are merged; delete it once nothing imports it)."""

from tests.support.caches import (
    drained,
    eventually,
    sneak,
)

__all__ = ["drained", "eventually", "sneak"]
