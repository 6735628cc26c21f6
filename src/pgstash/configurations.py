"""`PostgresConfigurationRepository`: versioned configuration snapshots in the seed's
`configurations` table, loaded into attrs classes or dataclasses with cattrs."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar, overload

import attrs
import cattrs
import orjson
from cattrs.cols import (
    homogenous_tuple_structure_factory,
    is_mutable_sequence,
    is_sequence,
    list_structure_factory,
)
from cattrs.preconf.orjson import make_converter

from pgstash.codecs import dumps_json
from pgstash.connection import Postgres
from pgstash.documents import MISS, Documents, require_key
from pgstash.errors import ConfigurationError

__all__ = ["ConfigurationSnapshot", "PostgresConfigurationRepository", "converter"]

_C = TypeVar("_C")
_D = TypeVar("_D")


def _strict(expected: type, accepted: tuple[type, ...]) -> Any:
    """A structure hook that takes JSON values of the expected kind as they are, where cattrs
    would coerce (`str(5)`, `int("7")`, `int(2.5)`, `bool("no")`) and so hide a wrong snapshot."""

    def structure(value: Any, _: Any) -> Any:
        if type(value) in accepted:
            return expected(value)
        raise TypeError(f"expected {expected.__name__}, got {type(value).__name__} {value!r}")

    return structure


def _array(factory: Any) -> Any:
    """A sequence hook factory whose hooks take JSON arrays only (cattrs would iterate a string
    into its characters)."""

    def make(sequence_type: Any, made: cattrs.Converter) -> Any:
        structure = factory(sequence_type, made)

        def array(value: Any, target: Any) -> Any:
            if not isinstance(value, list | tuple):
                raise TypeError(f"expected a JSON array, got {type(value).__name__} {value!r}")
            return structure(value, target)

        return array

    return make


def _is_fixed_tuple(value: Any) -> bool:
    arguments = typing.get_args(value)
    return typing.get_origin(value) is tuple and bool(arguments) and arguments[-1] is not Ellipsis


def _make_converter() -> cattrs.Converter:
    made = make_converter(detailed_validation=True)
    made.register_structure_hook(str, _strict(str, (str,)))
    made.register_structure_hook(int, _strict(int, (int,)))
    made.register_structure_hook(float, _strict(float, (float, int)))
    made.register_structure_hook(bool, _strict(bool, (bool,)))
    # the latest registration wins: the general case first
    made.register_structure_hook_factory(is_sequence, _array(homogenous_tuple_structure_factory))
    made.register_structure_hook_factory(is_mutable_sequence, _array(list_structure_factory))
    made.register_structure_hook_factory(
        _is_fixed_tuple, _array(lambda tuple_type, made: made.gen_structure_hetero_tuple(tuple_type))
    )
    return made


converter: cattrs.Converter = _make_converter()
"""The converter between configuration objects and their JSON snapshots (cattrs' orjson
preconfiguration, with str, int, float and bool taken strictly, not coerced)."""


@attrs.frozen(slots=True)
class ConfigurationSnapshot:
    """One stored snapshot: the configuration as stored and when it was stored."""

    identifier: str
    content: Mapping[str, Any]
    created: datetime


class _Stored:
    """A snapshot as the cache holds it: its JSON, from which every load decodes objects of its
    own, and the instance structured from it per frozen configuration type (shared)."""

    __slots__ = ("json", "typed")

    def __init__(self, json: bytes) -> None:
        self.json = json
        self.typed: dict[type, Any] = {}


def _frozen(config_type: type) -> bool:
    """Whether instances of the attrs class or dataclass are frozen."""
    if dataclasses.is_dataclass(config_type):
        return bool(config_type.__dataclass_params__.frozen)  # type: ignore[attr-defined]
    inspect = getattr(attrs, "inspect", None)  # attrs >= 25.4
    try:
        return inspect is not None and bool(inspect(config_type).is_frozen)
    except attrs.exceptions.NotAnAttrsClassError:  # a plain subclass of an attrs class
        return False


def _is_configuration_type(value: object) -> bool:
    return isinstance(value, type) and (attrs.has(value) or dataclasses.is_dataclass(value))


def _json_object(content: Mapping[str, Any], identifier: str) -> dict[str, Any]:
    """`content` as a dict that JSON can hold, else `TypeError` before anything is written."""
    try:
        dumps_json(content)
    except orjson.JSONEncodeError as error:
        raise TypeError(f"configuration {identifier!r} cannot be stored as JSON: {error}") from None
    except ValueError as error:
        raise ValueError(f"configuration {identifier!r} cannot be stored as JSON: {error}") from None
    return dict(content)


class PostgresConfigurationRepository:
    """Versioned configurations: `define` appends a snapshot, `load` reads the newest.

    Reads are cached per repository (an LRU of `cache_limit` identifiers and the listing, each for
    `cache_expiration` seconds); `define` and `remove` invalidate at once here and, through a
    NOTIFY in their transaction, in every process on the database."""

    __slots__ = ("_documents", "_hooks")

    def __init__(
        self,
        postgres: Postgres | None = None,
        *,
        cache_limit: int = 32,
        cache_expiration: float = 600.0,
    ) -> None:
        self._documents = Documents(
            "configurations",
            lock="configurations_lock",
            key_parameter="identifier",
            postgres=postgres,
            cache_limit=cache_limit,
            cache_expiration=cache_expiration,
        )
        self._hooks: dict[type, tuple[Any, bool]] = {}

    @property
    def postgres(self) -> Postgres | None:
        return self._documents.postgres

    async def configurations(self) -> Sequence[str]:
        """Every identifier with a snapshot, sorted; cached as one entry."""
        result: tuple[str, ...] = await self._documents.read_listing(self._fetch_identifiers)
        return result

    @overload
    async def load(self, config_type: type[_C], identifier: str | None = None) -> _C | None: ...

    @overload
    async def load(self, config_type: type[_C], identifier: str | None = None, *, default: _D) -> _C | _D: ...

    async def load(self, config_type: type[_C], identifier: str | None = None, *, default: Any = None) -> Any:
        """The newest snapshot of `identifier` (default: the type's name) structured into
        `config_type`; `default` when there is none. A snapshot that does not fit raises
        `ConfigurationError` naming the identifier and the fields. A frozen class's instance is
        made once per cached snapshot and shared by the loads that follow."""
        hook = self._hooks.get(config_type) if isinstance(config_type, type) else None
        if hook is None:
            hook = self._hook(config_type)
        key = config_type.__name__ if identifier is None else require_key(identifier, "identifier")
        documents = self._documents
        stored = documents.cached(documents.pool(), key)
        if stored is MISS:
            stored = await documents.read(key, self._fetch_newest(key))
        if stored is None:
            return default
        loaded = stored.typed.get(config_type)
        if loaded is None:
            try:
                loaded = hook[0](orjson.loads(stored.json), config_type)
            except Exception as error:
                raise _misfit(key, config_type, error) from error
            if hook[1]:
                stored.typed[config_type] = loaded
        return loaded

    async def load_raw(self, identifier: str) -> Mapping[str, Any] | None:
        """The newest snapshot of `identifier` as stored (a fresh copy each call), or None."""
        key = require_key(identifier, "identifier")
        stored = await self._documents.read(key, self._fetch_newest(key))
        return None if stored is None else orjson.loads(stored.json)

    async def define(self, config: Any, identifier: str | None = None) -> None:
        """Stores a new snapshot. `config` is an attrs or dataclass instance (identifier: its class
        name unless given) or a Mapping (identifier required)."""
        if isinstance(config, Mapping):
            if identifier is None:
                raise TypeError("define(mapping) needs the identifier: define(config, identifier='...')")
            key = require_key(identifier, "identifier")
            content = _json_object(config, key)
        elif not isinstance(config, type) and _is_configuration_type(type(config)):
            key = type(config).__name__ if identifier is None else require_key(identifier, "identifier")
            content = _json_object(converter.unstructure(config), key)
        else:
            raise TypeError(f"a configuration is an attrs or dataclass instance or a Mapping, got {config!r}")

        async def insert(postgres: Postgres) -> None:
            await postgres.run("configurations_insert", identifier=key, content=content)

        await self._documents.write(key, insert)

    async def remove(self, identifier: str) -> None:
        """Deletes every snapshot of `identifier`."""
        key = require_key(identifier, "identifier")

        async def delete(postgres: Postgres) -> None:
            await postgres.run("configurations_remove", identifier=key)

        await self._documents.write(key, delete)

    async def history(self, identifier: str) -> Sequence[ConfigurationSnapshot]:
        """Every snapshot of `identifier`, newest first (not cached)."""
        key = require_key(identifier, "identifier")
        rows = await self._documents.pool().run("configurations_history", identifier=key)
        return tuple(ConfigurationSnapshot(row["identifier"], row["content"], row["created"]) for row in rows)

    # -- internals -------------------------------------------------------------------------------

    def _hook(self, config_type: type) -> tuple[Any, bool]:
        """The type's structure hook, and whether its instances may be shared (frozen)."""
        if not _is_configuration_type(config_type):
            raise TypeError(f"load() takes an attrs class or a dataclass, got {config_type!r}")
        hook = self._hooks[config_type] = (converter.get_structure_hook(config_type), _frozen(config_type))
        return hook

    @staticmethod
    def _fetch_newest(key: str) -> Any:
        """Reads the newest snapshot (None when there is none) as the cache holds it."""

        async def fetch(postgres: Postgres) -> _Stored | None:
            content = await postgres.run("configurations_newest", identifier=key)
            return None if content is None else _Stored(orjson.dumps(content))

        return fetch

    @staticmethod
    async def _fetch_identifiers(postgres: Postgres) -> tuple[str, ...]:
        rows = await postgres.run("configurations_identifiers")
        return tuple(sorted(row["identifier"] for row in rows))


def _misfit(identifier: str, config_type: type, error: Exception) -> ConfigurationError:
    if isinstance(error, cattrs.BaseValidationError):
        problems = "; ".join(cattrs.transform_error(error))
    else:
        problems = f"{type(error).__name__}: {error}"
    return ConfigurationError(
        f"configuration {identifier!r} does not fit {config_type.__qualname__}: {problems}; "
        f"define() a snapshot that fits, or load it with load_raw({identifier!r})"
    )
