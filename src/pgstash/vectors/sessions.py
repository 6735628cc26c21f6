"""A session for statements that run outside a transaction with session settings (CREATE INDEX
CONCURRENTLY with its lock_timeout and maintenance_work_mem), wherever the pool can give one
(behind a transaction pooler only with `listen_dsn`: docs/deployment.md)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from pgstash.connection import Postgres

__all__ = ["session_for_settings"]


@contextlib.asynccontextmanager
async def session_for_settings(postgres: Postgres) -> AsyncIterator[bool]:
    """A session (one pinned connection) for the block; yields whether session settings may be
    set. Behind a transaction pooler with no session to pin (no `listen_dsn`) it yields False:
    the statements run with the server's settings, since a session setting would stay behind on
    whichever server connection took it (said once, as a WARNING, when the pool opens)."""
    if not postgres.lifecycle.pooling.sessions:
        yield False
        return
    async with postgres.session():
        yield True
