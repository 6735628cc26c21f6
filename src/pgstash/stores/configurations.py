"""`PostgresConfigurationRepository`: versioned configuration snapshots in the seed's
`configurations` table, loaded into attrs classes or dataclasses with cattrs."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar, overload

import attrs
import cattrs
import orjson

from pgstash.connection import Postgres
from pgstash.converters import make_converter, problems, readable
from pgstash.errors import ConfigurationError
from pgstash.jsonvalue import dumps_json
from pgstash.sql import names
from pgstash.stores.cache import immutable
from pgstash.stores.versioned import MISS, PASS, VersionedQueries, VersionedStore

__all__ = ["ConfigurationSnapshot", "PostgresConfigurationRepository", "converter"]

_C = TypeVar("_C")
_D = TypeVar("_D")

converter: cattrs.Converter = make_converter(strict=True)
"""The converter between configuration objects and their JSON snapshots (`make_converter`:
cattrs' orjson preconfiguration, UUID, Decimal, time and paths read back, and str, int, float,
bool and arrays taken strictly, not coerced)."""


@attrs.frozen(slots=True)
class ConfigurationSnapshot:
    """One stored snapshot: the configuration as stored and when it was stored."""

    identifier: str
    content: Mapping[str, Any]
    created: datetime


_DECODED = 32  # keys whose last uncached snapshot is remembered (`_decoded`)
_FRESH = object()  # this type's instances are not immutable: structured afresh on every load


class _Stored:
    """A snapshot as the cache holds it: its JSON text, from which loads decode objects of their
    own, and per configuration type either the one instance every load shares (when nothing
    about it can be changed: `caching.immutable`) or `_FRESH`; until a second load of the type,
    `_Once(value)` (a snapshot loaded once is never checked). An uncached load's snapshot is
    kept by `_decoded` while the database returns the same text."""

    __slots__ = ("json", "typed")

    def __init__(self, json: str) -> None:
        self.json = json
        self.typed: dict[type, Any] = {}


class _Once:
    """The instance the first load of a type made (whether it may be shared is decided at the
    second: `immutable` holds of it then as before, since nothing could change it)."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value


def _is_configuration_type(value: object) -> bool:
    return isinstance(value, type) and (attrs.has(value) or dataclasses.is_dataclass(value))


@attrs.define(eq=False)
class PostgresConfigurationRepository(VersionedStore):
    """Versioned configurations: `define` appends a snapshot, `load` reads the newest (cached
    per identifier, see `VersionedStore`), `prune` deletes old snapshots."""

    store = "configurations"
    queries = VersionedQueries(
        lock=names.configurations_lock,
        insert=names.configurations_insert,
        remove=names.configurations_remove,
        history=names.configurations_history,
        prune=names.configurations_prune,
    )
    key_parameter = "identifier"

    _hooks: dict[type, Any] = attrs.field(factory=dict, init=False, repr=False)
    _last: dict[str, _Stored] = attrs.field(factory=dict, init=False, repr=False)  # see _decoded

    async def configurations(self, *, kind: str | None = None) -> Sequence[str]:
        """Every identifier with a snapshot, sorted; cached as one entry (a tuple). With `kind`
        (a type name, as `define` stores it in the `name` column): the identifiers with a
        snapshot of that kind, in one indexed statement (not cached)."""
        if kind is not None:
            kind = self._key(kind)
            postgres = self._pool()
            if not await _named(postgres):
                raise ConfigurationError(_UNNAMED)
            rows = await postgres.run(names.configurations_of_kind, kind=kind)
            return tuple(row["identifier"] for row in rows)
        result: tuple[str, ...] = await self._read_listing(self._fetch_identifiers)
        return result

    @overload
    async def load(self, config_type: type[_C], identifier: str | None = None) -> _C | None: ...

    @overload
    async def load(self, config_type: type[_C], identifier: str | None = None, *, default: _D) -> _C | _D: ...

    async def load(self, config_type: type[_C], identifier: str | None = None, *, default: Any = None) -> Any:
        """The newest snapshot of `identifier` (default: the type's name) structured into
        `config_type`; `default` when there is none. A snapshot that does not fit raises
        `ConfigurationError` naming the identifier and the fields. An instance nothing can change
        (a frozen class whose fields are all immutable) is made once per cached snapshot and
        shared (an uncached load's too, while the database returns the same snapshot text);
        any other is structured afresh on every call."""
        structure = self._hooks.get(config_type) if isinstance(config_type, type) else None
        if structure is None:
            structure = self._hook(config_type)
        key = config_type.__name__ if identifier is None else self._key(identifier)
        postgres = self.postgres if self.postgres is not None else self._pool()
        stored = self._cached(postgres, key)
        if stored is PASS:  # no cache serves (cache_limit=0, a transaction): read it every call
            stored = self._decoded(key, await postgres.run(names.configurations_newest, identifier=key))
        elif stored is MISS:
            stored = await self._read(postgres, key, _fetch_newest)
        if stored is None:
            return default
        loaded = stored.typed.get(config_type, MISS)
        if type(loaded) is _Once:
            first = loaded.value
            loaded = stored.typed[config_type] = first if immutable(first) else _FRESH
        if loaded is MISS or loaded is _FRESH:
            try:
                value = structure(orjson.loads(stored.json), config_type)
            except Exception as error:
                raise _misfit(key, config_type, error) from error
            if loaded is MISS:
                stored.typed[config_type] = _Once(value)
            return value
        return loaded

    async def load_raw(self, identifier: str) -> Mapping[str, Any] | None:
        """The newest snapshot of `identifier` as stored (a fresh copy each call), or None."""
        key = self._key(identifier)
        stored = await self._read(self._pool(), key, _fetch_newest)
        return None if stored is None else orjson.loads(stored.json)

    async def define(self, config: Any, identifier: str | None = None, *, kind: str | None = None) -> None:
        """Stores a new snapshot. `config` is an attrs or dataclass instance (identifier: its class
        name unless given) or a Mapping (identifier required). A value that JSON cannot hold, or
        that the converter could not read back into the instance's class, raises `TypeError` or
        `ValueError` naming the identifier and the field, before anything is written. `kind`, the
        type name stored in the `name` column (what `configurations(kind=)` lists by), defaults
        to the instance's class name, and to none for a Mapping."""
        explicit = kind is not None
        if kind is not None:
            kind = self._key(kind)
        elif not isinstance(config, Mapping | type):
            kind = type(config).__name__
        if isinstance(config, Mapping):
            if identifier is None:
                raise TypeError("define(mapping) needs the identifier: define(config, identifier='...')")
            key = self._key(identifier)
            content = dumps_json(dict(config), f"configuration {key!r}")
            kind = kind if explicit else None
        elif not isinstance(config, type) and _is_configuration_type(type(config)):
            key = self._key(type(config).__name__ if identifier is None else identifier)
            what = f"configuration {key!r}"
            content = dumps_json(converter.unstructure(config), what)
            readable(converter, content, type(config), what)
        else:
            raise TypeError(f"a configuration is an attrs or dataclass instance or a Mapping, got {config!r}")
        if await _named(self._pool()):
            await self._insert(key, content=orjson.Fragment(content), name=kind)
        elif kind is not None and explicit:
            raise ConfigurationError(_UNNAMED)
        else:  # the seed's verbatim table: the snapshot without its kind

            async def insert(postgres: Postgres) -> None:
                stored = orjson.Fragment(content)
                await postgres.run(names.configurations_insert_unnamed, identifier=key, content=stored)

            await self._write(key, insert)

    async def remove(self, identifier: str) -> None:
        """Deletes every snapshot of `identifier`."""
        await self._remove(identifier)

    async def history(self, identifier: str) -> Sequence[ConfigurationSnapshot]:
        """Every snapshot of `identifier`, newest first (not cached)."""
        rows = await self._history(identifier)
        return tuple(ConfigurationSnapshot(row["identifier"], row["content"], row["created"]) for row in rows)

    # -- internals -------------------------------------------------------------------------------

    def _decoded(self, key: str, json: str | None) -> _Stored | None:
        """The snapshot text an uncached read of `key` returned, as a `_Stored`: the one of the
        previous read of `key` when the text is the same (what it structured is reused as a
        cached snapshot's is: the database was still read), else a new one. The last
        `_DECODED` keys are remembered."""
        if json is None:
            return None
        last = self._last.get(key)
        if last is not None and last.json == json:
            return last
        if len(self._last) >= _DECODED:
            del self._last[next(iter(self._last))]
        stored = self._last[key] = _Stored(json)
        return stored

    def _hook(self, config_type: type) -> Any:
        """The type's structure hook (`TypeError` for a type that is not a configuration)."""
        if not _is_configuration_type(config_type):
            raise TypeError(f"load() takes an attrs class or a dataclass, got {config_type!r}")
        try:
            hook = self._hooks[config_type] = converter.get_structure_hook(config_type)
        except Exception as error:
            found = problems(error, config_type, converter)
            raise TypeError(f"load() cannot structure {config_type.__qualname__}: {found}") from None
        return hook

    @staticmethod
    async def _fetch_identifiers(postgres: Postgres) -> tuple[str, ...]:
        rows = await postgres.run(names.configurations_identifiers)
        return tuple(sorted(row["identifier"] for row in rows))


async def _fetch_newest(postgres: Postgres, key: str) -> _Stored | None:
    """The newest snapshot of `key` (None when there is none) as the cache holds it."""
    content = await postgres.run(names.configurations_newest, identifier=key)
    return None if content is None else _Stored(content)


_UNNAMED = (
    "the configurations table has no name column (the seed's verbatim table): run `pgstash migrate` "
    "(migration 0009_configuration_names adds it) to store and list configurations by kind"
)


class _Named:
    """Whether a pool's configurations table has the name column; a yes is kept for the pool's
    life, a no is asked again (a migration may add the column while the pool is open)."""

    __slots__ = ("named",)

    def __init__(self, _: Postgres) -> None:
        self.named = False


async def _named(postgres: Postgres) -> bool:
    holder = postgres.shared("configurations.named", _Named)
    if not holder.named:
        holder.named = bool(await postgres.run(names.configurations_named))
    return holder.named


def _misfit(identifier: str, config_type: type, error: Exception) -> ConfigurationError:
    found = problems(error, config_type)
    return ConfigurationError(
        f"configuration {identifier!r} does not fit {config_type.__qualname__}: {found}; "
        f"define() a snapshot that fits, or load it with load_raw({identifier!r})"
    )
