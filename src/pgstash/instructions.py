"""`PostgresInstructionsRepository`: versioned instructions (prompt templates with declared
arguments) in the seed's `instructions` table, resolved with `str.format_map`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

import attrs
import orjson

from pgstash.codecs import dumps_json
from pgstash.connection import Postgres
from pgstash.documents import Documents, require_key
from pgstash.errors import ConfigurationError, InstructionsNotFoundError, MissingArgumentError

__all__ = [
    "InstructionsArgumentDeclaration",
    "InstructionsDeclaration",
    "InstructionsRevision",
    "PostgresInstructionsRepository",
]


def _name(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    require_key(value, attribute.name)


def _optional_text(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a str or None, got {type(value).__name__}")


@attrs.frozen(slots=True)
class InstructionsArgumentDeclaration:
    """An argument the instructions' `{placeholders}` take; a missing optional one is ""."""

    name: str = attrs.field(validator=_name)
    description: str | None = attrs.field(default=None, validator=_optional_text)
    required: bool = attrs.field(default=True, validator=attrs.validators.instance_of(bool))


def _arguments(value: Any) -> tuple[InstructionsArgumentDeclaration, ...]:
    if isinstance(value, str | bytes | Mapping):
        raise TypeError(f"arguments must be a sequence of InstructionsArgumentDeclaration, got {value!r}")
    arguments = tuple(value)
    for argument in arguments:
        if not isinstance(argument, InstructionsArgumentDeclaration):
            raise TypeError(f"arguments must be InstructionsArgumentDeclaration values, got {argument!r}")
    names = [argument.name for argument in arguments]
    if len(set(names)) != len(names):
        raise ValueError(f"arguments declare a name twice: {names}")
    return arguments


def _meta(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError(f"meta must be a Mapping, got {type(value).__name__}")
    return MappingProxyType(dict(value))  # read-only: declarations are shared by the cache


@attrs.frozen(slots=True)
class InstructionsDeclaration:
    """What instructions are called, what they are for, and the arguments they take."""

    name: str = attrs.field(validator=_name)
    description: str | None = attrs.field(default=None, validator=_optional_text)
    arguments: Sequence[InstructionsArgumentDeclaration] = attrs.field(default=(), converter=_arguments)
    meta: Mapping[str, Any] = attrs.field(factory=dict, converter=_meta)


@attrs.frozen(slots=True)
class InstructionsRevision:
    """One stored revision: its declaration, its content and when it was stored."""

    declaration: InstructionsDeclaration
    content: str
    created: datetime


class _Arguments(dict[str, Any]):
    """The values `format_map` fills placeholders from; a missing one names itself."""

    __slots__ = ("instructions",)

    def __init__(self, instructions: str, values: Mapping[str, Any]) -> None:
        super().__init__(values)
        self.instructions = instructions

    def __missing__(self, key: str) -> Any:
        raise MissingArgumentError(self.instructions, key)


class PostgresInstructionsRepository:
    """Versioned instructions: `define` appends a revision, `load` and `resolve` read the newest.

    Reads are cached per repository (an LRU of `cache_limit` names and the listing, each for
    `cache_expiration` seconds); `define` and `remove` invalidate at once here and, through a
    NOTIFY in their transaction, in every process on the database."""

    __slots__ = ("_documents",)

    def __init__(
        self,
        postgres: Postgres | None = None,
        *,
        cache_limit: int = 32,
        cache_expiration: float = 600.0,
    ) -> None:
        self._documents = Documents(
            "instructions",
            lock="instructions_lock",
            key_parameter="name",
            postgres=postgres,
            cache_limit=cache_limit,
            cache_expiration=cache_expiration,
        )

    @property
    def postgres(self) -> Postgres | None:
        return self._documents.postgres

    async def available_instructions(self) -> Sequence[InstructionsDeclaration]:
        """The declaration of the newest revision of each name, sorted by name; cached."""
        listing: tuple[InstructionsDeclaration, ...]
        listing = await self._documents.read_listing(self._fetch_declarations)
        return listing

    async def load(self, name: str) -> str | None:
        """The newest content of `name`, or None."""
        revision = await self._newest(require_key(name, "name"))
        return None if revision is None else revision.content

    async def resolve(self, name: str, arguments: Mapping[str, Any] | None = None) -> str:
        """The newest content with its `{placeholders}` filled from `arguments` (`str.format_map`
        rules). A declared optional argument not given is ""; a declared required one, or any
        other placeholder, not given raises `MissingArgumentError`."""
        key = require_key(name, "name")
        if arguments is not None and not isinstance(arguments, Mapping):
            raise TypeError(f"arguments must be a Mapping or None, got {type(arguments).__name__}")
        revision = await self._newest(key)
        if revision is None:
            raise InstructionsNotFoundError(key)
        values: dict[str, Any] = {}
        given = arguments or {}
        for argument in revision.declaration.arguments:
            if argument.name not in given:
                if argument.required:
                    raise MissingArgumentError(key, argument.name)
                values[argument.name] = ""
        values.update(given)
        return revision.content.format_map(_Arguments(key, values))

    async def define(self, instructions: InstructionsDeclaration | str, content: str) -> None:
        """Stores a new revision of `instructions` (a declaration, or a bare name)."""
        if isinstance(instructions, str):
            instructions = InstructionsDeclaration(require_key(instructions, "name"))
        elif not isinstance(instructions, InstructionsDeclaration):
            kind = type(instructions).__name__
            raise TypeError(f"instructions must be an InstructionsDeclaration or a name, got {kind}")
        if not isinstance(content, str):
            raise TypeError(f"content must be a str, got {type(content).__name__}")
        if "\x00" in content:
            raise ValueError("content must not contain NUL characters (PostgreSQL text cannot hold them)")
        declaration = instructions
        meta = dict(declaration.meta)
        try:
            dumps_json(meta)
        except orjson.JSONEncodeError as error:
            raise TypeError(f"meta of {declaration.name!r} cannot be stored as JSON: {error}") from None
        except ValueError as error:
            raise ValueError(f"meta of {declaration.name!r} cannot be stored as JSON: {error}") from None
        arguments = [attrs.asdict(argument) for argument in declaration.arguments]

        async def insert(postgres: Postgres) -> None:
            await postgres.run(
                "instructions_insert",
                name=declaration.name,
                description=declaration.description,
                content=content,
                arguments=arguments,
                meta=meta,
            )

        await self._documents.write(declaration.name, insert)

    async def remove(self, name: str) -> None:
        """Deletes every revision of `name`."""
        key = require_key(name, "name")

        async def delete(postgres: Postgres) -> None:
            await postgres.run("instructions_remove", name=key)

        await self._documents.write(key, delete)

    async def history(self, name: str) -> Sequence[InstructionsRevision]:
        """Every revision of `name`, newest first (not cached)."""
        key = require_key(name, "name")
        rows = await self._documents.pool().run("instructions_history", name=key)
        return tuple(_revision(row) for row in rows)

    # -- internals -------------------------------------------------------------------------------

    async def _newest(self, key: str) -> InstructionsRevision | None:
        async def fetch(postgres: Postgres) -> InstructionsRevision | None:
            row = await postgres.run("instructions_newest", name=key)
            return None if row is None else _revision(row)

        revision: InstructionsRevision | None = await self._documents.read(key, fetch)
        return revision

    @staticmethod
    async def _fetch_declarations(postgres: Postgres) -> tuple[InstructionsDeclaration, ...]:
        rows = await postgres.run("instructions_declarations")
        return tuple(sorted((_declaration(row) for row in rows), key=lambda declaration: declaration.name))


def _revision(row: Mapping[str, Any]) -> InstructionsRevision:
    return InstructionsRevision(_declaration(row), row["content"], row["created"])


def _declaration(row: Mapping[str, Any]) -> InstructionsDeclaration:
    """The declaration stored in a row; a row another writer filled wrongly raises
    `ConfigurationError` naming the instructions."""
    try:
        return InstructionsDeclaration(
            name=row["name"],
            description=row["description"],
            arguments=tuple(
                InstructionsArgumentDeclaration(
                    name=argument["name"],
                    description=argument.get("description"),
                    required=argument.get("required", True),
                )
                for argument in row["arguments"]
            ),
            meta=row["meta"],
        )
    except (TypeError, ValueError, KeyError, AttributeError) as error:
        raise ConfigurationError(
            f"instructions {row['name']!r} are stored with a malformed declaration ({error}); "
            "define() a new revision"
        ) from error
