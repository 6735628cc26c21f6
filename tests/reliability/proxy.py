"""Moved to tests/support/proxy.py: import from there (this name is kept while branches written
before tests/support are merged; delete it once nothing imports it)."""

from tests.support.proxy import (
    DroppingProxy,
)

__all__ = ["DroppingProxy"]
