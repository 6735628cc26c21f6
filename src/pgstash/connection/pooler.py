"""What changes behind a connection pooler (`PostgresConnectionPool.of(pooler=..., listen_dsn=...)`,
docs/deployment.md): PgBouncer, Supavisor, Neon's pooler, RDS Proxy.

Behind any pooler pgstash sends no startup parameter of its own (PgBouncer refuses the ones it
does not know); the search statements set pgvector's iterative scans themselves
(`vectors_scan_gate`). Behind a transaction pooler, where each transaction may run on another
server connection, also: no named prepared statements (`statement_cache_size` 0: asyncpg then
parses each statement unnamed, with its execution), and no session: `session()` and the cache
listener's LISTEN go to `listen_dsn`, a direct or session-mode DSN; without one `session()` is
refused and caches live by their TTL (one WARNING at open). PgBouncer's own errors are explained
here (`explain`), naming the setting of pgbouncer.ini to change.
"""

from __future__ import annotations

import os
from typing import Any

import asyncpg
import attrs

from pgstash.errors import ConfigurationError

__all__ = ["POOLERS", "POOLER_VARIABLE", "Pooling", "SessionPool", "Sessions", "explain"]

POOLER_VARIABLE = "PGSTASH_POOLER"  # pooler= for a pool opened without it (the command line)
TRANSACTION = "pgbouncer-transaction"
SESSION = "pgbouncer-session"
POOLERS = (TRANSACTION, SESSION)
STATEMENT_CACHE_SIZE = 100  # asyncpg's default, kept directly and behind a session pooler


@attrs.frozen
class Pooling:
    """What the pool's DSN reaches: PostgreSQL itself (`mode` None) or a pooler, and the DSN of
    a session (`listen_dsn`) behind a transaction pooler."""

    mode: str | None = None
    listen_dsn: str | None = None

    @classmethod
    def of(cls, mode: str | None, listen_dsn: str | None) -> Pooling:
        """`mode` as given to `of()`, else (None) `PGSTASH_POOLER`, else direct."""
        if mode is None:
            mode = os.environ.get(POOLER_VARIABLE) or None
        if mode is not None and mode not in POOLERS:
            raise ValueError(
                f"pooler must be None, {TRANSACTION!r} or {SESSION!r}, got {mode!r} "
                f"(Supavisor's and Neon's poolers and RDS Proxy: {TRANSACTION!r})"
            )
        return cls(mode, listen_dsn)

    @property
    def transaction(self) -> bool:
        """Behind a transaction pooler: every transaction may run on another server connection."""
        return self.mode == TRANSACTION

    @property
    def statement_settings(self) -> bool:
        """Behind any pooler: nothing set at connect, each statement carries what it needs."""
        return self.mode is not None

    @property
    def sessions(self) -> bool:
        """Whether a session (LISTEN, `session()`) is to be had."""
        return not self.transaction or self.listen_dsn is not None

    def statement_cache_size(self, given: int | None) -> int:
        """`given`, else 0 behind a transaction pooler (PgBouncer before 1.21, or without
        max_prepared_statements, keeps no prepared statement across transactions), else 100."""
        if given is not None:
            return given
        return 0 if self.transaction else STATEMENT_CACHE_SIZE

    def server_settings(self, ours: dict[str, str], callers: dict[str, str] | None) -> dict[str, str]:
        """The startup parameters: pgstash's and the caller's directly, the caller's alone behind
        a pooler."""
        return {**({} if self.statement_settings else ours), **(callers or {})}

    def refused(self, error: asyncpg.PostgresError) -> str:
        """What to add to a connect error: how to say that the DSN reaches a pooler."""
        if self.mode is None and "unsupported startup parameter" in str(error):
            return (
                " (a pooler such as PgBouncer refuses startup parameters: pass "
                f"pooler={TRANSACTION!r} or {SESSION!r}, or set {POOLER_VARIABLE})"
            )
        return ""

    def warning(self) -> str | None:
        """The one WARNING at open behind a transaction pooler without `listen_dsn`."""
        if self.sessions:
            return None
        return (
            f"pooler={TRANSACTION!r} without listen_dsn: no LISTEN through a transaction pooler, so "
            "the configurations and instructions caches do not hear other processes' writes and "
            "serve an entry for up to its cache_expiration, and CREATE INDEX CONCURRENTLY runs with "
            "the server's lock_timeout and maintenance_work_mem; pass listen_dsn= (a direct or "
            "session-mode DSN of the same database) to get both back"
        )


class SessionPool:
    """`session()` blocks behind a transaction pooler: connections of a small pool on
    `listen_dsn` (the `scope.Primary` a `Session` pins its connection from; `lifecycle` and
    `scopes` are the facade's: this module imports nothing of the package, which imports it)."""

    def __init__(self, pool: asyncpg.Pool, lifecycle: Any, scopes: Any, committed: Any) -> None:
        self.pool = pool
        self.lifecycle = lifecycle
        self.scopes = scopes
        self.committed = committed  # the primary's: a session may have written

    async def acquire(self, name: str) -> tuple[asyncpg.Connection, Any]:
        acquired: tuple[asyncpg.Connection, Any] = await self.lifecycle.acquire(self.pool, name)
        return acquired

    async def release(self, proxy: Any, name: str) -> None:
        await self.lifecycle.release(self.pool, proxy, name)


class Sessions:
    """Where a pool's `session()` blocks get their connection: the pool's own, or behind a
    transaction pooler a small pool on `listen_dsn` (`attach`ed when the pool opens)."""

    def __init__(self, pooling: Pooling) -> None:
        self.pooling = pooling
        self.pool: asyncpg.Pool | None = None

    def attach(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    def primary(self, postgres: Any) -> Any:
        """The `scope.Primary` of a new `session()` block on `postgres` (the facade): itself,
        unless behind a transaction pooler outside any block (`ConfigurationError` without
        `listen_dsn`: there is no session to give)."""
        if not self.pooling.transaction or postgres.scopes.current.get() is not None:
            return postgres
        if self.pool is None:
            raise ConfigurationError(
                "postgres.session() needs a session, which a transaction pooler does not keep (each "
                "transaction may run on another server connection): pass listen_dsn= (a direct or "
                "session-mode DSN of the same database) to PostgresConnectionPool.of()"
            )
        return SessionPool(self.pool, postgres.lifecycle, postgres.scopes, postgres.committed)

    async def aclose(self) -> None:  # with the pool (`Postgres.shared`)
        if self.pool is not None:
            await self.pool.close()


# What PgBouncer says when it closes a client connection, and what it means for the statement:
# the setting of pgbouncer.ini involved, and whether the statement can have been applied.
_FAULTS = {
    "query_wait_timeout": (
        "no server connection came free within PgBouncer's query_wait_timeout (every one of its "
        "default_pool_size was busy, or the database was PAUSEd): the statement never reached "
        "PostgreSQL and nothing was applied; raise query_wait_timeout or default_pool_size in "
        "pgbouncer.ini, or keep transactions shorter"
    ),
    "idle transaction timeout": (
        "PgBouncer's idle_transaction_timeout ended a transaction left idle between statements; "
        "it was rolled back, nothing of it was applied"
    ),
    "query_timeout": (
        "PgBouncer's query_timeout ended the statement and its server connection; a transaction in "
        "progress was rolled back (command_timeout= is pgstash's own, clearer limit)"
    ),
    "client_idle_timeout": "PgBouncer's client_idle_timeout closed the idle connection; nothing was sent",
    "database removed": (
        "PgBouncer's KILL (or the database's removal from its ini) closed the connection during the "
        "statement: whether a statement outside a transaction was applied is unknown; a "
        "transaction in progress was rolled back"
    ),
    "server conn crashed": (
        "the server connection behind PgBouncer died during the statement (the server restarted, "
        "or its backend was terminated): whether a statement outside a transaction was applied is "
        "unknown; a transaction in progress was rolled back"
    ),
    "server_login_retry": (
        "PgBouncer cannot log in to PostgreSQL and refuses clients for server_login_retry "
        "seconds: nothing was sent; check the server and PgBouncer's log"
    ),
    "max_client_conn": "PgBouncer's max_client_conn is reached: raise it, or lower max_size",
}


def explain(text: str) -> str | None:
    """PgBouncer's reason for closing a connection (in `text`, the driver's message), explained;
    None when `text` is not one of PgBouncer's."""
    for reason, meaning in _FAULTS.items():
        if reason in text:
            return f"PgBouncer closed the connection ({reason}): {meaning}"
    return None
