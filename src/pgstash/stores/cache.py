"""The caches of the versioned-document stores: an LRU with a TTL, and the rules that keep it honest.

`DocumentCache` is one store's cache on one pool (newest document per key, plus the one-entry
listing). It serves nothing while the pool's listener is not listening, nor for keys written by
a transaction that is still open, and a value fetched before an invalidation is never stored
after it (`ticket()` before the fetch, `put(..., ticket)` after).
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import pathlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Hashable
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

import asyncpg
import attrs

__all__ = ["LRU", "MISS", "PASS", "DocumentCache", "Miss", "immutable"]

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


class Miss(enum.Enum):
    MISS = enum.auto()
    PASS = enum.auto()


MISS = Miss.MISS  # not cached
PASS = Miss.PASS  # no cache can serve: read the database itself (`VersionedStore._cached`)


class LRU(Generic[_K, _V]):
    """At most `limit` entries, least recently used evicted first; each valid for `expiration`
    seconds after it was stored. `limit=0` or `expiration=0` caches nothing."""

    __slots__ = ("_entries", "expiration", "limit")

    def __init__(self, limit: int, expiration: float) -> None:
        self.limit = limit
        self.expiration = expiration
        self._entries: OrderedDict[_K, tuple[float, _V]] = OrderedDict()

    def get(self, key: _K) -> _V | Miss:
        entry = self._entries.get(key)
        if entry is None:
            return MISS
        if entry[0] <= time.monotonic():
            del self._entries[key]
            return MISS
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: _K, value: _V) -> None:
        if self.limit <= 0 or self.expiration <= 0:
            return
        self._entries[key] = (time.monotonic() + self.expiration, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.limit:
            self._entries.popitem(last=False)

    def discard(self, key: _K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


_ATOMS = (
    str,
    int,
    float,
    complex,
    bytes,
    type(None),
    enum.Enum,
    uuid.UUID,
    decimal.Decimal,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    pathlib.PurePath,
)  # bool is an int; datetime a date


def _frozen_fields(value: Any) -> list[Any] | None:
    """The field values of a frozen attrs or dataclass instance; None for anything else."""
    cl = type(value)
    if attrs.has(cl):
        if getattr(cl.__setattr__, "__name__", "") != "_frozen_setattrs":  # attrs' frozen classes
            return None
        return [getattr(value, field.name) for field in attrs.fields(cl)]
    if dataclasses.is_dataclass(cl) and cl.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        return [getattr(value, field.name) for field in dataclasses.fields(value)]
    return None


def immutable(value: Any) -> bool:
    """Whether nothing a caller does to `value` can change it: str, numbers, bool, None, bytes,
    enums, UUID, Decimal, dates and times, paths; tuples, frozensets and read-only mappings of
    those; frozen attrs or dataclass instances whose fields are all of those. A cache may hand
    out such a value to every caller; anything else must be copied per call."""
    if isinstance(value, _ATOMS):
        return True
    if isinstance(value, tuple | frozenset):
        return all(immutable(item) for item in value)
    if isinstance(value, MappingProxyType):
        return all(immutable(item) for item in value.values())
    fields = _frozen_fields(value)
    return fields is not None and all(immutable(field) for field in fields)


class Listening(Protocol):
    """What a cache needs of the pool's listener: whether invalidations are arriving."""

    @property
    def listening(self) -> bool: ...


class DocumentCache:
    """One store's cache on one pool: the newest document per key (an LRU of `limit` entries)
    and the listing of every key (one entry), both with a TTL of `expiration` seconds."""

    __slots__ = ("__weakref__", "_pending", "entries", "generation", "holds", "listener", "listing", "store")

    def __init__(self, store: str, limit: int, expiration: float, listener: Listening) -> None:
        self.store = store
        self.listener = listener
        self.entries: LRU[str, Any] = LRU(limit, expiration)
        self.listing: LRU[None, Any] = LRU(min(limit, 1), expiration)
        self.generation = 0
        # whether it can hold a document at all (`cache_limit=0` or an expiration of 0 holds
        # none: every read goes to the database, and get, ticket and put do nothing)
        self.holds = limit > 0 and expiration > 0
        # key -> connections of open transactions that wrote it: nothing is cached while any
        # is open, as the write may yet commit (then a NOTIFY follows) or roll back.
        self._pending: dict[str, list[asyncpg.Connection]] = {}

    def get(self, key: str) -> Any:
        """The cached document of `key` (None when it has none), or `MISS`."""
        if not self.listener.listening or (self._pending and self._settle()):
            return MISS
        return self.entries.get(key)

    def get_listing(self) -> Any:
        if not self.listener.listening or (self._pending and self._settle()):
            return MISS
        return self.listing.get(None)

    def ticket(self) -> int | None:
        """Taken before a fetch: the fetched value may be stored only if nothing was
        invalidated meanwhile. None while invalidations are not arriving."""
        if not self.listener.listening or (self._pending and self._settle()):
            return None
        return self.generation

    def put(self, key: str, value: Any, ticket: int | None) -> None:
        if self._storable(ticket):
            self.entries.put(key, value)

    def put_listing(self, value: Any, ticket: int | None) -> None:
        if self._storable(ticket):
            self.listing.put(None, value)

    def _storable(self, ticket: int | None) -> bool:
        if self._pending:
            self._settle()
        return ticket is not None and ticket == self.generation and self.listener.listening

    def invalidate(self, key: str | None) -> None:
        """Forgets `key` (every key when None) and the listing."""
        self.generation += 1
        self.listing.clear()
        if key is None:
            self.entries.clear()
        else:
            self.entries.discard(key)

    def flush(self) -> None:
        self.invalidate(None)

    def written(self, key: str, transaction: asyncpg.Connection) -> None:
        """`key` is being written inside the open transaction of `transaction`: forget it,
        and cache nothing until that transaction has ended."""
        self._pending.setdefault(key, []).append(transaction)
        self.invalidate(key)

    def _settle(self) -> bool:
        """Drops the writes whose transaction has ended (whichever way: a commit also sends a
        NOTIFY, a rollback changed nothing); True while any is still open."""
        ended = False
        for key in list(self._pending):
            still_open = [connection for connection in self._pending[key] if _in_transaction(connection)]
            if len(still_open) != len(self._pending[key]):
                ended = True
            if still_open:
                self._pending[key] = still_open
            else:
                del self._pending[key]
        if ended:  # values fetched while the transaction was open must not be stored
            self.invalidate(None)
        return bool(self._pending)


def _in_transaction(connection: asyncpg.Connection) -> bool:
    """Whether the connection (the driver's, never a pool proxy) is still inside a transaction;
    one released back to the pool has ended it (at worst a later transaction on it holds the
    cache off a little longer)."""
    return not connection.is_closed() and connection.is_in_transaction()
