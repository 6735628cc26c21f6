"""Moved to tests/support/cli.py: import from there (this name is kept while branches written
before tests/support are merged; delete it once nothing imports it)."""

from tests.support.cli import (
    PGSTASH,
    fetch,
    pgstash,
)

__all__ = ["PGSTASH", "fetch", "pgstash"]
