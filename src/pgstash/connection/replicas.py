"""Reads on PostgreSQL streaming replicas (hot standbys), with read-your-writes by WAL position.

`READS` is the one place that marks a read: a named query in it, run outside a transaction, goes
to a healthy replica (round robin); `postgres.replica().fetch(...)` does the same for raw SQL.
Everything else, and everything inside `postgres.transaction()`, runs on the primary.

Read-your-writes: after each commit on the primary the pool reads the commit's WAL position
(`replica_commit_lsn`, same connection) into `required`. A read goes to a replica known (from
its monitor, every `interval` seconds) to have replayed `required`, at no extra round trip; else
it polls one replica's `replica_replayed` up to `wait` seconds, else it runs on the primary.
The cache listener `hold()`s reads from a notification until it has read the primary's WAL
position after it (`fenced`; a read waits at most `wait` for that, else runs on the primary), so
no replica serves a value older than a notification already received. A block of reads
(`Postgres.on_replica`: a search's rolled-back transaction of scan settings) runs whole on one
replica connection under the same rules.

A replica that refuses connections, times out or lags more than `max_lag` seconds is skipped and
checked again after `recheck` seconds; each change of its state is one WARNING line. A read that
fails on a replica is run again on the primary: a read on a standby has no side effect (a hot
standby accepts no write), so running it twice is safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from pgstash.connection.scope import Scopes
from pgstash.connection.standby import Replica, fault
from pgstash.errors import PgstashError, SchemaMissingError
from pgstash.sql.catalogue import query
from pgstash.sql.statements import Statement

__all__ = ["READS", "ReplicaReads", "Replicas"]

_T = TypeVar("_T")

READS = frozenset(
    {
        "configurations_newest",
        "configurations_identifiers",
        "configurations_history",
        "instructions_newest",
        "instructions_declarations",
        "instructions_history",
        # instructions labels (queries/instructions_labels.sql, issue 27)
        "instructions_latest",
        "instructions_labelled",
        "instructions_numbered",
        "instructions_history_numbered",
        "instructions_labels_of",
        "instructions_label_history",
        "instructions_latest_history",
        "instructions_labelled_declarations",
        "memory_recall",
        "vectors_search",
        "vectors_search_exact",
        "vectors_newest",
        "vectors_text_search",  # full text and hybrid search (queries/vectors_text.sql)
        "vectors_hybrid",
    }
)


class Replicas:
    """The replicas of one pool, their monitor, and the routing of reads."""

    interval = 0.5  # seconds between two checks of a replica's replay position and lag
    recheck = 3.0  # seconds before a replica found down is tried again
    check_timeout = 2.0

    def __init__(
        self, replicas: list[Replica], scopes: Scopes, *, max_lag: float, wait: float, logger: Any
    ) -> None:
        self.replicas = replicas
        self._scopes = scopes  # pinning a block of reads to a replica's connection
        self._sender = scopes.sender  # sending on a replica's connection
        self._lifecycle = scopes.sender.lifecycle  # acquiring, releasing and connecting
        self.max_lag = max_lag
        self.wait = wait
        self.required = 0  # the WAL position a replica must have replayed to serve a read
        self.notified = 0  # notifications received by the cache listener ...
        self.fenced_through = 0  # ... and how many of them `required` covers
        self._turn = itertools.count()
        self._logger = logger
        self._task: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()  # set while no notification waits for its fence
        self._settled.set()

    # -- what routing knows -------------------------------------------------------------------

    def wrote(self, lsn: int | None) -> None:
        """A commit on the primary ended at WAL position `lsn`."""
        if lsn is not None and lsn > self.required:
            self.required = lsn

    def hold(self) -> int:
        """A notification arrived: reads wait for `fenced(...)` to cover it (at most `wait`
        seconds, else they run on the primary)."""
        self.notified += 1
        self._settled.clear()
        return self.notified

    def fenced(self, lsn: int, through: int) -> None:
        """The primary's WAL position `lsn` was read after notification `through` arrived."""
        self.wrote(lsn)
        self.fenced_through = max(self.fenced_through, through)
        if not self.held:
            self._settled.set()

    @property
    def held(self) -> bool:
        return self.fenced_through < self.notified

    def _candidates(self) -> list[Replica]:
        healthy = [replica for replica in self.replicas if replica.up]
        if len(healthy) > 1:
            start = next(self._turn) % len(healthy)
            healthy = healthy[start:] + healthy[:start]
        return healthy

    # -- reads --------------------------------------------------------------------------------

    async def read(self, statement: Statement, caller: bool, primary: Callable[[], Awaitable[Any]]) -> Any:
        """Runs the read `statement` on a replica that has replayed `required`, else `primary()`."""

        async def on(connection: asyncpg.Connection) -> Any:
            if caller:
                self._lifecycle.ran_callers_sql(connection)
            return await self._sender.send(connection, statement)

        done, result = await self._route(statement.name, on)
        return result if done else await primary()

    async def read_block(self, block: Callable[[], Awaitable[_T]]) -> _T:
        """Runs `block()` with every statement it sends on one replica connection (a block of
        reads, such as a search's rolled-back transaction of scan settings), else on the
        primary."""

        async def on(connection: asyncpg.Connection) -> _T:
            with self._scopes.pinned(connection):
                return await block()

        done, result = await self._route("read block", on)
        return result if done else await block()

    async def _route(self, name: str, on: Callable[[asyncpg.Connection], Awaitable[Any]]) -> tuple[bool, Any]:
        """(True, what `on` returned) when a replica that has replayed `required` ran it; else
        (False, None): the caller runs it on the primary. Just after a notification it first waits
        (at most `wait`) for the listener's fence: one round trip on the listener's connection."""
        if self.held and self.wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._settled.wait(), self.wait)
        if self.held:
            return False, None
        required = self.required
        candidates = self._candidates()
        for replica in candidates:
            if replica.replayed >= required:
                done, result = await self._try(replica, name, on, required)
                if done:
                    return True, result
        if candidates and self.wait > 0 and not self.held:
            return await self._try(candidates[0], name, on, required, poll=True)
        return False, None

    async def _try(
        self,
        replica: Replica,
        name: str,
        on: Callable[[asyncpg.Connection], Awaitable[Any]],
        required: int,
        poll: bool = False,
    ) -> tuple[bool, Any]:
        """(True, what `on` returned) when `replica` ran it; (False, None) when it could not or
        had not replayed `required` in time (then the caller runs it elsewhere)."""
        try:
            connection, proxy = await self._lifecycle.acquire(replica.pool, name)
        except PgstashError as error:
            self._mark(replica, "down", str(error))
            return False, None
        try:
            if poll:
                deadline = time.monotonic() + self.wait
                replayed = query("replica_replayed").bind()
                while True:
                    now_at = await self._sender.send(connection, replayed)
                    replica.replayed = max(replica.replayed, now_at or -1)
                    if replica.replayed >= required or self.held:
                        break
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False, None
                    await asyncio.sleep(min(0.02, left))
                if self.held:
                    return False, None
            return True, await on(connection)
        except PgstashError as error:
            # A read on a hot standby has no side effect (it accepts no write): when the replica
            # went away, or lags behind a migration or conflicts with its replay, the primary runs
            # the read again. Any other error is the statement's own and is raised.
            if fault(error):
                self._mark(replica, "down", str(error))
            elif not (isinstance(error, SchemaMissingError) or getattr(error, "sqlstate", None) == "40001"):
                raise
            return False, None
        finally:
            await self._lifecycle.release(replica.pool, proxy, name)

    # -- health -------------------------------------------------------------------------------

    def _mark(self, replica: Replica, state: str, reason: str = "") -> None:
        if state != "up":
            replica.retry_at = time.monotonic() + self.recheck
        if state != replica.state and (replica.state, state) != ("starting", "up"):
            if state == "up":
                self._logger.warning("replica %s: up (replay lag %.2f s)", replica.shown, replica.lag or 0.0)
            else:
                self._logger.warning(
                    "replica %s: %s, skipped; reads go to %s (checked again in %.0f s)",
                    replica.shown,
                    f"{state}: {reason}" if reason else state,
                    "another replica or the primary",
                    self.recheck,
                )
        replica.state, replica.reason = state, reason

    async def check(self, replica: Replica) -> None:
        """Reads the replica's state on its own monitoring connection."""
        replica.checked = time.monotonic()
        try:
            if replica.monitor is None or replica.monitor.is_closed():
                replica.monitor = await self._lifecycle.connect(replica.dsn, timeout=self.check_timeout)
            row = await self._sender.send(
                replica.monitor, query("replica_state").bind(), timeout=self.check_timeout
            )
        except (PgstashError, OSError, TimeoutError) as error:
            self._drop_monitor(replica)
            self._mark(replica, "down", str(error) or type(error).__name__)
            return
        if not row["in_recovery"]:
            self._mark(replica, "not a standby", "it is not in recovery (promoted?): writes may land there")
            return
        replica.replayed = -1 if row["replayed"] is None else row["replayed"]
        replica.lag = replica.lag_behind(max(row["received"] or -1, self.required))
        if replica.lag is not None and replica.lag > self.max_lag:
            reason = f"replay lag {replica.lag:.1f} s > max_replica_lag {self.max_lag:g} s"
            self._mark(replica, "lagging", reason)
        else:
            self._mark(replica, "up")

    def _drop_monitor(self, replica: Replica) -> None:
        monitor, replica.monitor = replica.monitor, None
        if monitor is not None and not monitor.is_closed():
            monitor.terminate()

    async def start(self) -> None:
        """Checks every replica once (so that routing starts informed), then monitors them."""
        await asyncio.gather(*(self.check(replica) for replica in self.replicas))
        self._task = asyncio.get_running_loop().create_task(self._monitor(), name="pgstash replicas")

    async def _monitor(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            due = [r for r in self.replicas if r.state != "down" or r.retry_at <= now]
            await asyncio.gather(*(self.check(replica) for replica in due))

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for replica in self.replicas:
            self._drop_monitor(replica)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(replica.pool.close(), timeout=5.0)

    def describe(self) -> list[tuple[str, str]]:
        """(replica, its state) for `pgstash status`."""
        return [(replica.shown, replica.describe()) for replica in self.replicas]


class ReplicaReads:
    """`postgres.replica()`: the caller's read-only SQL on a replica, with the same rules as the
    stores' reads (read-your-writes, fallback to the primary). Without replicas: the primary."""

    def __init__(self, run: Callable[..., Any]) -> None:
        self._run = run

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        statement = Statement("sql", "fetch", sql, args)
        result: list[asyncpg.Record] = await self._run(statement, caller=True, read=True)
        return result

    async def fetch_one(self, sql: str, *args: Any) -> asyncpg.Record | None:
        statement = Statement("sql", "fetch_one", sql, args)
        result: asyncpg.Record | None = await self._run(statement, caller=True, read=True)
        return result

    async def fetch_value(self, sql: str, *args: Any) -> Any:
        return await self._run(Statement("sql", "fetch_value", sql, args), caller=True, read=True)
