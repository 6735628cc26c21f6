"""Moved to tests/support/faults.py: import from there (this name is kept while branches written
before tests/support are merged; delete it once nothing imports it)."""

from tests.support.faults import (
    MIGRATED_TABLES,
    STALL,
    TABLES,
    counts,
    eventually,
    killed_midway,
    pool_pids,
    stall_inserts,
    stalled_backend,
    terminate,
    terminate_unnoticed,
)

__all__ = [
    "MIGRATED_TABLES",
    "STALL",
    "TABLES",
    "counts",
    "eventually",
    "killed_midway",
    "pool_pids",
    "stall_inserts",
    "stalled_backend",
    "terminate",
    "terminate_unnoticed",
]
