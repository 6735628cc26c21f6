"""The cache-invalidation listener: one dedicated connection per pool, `LISTEN pgstash_documents`.

Every `define` and `remove` of a versioned-document store sends, in its own transaction,
`pg_notify('pgstash_documents', '{"store": ..., "key": ...}')` (`"key": null` means every key).
PostgreSQL delivers it at commit to every listening connection, in every process. The listener
evicts the key from each cache of that store on its pool.

While the connection is down every cache of the pool is flushed and serves nothing (reads go to
the database); the listener reconnects with exponential backoff and caches resume once it
listens again.

Behind a transaction pooler (`pooler="pgbouncer-transaction"`) the listener connects to
`listen_dsn` (a direct or session-mode DSN: LISTEN needs a session). Without one there is no
listener: caches serve their entries until `cache_expiration` (this process's own writes still
evict at once), as the WARNING the pool logs when it opens says.

With replicas, a notification also holds the pool's reads (they wait, else run on the primary)
until the listener has read the primary's WAL position on its own connection (after the
notification arrived, so at or past the notifying commit); from then on a replica serves reads
only once it has replayed that position. A reload that starts after a notification therefore
never sees the older value.

Any role that may connect can NOTIFY this channel (PostgreSQL has no privilege for it), so a
burst of notifications costs bounded work: each one is recorded, and the evictions of a burst
run once, on the next turn of the event loop (a flush of every cache at most once, however many
asked for it; more than `most_keys` keys of a store flush that store). A payload pgstash never
sends flushes every cache (the safe reading of an invalidation it cannot parse) and is counted:
the first is one WARNING, the others one WARNING per `warning_interval` naming how many came.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import Any

import asyncpg
import orjson

from pgstash.connection import Postgres, logger
from pgstash.sql.catalogue import query
from pgstash.stores.cache import DocumentCache

__all__ = ["CHANNEL", "Listener"]

CHANNEL = "pgstash_documents"


class Listener:
    """The pool's listening connection and the caches it keeps honest. Get it with
    `Listener.of(postgres)`: one per pool, closed with the pool."""

    first_delay = 0.05  # seconds before the first reconnection attempt, doubled up to max_delay
    max_delay = 5.0
    ping_interval = 10.0  # an idle connection is probed this often, to notice a silent network
    ping_timeout = 5.0
    connect_timeout = 10.0
    first_wait = 2.0  # how long the first reader waits for the first connection before reading uncached
    warning_interval = 60.0  # seconds between two warnings about unexpected payloads
    most_keys = 100  # keys of one store evicted one by one in a burst; beyond, the store is flushed

    def __init__(self, postgres: Postgres) -> None:
        self._postgres = postgres
        self._caches: weakref.WeakSet[DocumentCache] = weakref.WeakSet()
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._attempted = asyncio.Event()  # the first connection attempt has finished
        self._lost = asyncio.Event()
        self._busy = asyncio.Lock()  # the ping and the WAL fence share the connection
        self._fence: asyncio.Task[None] | None = None
        self._evictions: dict[str | None, set[str | None]] = {}  # store -> keys, this burst's
        self._unexpected = 0  # payloads counted since the last warning about them
        self._warned_at: float | None = None  # loop time of that warning
        self.listening = False

    @classmethod
    def of(cls, postgres: Postgres) -> Listener:
        return postgres.shared("pgstash.stores.listener.listener", cls)

    @property
    def pid(self) -> int | None:
        """The server process id of the listening connection (None while down)."""
        connection = self._connection
        return None if connection is None or not self.listening else connection.get_server_pid()

    async def subscribe(self, cache: DocumentCache) -> None:
        """Keeps `cache` invalidated from now on; starts listening on first use and waits (at
        most `first_wait`) for the first connection attempt. Until one succeeds the cache serves
        nothing."""
        self._caches.add(cache)
        if not self._postgres.lifecycle.pooling.sessions:
            self.listening = True  # behind a transaction pooler without listen_dsn: by TTL only
            return
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="pgstash listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._attempted.wait(), timeout=self.first_wait)

    def invalidate(self, store: str | None, key: str | None) -> None:
        """Forgets `key` (every key when None) in every cache of `store` (of every store when
        None) on this pool."""
        for cache in list(self._caches):
            if store is None or cache.store == store:
                cache.invalidate(key)

    def written(self, store: str, key: str, transaction: asyncpg.Connection) -> None:
        """`key` of `store` is being written in the open transaction on `transaction`."""
        for cache in list(self._caches):
            if cache.store == store:
                cache.written(key, transaction)

    async def aclose(self) -> None:
        fence, self._fence = self._fence, None
        if fence is not None:
            fence.cancel()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._down()

    # -- the connection's life ----------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.first_delay
        while True:
            try:
                connection = self._connection = await self._postgres.connect(timeout=self.connect_timeout)
                self._lost.clear()
                connection.add_termination_listener(self._terminated)
                await self._postgres.listen(connection, CHANNEL, self._notified)
                if self._postgres.replicas is not None:
                    # notifications missed while down: reads wait for what the primary holds now
                    self._postgres.replicas.hold()
                    await self._fenced(connection)
                self._up()
                delay = self.first_delay
                self._attempted.set()
                await self._watch(connection)
                logger.warning("cache listener: connection lost; caches flushed, reconnecting")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("cache listener: %s; caches serve nothing, retrying in %.2fs", error, delay)
            finally:
                self._down()
                self._attempted.set()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_delay)

    async def _watch(self, connection: asyncpg.Connection) -> None:
        """Returns when the connection is lost (at once when the server closes it; a silent
        network is noticed by the ping)."""
        ping = query("notifications_ping").bind()
        while True:
            try:
                await asyncio.wait_for(self._lost.wait(), timeout=self.ping_interval)
                return
            except TimeoutError:
                async with self._busy:
                    await self._postgres.run_on(connection, ping, timeout=self.ping_timeout)

    async def _fenced(self, connection: asyncpg.Connection) -> None:
        """Reads the primary's WAL position until it covers every notification received (reads
        are held on the primary meanwhile)."""
        replicas = self._postgres.replicas
        assert replicas is not None
        while replicas.held:
            through = replicas.notified
            async with self._busy:
                lsn = await self._postgres.run_on(
                    connection, query("replica_commit_lsn").bind(), timeout=self.ping_timeout
                )
            replicas.fenced(lsn, through)

    async def _fence_later(self, connection: asyncpg.Connection) -> None:
        try:
            await self._fenced(connection)
        except Exception as error:  # reads stay on the primary until the listener reconnects
            logger.warning("cache listener: could not read the WAL position (%s); reconnecting", error)
            if connection is self._connection:
                self._lost.set()

    def _up(self) -> None:
        self.listening = True
        # values fetched while down may predate a NOTIFY that nobody heard: never store them
        for cache in list(self._caches):
            cache.flush()

    def _down(self) -> None:
        self.listening = False
        for cache in list(self._caches):
            cache.flush()
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            connection.terminate()

    def _terminated(self, connection: Any) -> None:
        if connection is self._connection:
            self.listening = False
            for cache in list(self._caches):
                cache.flush()
            self._lost.set()

    def _notified(self, connection: Any, pid: int, channel: str, payload: object) -> None:
        try:
            message = orjson.loads(str(payload))
            store, key = message["store"], message["key"]
            if not (isinstance(store, str) and (key is None or isinstance(key, str))):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self._count_unexpected(payload)
            store, key = None, None
        replicas = self._postgres.replicas
        if replicas is not None:
            replicas.hold()  # before the eviction: a load that starts now reads the primary
            if self._fence is None or self._fence.done():
                self._fence = asyncio.get_running_loop().create_task(self._fence_later(connection))
        if not self._evictions:
            asyncio.get_running_loop().call_soon(self._evict)
        keys = self._evictions.setdefault(store, set())
        if len(keys) <= self.most_keys:
            keys.add(key)

    def _evict(self) -> None:
        """This burst's evictions, once each: every cache when a notification said every store
        (or could not be read), else per store its keys, or all of them past `most_keys`."""
        evictions, self._evictions = self._evictions, {}
        if None in evictions:
            self.invalidate(None, None)
            return
        for store, keys in evictions.items():
            if None in keys or len(keys) > self.most_keys:
                self.invalidate(store, None)
            else:
                for key in keys:
                    self.invalidate(store, key)

    def _count_unexpected(self, payload: object) -> None:
        """One WARNING for the first unexpected payload, then one per `warning_interval` naming
        how many came meanwhile (reported at the interval's end)."""
        loop = asyncio.get_running_loop()
        if self._warned_at is None:
            self._warned_at = loop.time()
            logger.warning(
                "cache listener: unexpected payload %r on channel %s (pgstash never sends it: another "
                "session's NOTIFY, which any role that may connect can send); every cache flushed. "
                "Further ones are counted and reported every %g s",
                str(payload)[:100],
                CHANNEL,
                self.warning_interval,
            )
            loop.call_later(self.warning_interval, self._report_unexpected)
            return
        self._unexpected += 1

    def _report_unexpected(self) -> None:
        count, self._unexpected = self._unexpected, 0
        if not count:
            self._warned_at = None  # quiet for a whole interval: the next one warns at once
            return
        logger.warning(
            "cache listener: %d more unexpected payloads on channel %s in the last %g s; each burst "
            "flushed every cache once",
            count,
            CHANNEL,
            self.warning_interval,
        )
        self._warned_at = asyncio.get_running_loop().time()
        asyncio.get_running_loop().call_later(self.warning_interval, self._report_unexpected)
