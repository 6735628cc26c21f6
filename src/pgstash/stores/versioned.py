"""`VersionedStore`: what configurations and instructions share: an append-only history per key
whose newest entry wins, read through a cache that invalidations keep honest, written under a
per-key lock. A store names its table (`store`), its key column (`key_parameter`) and its named
queries (`queries`: `VersionedQueries` of `<store>_lock`, `_insert`, `_remove`, `_history` and
`_prune`, constants of `pgstash.sql.names`).

Writes (`_write`): one transaction (or the caller's, when one is in scope) that takes the store's
transaction advisory lock on the key, then runs the store's statement, which inserts or deletes
and sends the NOTIFY. The lock makes writers of one key take turns, so each insert sees the one
before it and `created` strictly increases in commit order.

Reads (`_read`, `_read_listing`): the cache of this repository on the pool in use, unless a
transaction is in scope (then the database, which also shows the transaction's own writes).
What the cache holds is shared by every call: a store caches only immutable values, or values
it copies or structures afresh per call (see docs/reliability.md, "Caches").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

import attrs

from pgstash.connection import Postgres, resolve
from pgstash.sql.catalogue import Query
from pgstash.stores.cache import MISS, PASS, DocumentCache
from pgstash.stores.listener import Listener
from pgstash.validators import cutoff, positive_int, require_key

__all__ = ["MISS", "PASS", "VersionedQueries", "VersionedStore"]

_T = TypeVar("_T")


def _pool(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, Postgres):
        raise TypeError(f"{attribute.name} must be a pgstash Postgres or None, got {type(value).__name__}")


def _cache_limit(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{attribute.name} must be an int >= 0, got {value!r}")


def _seconds(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value >= 0:
        raise ValueError(f"{attribute.name} must be a number of seconds >= 0, got {value!r}")


@attrs.frozen
class VersionedQueries:
    """A versioned store's named queries: its key's lock, an insert, a removal, the history and
    the retention prune."""

    lock: Query
    insert: Query
    remove: Query
    history: Query
    prune: Query


@attrs.define(eq=False)
class VersionedStore:
    """The base of the versioned-document repositories. Built without `postgres`, a repository
    uses the current pool (`async with PostgresConnectionPool.of()`) at call time.

    Reads are cached per repository (an LRU of `cache_limit` keys and the listing, each for
    `cache_expiration` seconds); `define` and `remove` invalidate at once here and, through a
    NOTIFY in their transaction, in every process on the database."""

    store: ClassVar[str]
    key_parameter: ClassVar[str]
    queries: ClassVar[VersionedQueries]

    postgres: Postgres | None = attrs.field(default=None, validator=_pool)
    cache_limit: int = attrs.field(default=32, kw_only=True, validator=_cache_limit)
    cache_expiration: float = attrs.field(default=600.0, kw_only=True, validator=_seconds)
    _bound: Postgres | None = attrs.field(default=None, init=False, repr=False)
    _cache: DocumentCache | None = attrs.field(default=None, init=False, repr=False)

    def _key(self, value: object) -> str:
        return require_key(value, self.key_parameter)

    def _keyed(self, key: str) -> dict[str, Any]:
        """The named queries' parameters that name the key."""
        return {self.key_parameter: key}

    def _pool(self) -> Postgres:
        return resolve(self.postgres)

    async def _bind(self, postgres: Postgres) -> DocumentCache:
        """This repository's cache on `postgres` (a new, empty one when the pool changed)."""
        if postgres is self._bound and self._cache is not None:
            return self._cache
        listener = Listener.of(postgres)
        cache = DocumentCache(self.store, self.cache_limit, float(self.cache_expiration), listener)
        self._bound, self._cache = postgres, cache
        await listener.subscribe(cache)
        return cache

    def _cached(self, postgres: Postgres, key: str) -> Any:
        """The cached document of `key` on `postgres`; `MISS` when the cache may hold it but does
        not (or is not bound yet): read it through `_read`; `PASS` when no cache can serve (a
        transaction in scope, or a cache that holds nothing: `cache_limit=0`): read the database
        itself. The synchronous fast path in front of `_read` (a cached load is little more)."""
        if self._passes(postgres):
            return PASS
        cache = self._cache
        if postgres is not self._bound or cache is None:
            return MISS
        return cache.get(key)

    def _passes(self, postgres: Postgres) -> bool:
        """Whether no cache can serve a read on `postgres` (`_cached` would say `PASS`)."""
        if postgres.in_transaction:
            return True
        cache = self._cache
        return postgres is self._bound and cache is not None and not cache.holds

    def _read(
        self, postgres: Postgres, key: str, fetch: Callable[[Postgres, str], Awaitable[_T]]
    ) -> Awaitable[_T]:
        """The newest document of `key` as `fetch(postgres, key)` returns it, from the cache when
        it can. Where no cache can serve (`_passes`) this is `fetch`'s own awaitable: no frame of
        its own around the round trip."""
        if self._passes(postgres):
            return fetch(postgres, key)
        return self._read_through(postgres, key, fetch)

    async def _read_through(
        self, postgres: Postgres, key: str, fetch: Callable[[Postgres, str], Awaitable[_T]]
    ) -> _T:
        cache = self._cache
        if postgres is not self._bound or cache is None:
            cache = await self._bind(postgres)
        value: Any = cache.get(key)
        if value is MISS:
            ticket = cache.ticket()
            value = await fetch(postgres, key)
            cache.put(key, value, ticket)
        result: _T = value
        return result

    async def _read_listing(self, fetch: Callable[[Postgres], Awaitable[Any]]) -> Any:
        postgres = self._pool()
        if postgres.in_transaction:
            return await fetch(postgres)
        cache = await self._bind(postgres)
        value = cache.get_listing()
        if value is MISS:
            ticket = cache.ticket()
            value = await fetch(postgres)
            cache.put_listing(value, ticket)
        return value

    async def _write(self, key: str, statement: Callable[[Postgres], Awaitable[_T]]) -> _T:
        """Runs `statement` under the key's lock, in the transaction in scope or a new one, and
        invalidates the key in this process at once (elsewhere its NOTIFY does, at commit)."""
        postgres = self._pool()
        await self._bind(postgres)
        listener = Listener.of(postgres)
        transaction = postgres.scope_connection()
        joined = transaction is not None
        if transaction is not None:  # the caller's transaction may yet commit or roll back
            listener.written(self.store, key, transaction)  # hold the caches off meanwhile
        try:
            async with postgres.transaction():
                await postgres.run(self.queries.lock, **self._keyed(key))
                return await statement(postgres)
        finally:
            if not joined:
                listener.invalidate(self.store, key)

    async def _insert(self, key: str, **values: Any) -> None:
        """Appends a revision of `key` (the store's `queries.insert` with `values`)."""

        async def insert(postgres: Postgres) -> None:
            await postgres.run(self.queries.insert, **self._keyed(key), **values)

        await self._write(key, insert)

    async def _remove(self, value: object) -> None:
        """Deletes every revision of the key `value`."""
        key = self._key(value)

        async def delete(postgres: Postgres) -> None:
            await postgres.run(self.queries.remove, **self._keyed(key))

        await self._write(key, delete)

    async def _history(self, value: object) -> Any:
        """Every stored revision of the key `value` as rows, newest first (not cached)."""
        return await self._pool().run(self.queries.history, **self._keyed(self._key(value)))

    async def prune(self, *, keep: int | None = None, older_than: datetime | timedelta | None = None) -> int:
        """Deletes old versions and returns how many: with `keep`, every version beyond each key's
        `keep` newest; with `older_than` (an age, or an aware datetime), every version older
        than that; with both, the versions that are both. A key's newest version is never
        deleted, so what `load` returns does not change; only `history` shrinks. One statement
        (`<store>_prune`), in the transaction in scope if there is one. Bad arguments raise
        `TypeError`/`ValueError` before anything is sent."""
        if keep is None and older_than is None:
            raise TypeError("prune() needs keep=, older_than= or both")
        newest = 1 if keep is None else positive_int(keep, "keep", most=2**63 - 1)
        before = None if older_than is None else cutoff(older_than, "older_than")
        pruned: int = await self._pool().run(self.queries.prune, keep=newest, older_than=before)
        return pruned
