"""`PostgresInstructionsRepository`: versioned instructions (prompt templates with declared
arguments) in the seed's `instructions` table.

A template holds text, `{name}` placeholders (`name` a Python identifier) and the escapes `{{`
and `}}`; nothing else. `define` refuses anything else with the position; `resolve` fills the
placeholders from its own parse of the stored text, never with `str.format`, so no stored text
can reach attributes, indexes, conversions or format specs of the arguments.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

import attrs
import orjson

from pgstash.connection import Postgres
from pgstash.errors import InstructionsNotFoundError, MissingArgumentError, StoredDataError
from pgstash.jsonvalue import dumps_json
from pgstash.stores.cache import immutable
from pgstash.stores.versioned import VersionedStore
from pgstash.validators import key_validator, no_nul

__all__ = [
    "InstructionsArgumentDeclaration",
    "InstructionsDeclaration",
    "InstructionsRevision",
    "PostgresInstructionsRepository",
    "parse_template",
]


def parse_template(template: str) -> tuple[str | tuple[str], ...]:
    """The template as parts: text (str) and placeholders (a 1-tuple holding the name).
    `ValueError` names the position (0-based) of anything but text, `{name}`, `{{` and `}}`."""
    parts: list[str | tuple[str]] = []
    text: list[str] = []
    position, end = 0, len(template)
    while position < end:
        brace = _next_brace(template, position)
        text.append(template[position:brace])
        if brace == end:
            break
        if template.startswith(("{{", "}}"), brace):
            text.append(template[brace])
            position = brace + 2
            continue
        if template[brace] == "}":
            raise ValueError(f"a single '}}' at position {brace}: write '}}}}' for a literal brace")
        close = template.find("}", brace + 1)
        name = template[brace + 1 : close] if close >= 0 else template[brace + 1 :]
        if close < 0:
            raise ValueError(f"the '{{' at position {brace} is not closed: write '{{{{' for a literal brace")
        if not name.isidentifier():
            raise ValueError(
                f"placeholder {{{name}}} at position {brace}: only {{name}} placeholders (a Python "
                "identifier) are allowed, no index, attribute, conversion or format spec"
            )
        if text:
            parts.append("".join(text))
            text = []
        parts.append((name,))
        position = close + 1
    if text:
        parts.append("".join(text))
    return tuple(parts)


def _next_brace(template: str, position: int) -> int:
    found = [index for index in (template.find("{", position), template.find("}", position)) if index >= 0]
    return min(found) if found else len(template)


@functools.lru_cache(maxsize=512)
def _stored_template(name: str, content: str) -> tuple[str | tuple[str], ...]:
    """The parse of a stored template; a row no `define` would have written raises."""
    try:
        return parse_template(content)
    except ValueError as error:
        raise StoredDataError(
            f"instructions {name!r} are stored with a template pgstash does not resolve ({error}); "
            "define() a new revision"
        ) from None


def _optional_text(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        if not isinstance(value, str):
            raise TypeError(f"{attribute.name} must be a str or None, got {type(value).__name__}")
        no_nul(value, attribute.name)


@attrs.frozen(slots=True)
class InstructionsArgumentDeclaration:
    """An argument the instructions' `{placeholders}` take; a missing optional one is ""."""

    name: str = attrs.field(validator=key_validator)
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
    return MappingProxyType(dict(value))  # read-only at the top; nested values: see _shared


@attrs.frozen(slots=True)
class InstructionsDeclaration:
    """What instructions are called, what they are for, and the arguments they take."""

    name: str = attrs.field(validator=key_validator)
    description: str | None = attrs.field(default=None, validator=_optional_text)
    arguments: Sequence[InstructionsArgumentDeclaration] = attrs.field(default=(), converter=_arguments)
    meta: Mapping[str, Any] = attrs.field(factory=dict, converter=_meta)


@attrs.frozen(slots=True)
class InstructionsRevision:
    """One stored revision: its declaration, its content and when it was stored."""

    declaration: InstructionsDeclaration
    content: str
    created: datetime


def _fresh(declaration: InstructionsDeclaration) -> InstructionsDeclaration:
    """The cached declaration itself when nothing about it can change, else one with its own copy
    of `meta` (nested lists and dicts a caller could change)."""
    if immutable(declaration):
        return declaration
    return attrs.evolve(declaration, meta=orjson.loads(orjson.dumps(dict(declaration.meta))))


@attrs.define(eq=False)
class PostgresInstructionsRepository(VersionedStore):
    """Versioned instructions: `define` appends a revision, `load` and `resolve` read the newest
    (cached per name, see `VersionedStore`), `prune` deletes old revisions."""

    store = "instructions"
    key_parameter = "name"

    async def available_instructions(
        self, *, after: str | None = None, limit: int | None = None
    ) -> Sequence[InstructionsDeclaration]:
        """The declaration of the newest revision of each name, sorted by name; cached (each
        call gets declarations whose `meta` it may change without changing the next call's).
        A page by key: only names after `after` (the last name of the previous page), at most
        `limit` of them (None: all)."""
        if after is not None and not isinstance(after, str):
            raise TypeError(f"after must be a name (str) or None, got {type(after).__name__}")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
            raise ValueError(f"limit must be an int >= 0 or None, got {limit!r}")
        listing: tuple[InstructionsDeclaration, ...] = await self._read_listing(self._fetch_declarations)
        start = 0 if after is None else bisect.bisect_right([each.name for each in listing], after)
        end = len(listing) if limit is None else start + limit
        return tuple(_fresh(declaration) for declaration in listing[start:end])

    async def load(self, name: str) -> str | None:
        """The newest content of `name`, or None."""
        revision = await self._newest(self._key(name))
        return None if revision is None else revision.content

    async def resolve(self, name: str, arguments: Mapping[str, Any] | None = None) -> str:
        """The newest content with its `{placeholders}` filled from `arguments` (each value as
        `str(value)`), `{{` and `}}` as single braces. A declared optional argument not given is
        ""; a declared required one, or any other placeholder, not given raises
        `MissingArgumentError`. A stored template `define` would refuse raises `StoredDataError`."""
        key = self._key(name)
        if arguments is not None and not isinstance(arguments, Mapping):
            raise TypeError(f"arguments must be a Mapping or None, got {type(arguments).__name__}")
        revision = await self._newest(key)
        if revision is None:
            raise InstructionsNotFoundError(key)
        given = arguments or {}
        optional = set()
        for argument in revision.declaration.arguments:
            if argument.name not in given:
                if argument.required:
                    raise MissingArgumentError(key, argument.name)
                optional.add(argument.name)
        pieces = []
        for part in _stored_template(key, revision.content):
            if isinstance(part, str):
                pieces.append(part)
            elif part[0] in given:
                pieces.append(str(given[part[0]]))
            elif part[0] not in optional:
                raise MissingArgumentError(key, part[0])
        return "".join(pieces)

    async def define(
        self, instructions: InstructionsDeclaration | str, content: str, *, syntax: str = "template"
    ) -> None:
        """Stores a new revision of `instructions` (a declaration, or a bare name). `content` is a
        template (text, `{name}` placeholders, `{{`, `}}`); anything else, NUL characters, or a
        `meta` JSON cannot hold raise `ValueError`/`TypeError` before anything is written.
        `syntax="raw"` stores content pgstash's grammar does not check, for a framework that
        fills it itself (`load` returns it; `resolve` refuses it with `StoredDataError` unless it
        is also a valid template)."""
        if syntax not in ("template", "raw"):
            raise ValueError(f'syntax must be "template" or "raw", got {syntax!r}')
        if isinstance(instructions, str):
            instructions = InstructionsDeclaration(self._key(instructions))
        elif not isinstance(instructions, InstructionsDeclaration):
            kind = type(instructions).__name__
            raise TypeError(f"instructions must be an InstructionsDeclaration or a name, got {kind}")
        if not isinstance(content, str):
            raise TypeError(f"content must be a str, got {type(content).__name__}")
        declaration = instructions
        no_nul(content, "content")
        try:
            if syntax == "template":
                parse_template(content)
        except ValueError as error:
            raise ValueError(f"the template of {declaration.name!r} is refused: {error}") from None
        meta = dumps_json(dict(declaration.meta), f"meta of {declaration.name!r}")
        await self._insert(
            declaration.name,
            description=declaration.description,
            content=content,
            arguments=[attrs.asdict(argument) for argument in declaration.arguments],
            meta=orjson.Fragment(meta),
        )

    async def remove(self, name: str) -> None:
        """Deletes every revision of `name`."""
        await self._remove(name)

    async def history(self, name: str) -> Sequence[InstructionsRevision]:
        """Every revision of `name`, newest first (not cached)."""
        return tuple(_revision(row) for row in await self._history(name))

    # -- internals -------------------------------------------------------------------------------

    async def _newest(self, key: str) -> InstructionsRevision | None:
        async def fetch(postgres: Postgres) -> InstructionsRevision | None:
            row = await postgres.run("instructions_newest", name=key)
            return None if row is None else _revision(row)

        revision: InstructionsRevision | None = await self._read(key, fetch)
        return revision

    @staticmethod
    async def _fetch_declarations(postgres: Postgres) -> tuple[InstructionsDeclaration, ...]:
        rows = await postgres.run("instructions_declarations")
        return tuple(sorted((_declaration(row) for row in rows), key=lambda declaration: declaration.name))


def _revision(row: Mapping[str, Any]) -> InstructionsRevision:
    return InstructionsRevision(_declaration(row), row["content"], row["created"])


def _declaration(row: Mapping[str, Any]) -> InstructionsDeclaration:
    """The declaration stored in a row; a row another writer filled wrongly raises
    `StoredDataError` naming the instructions."""
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
        raise StoredDataError(
            f"instructions {row['name']!r} are stored with a malformed declaration ({error}); "
            "define() a new revision"
        ) from error
