"""Moved to tests/support/replication.py: import from there (this name is kept while branches written
before tests/support are merged; delete it once nothing imports it)."""

from tests.support.replication import (
    ReplicaPair,
    _binaries,
    _free_port,
    _system_user,
)

__all__ = ["ReplicaPair", "_binaries", "_free_port", "_system_user"]
