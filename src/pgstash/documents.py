"""What configurations and instructions share: an append-only history per key whose newest entry
wins, read through a cache that invalidations keep honest, written under a per-key lock.

Writes (`write`): one transaction (or the caller's, when one is in scope) that takes the store's
transaction advisory lock on the key, then runs the store's statement, which inserts or deletes
and sends the NOTIFY. The lock makes writers of one key take turns, so each insert sees the one
before it and `created` strictly increases in commit order.

Reads (`read`, `read_listing`): the cache of this repository on the pool in use, unless a
transaction is in scope (then the database, which also shows the transaction's own writes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pgstash.caching import MISS, DocumentCache
from pgstash.connection import Postgres, current_postgres
from pgstash.notifications import Listener

__all__ = ["MISS", "Documents", "require_key"]

_T = TypeVar("_T")


def require_key(key: object, what: str) -> str:
    """`key` if it is a non-empty string PostgreSQL can store, else `TypeError`/`ValueError`."""
    if not isinstance(key, str):
        raise TypeError(f"{what} must be a str, got {type(key).__name__}")
    if not key:
        raise ValueError(f"{what} must not be empty")
    if "\x00" in key:
        raise ValueError(f"{what} must not contain NUL characters (PostgreSQL text cannot hold them)")
    return key


def _cache_settings(limit: object, expiration: object) -> tuple[int, float]:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise ValueError(f"cache_limit must be an int >= 0, got {limit!r}")
    if not isinstance(expiration, int | float) or isinstance(expiration, bool) or expiration < 0:
        raise ValueError(f"cache_expiration must be a number of seconds >= 0, got {expiration!r}")
    return limit, float(expiration)


class Documents:
    """One repository's access to a versioned-document table: `store` names it in NOTIFY
    payloads, `lock` is the store's lock query (taking the key as `key_parameter`)."""

    __slots__ = (
        "_bound",
        "_cache",
        "cache_expiration",
        "cache_limit",
        "key_parameter",
        "lock",
        "postgres",
        "store",
    )

    def __init__(
        self,
        store: str,
        *,
        lock: str,
        key_parameter: str,
        postgres: Postgres | None,
        cache_limit: int,
        cache_expiration: float,
    ) -> None:
        if postgres is not None and not isinstance(postgres, Postgres):
            raise TypeError(f"postgres must be a pgstash Postgres or None, got {type(postgres).__name__}")
        self.store = store
        self.lock = lock
        self.key_parameter = key_parameter
        self.postgres = postgres
        self.cache_limit, self.cache_expiration = _cache_settings(cache_limit, cache_expiration)
        self._bound: Postgres | None = None
        self._cache: DocumentCache | None = None

    def pool(self) -> Postgres:
        """The pool given at construction, else the current one (at call time)."""
        return self.postgres or current_postgres()

    async def cache(self, postgres: Postgres) -> DocumentCache:
        """This repository's cache on `postgres` (a new, empty one when the pool changed)."""
        if postgres is self._bound and self._cache is not None:
            return self._cache
        listener = Listener.of(postgres)
        cache = DocumentCache(self.store, self.cache_limit, self.cache_expiration, listener)
        self._bound, self._cache = postgres, cache
        await listener.subscribe(cache)
        return cache

    def cached(self, postgres: Postgres, key: str) -> Any:
        """The cached document of `key` on `postgres`, or `MISS` (also whenever the cache may not
        serve): the synchronous fast path in front of `read`."""
        cache = self._cache
        if postgres is not self._bound or cache is None or postgres.in_transaction:
            return MISS
        return cache.get(key)

    async def read(self, key: str, fetch: Callable[[Postgres], Awaitable[Any]]) -> Any:
        """The newest document of `key` as `fetch` returns it, from the cache when it can."""
        postgres = self.pool()
        if postgres.in_transaction:
            return await fetch(postgres)
        cache = self._cache
        if postgres is not self._bound or cache is None:
            cache = await self.cache(postgres)
        value = cache.get(key)
        if value is MISS:
            ticket = cache.ticket()
            value = await fetch(postgres)
            cache.put(key, value, ticket)
        return value

    async def read_listing(self, fetch: Callable[[Postgres], Awaitable[Any]]) -> Any:
        postgres = self.pool()
        if postgres.in_transaction:
            return await fetch(postgres)
        cache = await self.cache(postgres)
        value = cache.get_listing()
        if value is MISS:
            ticket = cache.ticket()
            value = await fetch(postgres)
            cache.put_listing(value, ticket)
        return value

    async def write(self, key: str, statement: Callable[[Postgres], Awaitable[_T]]) -> _T:
        """Runs `statement` under the key's lock, in the transaction in scope or a new one, and
        invalidates the key in this process at once (elsewhere its NOTIFY does, at commit)."""
        postgres = self.pool()
        await self.cache(postgres)
        listener = Listener.of(postgres)
        joined = postgres.in_transaction
        if joined:  # the caller's transaction may yet commit or roll back: hold the caches off
            async with postgres.connection() as transaction:
                listener.written(self.store, key, transaction)
        try:
            async with postgres.transaction():
                await postgres.run(self.lock, **{self.key_parameter: key})
                return await statement(postgres)
        finally:
            if not joined:
                listener.invalidate(self.store, key)
