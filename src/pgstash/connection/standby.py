"""One hot standby (`Replica`): its pool, what its monitor last saw, its replay lag, and whether
an error says the standby itself is unavailable (`fault`)."""

from __future__ import annotations

import collections
import time

import asyncpg
import attrs

from pgstash.errors import PgstashError

__all__ = ["Replica", "fault"]


def fault(error: PgstashError) -> bool:
    """Whether `error` says the replica itself is unavailable (connection, shutdown, timeout),
    rather than something about the statement."""
    state = getattr(error, "sqlstate", None) or ""
    if state == "57014" and "statement timeout" in str(error):
        return False  # the statement's own timeout (a text search's): the same on the primary
    return state.startswith(("08", "57P")) or state in ("57014", "53300")


@attrs.define(eq=False)
class Replica:
    """One hot standby: its pool, and what its monitor last saw."""

    shown: str  # the DSN without its password
    dsn: str
    pool: asyncpg.Pool
    state: str = "starting"  # "up", "lagging", "down", "not a standby", "starting"
    reason: str = ""
    replayed: int = -1  # WAL position replayed, in bytes
    lag: float | None = None
    checked: float = 0.0
    # (when first seen, WAL position) the primary had and the replica had not replayed yet
    pending: collections.deque[tuple[float, int]] = attrs.field(factory=collections.deque)
    retry_at: float = 0.0
    monitor: asyncpg.Connection | None = None

    @property
    def up(self) -> bool:
        return self.state == "up"

    def describe(self) -> str:
        if self.state == "up":
            return f"up, replay lag {self.lag or 0.0:.2f} s"
        return f"skipped ({self.state}): {self.reason}" if self.reason else f"skipped ({self.state})"

    def lag_behind(self, known: int) -> float:
        """Seconds since the monitor first saw a WAL position that the primary had (what the
        replica had received, or this pool's last commit) and the replica has still not
        replayed. Unlike `now() - pg_last_xact_replay_timestamp()` it does not count the idle
        time before a write."""
        now = time.monotonic()
        pending = self.pending
        if known > self.replayed and (not pending or known > pending[-1][1]):
            pending.append((now, known))
        while pending and pending[0][1] <= self.replayed:
            pending.popleft()
        return now - pending[0][0] if pending else 0.0
