"""`PostgresInstructionsRepository`: versioned instructions (prompt templates with declared
arguments) in the seed's `instructions` table; with schema/0010 numbered revisions, labels
(`labels.py`, `selection.py`), chat prompts (`chat.py`) and serving through outages
(`outage.py`). The template grammar is `templates.py`; the declarations and revisions it
stores are `instruction_values.py` (re-exported here).
"""

from __future__ import annotations

import bisect
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar, overload

import attrs
import orjson

from pgstash.connection import Postgres
from pgstash.jsonvalue import dumps_json
from pgstash.sql import names
from pgstash.stores import chat
from pgstash.stores.chat import ChatPrompt
from pgstash.stores.instruction_values import (
    InstructionsArgumentDeclaration,
    InstructionsDeclaration,
    InstructionsRevision,
    _declaration,
    _fresh,
    _revision,
)
from pgstash.stores.labels import LabelledStore
from pgstash.stores.outage import NOTHING, ResolvedText
from pgstash.stores.selection import LATEST, check_label
from pgstash.stores.templates import fill, parse_template
from pgstash.stores.versioned import VersionedQueries
from pgstash.validators import no_nul

__all__ = [
    "ChatPrompt",
    "InstructionsArgumentDeclaration",
    "InstructionsDeclaration",
    "InstructionsRevision",
    "PostgresInstructionsRepository",
    "parse_template",
]

_C = TypeVar("_C")
_Revision = int | InstructionsRevision | None  # a revision number, or a revision of the name


@attrs.define(eq=False)
class PostgresInstructionsRepository(LabelledStore):
    """Versioned instructions: `define` appends a revision (and moves the labels it names),
    `load` and `resolve` read the newest, or the one a label or number selects (cached per
    name, see `VersionedStore`), `prune` deletes old revisions (never a labelled one).

    `default_label`: the label `load`/`resolve` read when given none (None: the newest
    revision, `latest`). `stale_ok`: serve the last value read while the database is
    unreachable (see `pgstash.stores.outage`), unless a call says otherwise."""

    store = "instructions"
    queries = VersionedQueries(
        lock=names.instructions_lock,
        insert=names.instructions_insert,
        remove=names.instructions_remove,
        history=names.instructions_history,
        prune=names.instructions_prune,
    )
    key_parameter = "name"

    async def available_instructions(
        self, *, label: str | None = None, after: str | None = None, limit: int | None = None
    ) -> Sequence[InstructionsDeclaration]:
        """The declaration of the newest revision of each name (with `label`: of the revision
        the label points at, for each name that has it), sorted by name; cached (each call gets
        declarations whose `meta` it may change without changing the next call's). A page by
        name: only names after `after` (the last name of the previous page), at most `limit`."""
        if after is not None and not isinstance(after, str):
            raise TypeError(f"after must be a name (str) or None, got {type(after).__name__}")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
            raise ValueError(f"limit must be an int >= 0 or None, got {limit!r}")
        if label is not None and check_label(label) != LATEST:
            listing = await self._labelled_listing(label)
        else:
            listing = await self._read_listing(self._fetch_declarations)
        start = 0 if after is None else bisect.bisect_right([each.name for each in listing], after)
        end = len(listing) if limit is None else start + limit
        return tuple(_fresh(declaration) for declaration in listing[start:end])

    async def load(
        self,
        name: str,
        *,
        label: str | None = None,
        revision: _Revision = None,
        stale_ok: bool | None = None,
        fallback: Any = NOTHING,
    ) -> str | None:
        """The newest content of `name` (with `label` or `revision`: that one's; without either,
        the repository's `default_label`'s), or None. With `stale_ok`, a `ResolvedText`
        (`.stale`, `.revision`); `fallback` is returned as given when the database is
        unreachable and nothing was read before."""
        key = self._key(name)
        found, stale = await self._choose(key, label, revision, stale_ok, fallback is not NOTHING)
        if found is NOTHING:
            return fallback  # type: ignore[no-any-return]
        if found is None:
            return None
        if stale or self._serving(stale_ok):
            return ResolvedText(found.content, stale=stale, revision=found.revision)
        content: str = found.content
        return content

    @overload
    async def resolve(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        label: str | None = None,
        revision: _Revision = None,
        stale_ok: bool | None = None,
        fallback: Any = NOTHING,
    ) -> str: ...
    @overload
    async def resolve(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        placeholders: Mapping[str, Any] | None = None,
        config_type: type[_C],
        label: str | None = None,
        revision: _Revision = None,
        stale_ok: bool | None = None,
        fallback: Any = NOTHING,
    ) -> ChatPrompt[_C]: ...
    @overload
    async def resolve(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        placeholders: Mapping[str, Any],
        label: str | None = None,
        revision: _Revision = None,
        stale_ok: bool | None = None,
        fallback: Any = NOTHING,
    ) -> ChatPrompt[Any]: ...

    async def resolve(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        placeholders: Mapping[str, Any] | None = None,
        config_type: type[Any] | None = None,
        label: str | None = None,
        revision: _Revision = None,
        stale_ok: bool | None = None,
        fallback: Any = NOTHING,
    ) -> Any:
        """The newest content with its `{placeholders}` filled from `arguments` (each value as
        `str(value)`), `{{` and `}}` as single braces. A declared optional argument not given is
        ""; a declared required one, or any other placeholder, not given raises
        `MissingArgumentError`. A stored template `define` would refuse raises `StoredDataError`.

        `label`/`revision` select another revision than the newest (`load`). A chat prompt, or
        any call with `placeholders=` or `config_type=`, returns a `ChatPrompt` (a text revision
        is one `system` message); a chat prompt without either raises `TypeError`."""
        key = self._key(name)
        if arguments is not None and not isinstance(arguments, Mapping):
            raise TypeError(f"arguments must be a Mapping or None, got {type(arguments).__name__}")
        chatting = placeholders is not None or config_type is not None
        found, stale = await self._choose(
            key, label, revision, stale_ok, fallback is not NOTHING, full=chatting
        )
        if found is NOTHING:
            return fallback
        if found is None:
            raise self._not_found(key, label, revision)
        given = arguments or {}
        if chatting or found.kind == "chat" or chat.is_messages(found.content):
            if not chatting:
                raise TypeError(
                    f"instructions {key!r} are a chat prompt: resolve them with placeholders= "
                    "(or config_type=), which returns a ChatPrompt"
                )
            return chat.prompt(key, found, given, placeholders, config_type, stale)
        text = fill(key, found.declaration.arguments, given, found.content)
        if stale or self._serving(stale_ok):
            return ResolvedText(text, stale=stale, revision=found.revision)
        return text

    async def define(
        self,
        instructions: InstructionsDeclaration | str,
        content: str | None = None,
        *,
        messages: Sequence[Mapping[str, str]] | None = None,
        config: Any = None,
        labels: Sequence[str] = (),
        message: str | None = None,
        syntax: str = "template",
    ) -> InstructionsRevision:
        """Stores a new revision of `instructions` (a declaration, or a bare name) and returns it
        (`.revision`: its number). `content` is a template (text, `{name}` placeholders, `{{`,
        `}}`); `messages=` instead stores a chat prompt (`chat.encode_messages`); `config=` typed
        settings (an attrs or dataclass instance, or a Mapping); `labels=` the labels that move
        to it (with `latest`, which always does); `message=` why. Anything else, NUL
        characters, or a `meta` JSON cannot hold raise `ValueError`/`TypeError` before anything
        is written. `syntax="raw"` stores content pgstash's grammar does not check, for a
        framework that fills it itself (`load` returns it; `resolve` refuses it)."""
        if syntax not in ("template", "raw"):
            raise ValueError(f'syntax must be "template" or "raw", got {syntax!r}')
        if isinstance(instructions, str):
            instructions = InstructionsDeclaration(self._key(instructions))
        elif not isinstance(instructions, InstructionsDeclaration):
            kind = type(instructions).__name__
            raise TypeError(f"instructions must be an InstructionsDeclaration or a name, got {kind}")
        declaration = instructions
        kind = "text"
        templates: tuple[str | None, ...] = (content,)
        if messages is not None:
            if content is not None:
                raise TypeError(f"define {declaration.name!r} with content or messages=, not both")
            content, templates = chat.encode_messages(declaration.name, messages)
            kind = "chat"
        if not isinstance(content, str):
            raise TypeError(f"content must be a str, got {type(content).__name__}")
        no_nul(content, "content")
        for template in templates if syntax == "template" else ():
            try:
                parse_template(template or "")
            except ValueError as error:
                raise ValueError(f"the template of {declaration.name!r} is refused: {error}") from None
        meta = orjson.Fragment(dumps_json(dict(declaration.meta), f"meta of {declaration.name!r}"))
        arguments = [attrs.asdict(argument) for argument in declaration.arguments]
        moved = self._labels_to_move(labels)
        if message is not None:
            if not isinstance(message, str):
                raise TypeError(f"message must be a str or None, got {type(message).__name__}")
            no_nul(message, "message")
        stored = chat.config_json(declaration.name, config)
        row = await self._store(
            declaration.name,
            kind=kind,
            labels=moved,
            message=message,
            description=declaration.description,
            content=content,
            arguments=arguments,
            meta=meta,
            config=stored,
        )
        return InstructionsRevision(
            declaration,
            content,
            row["created"],
            row["revision"],
            message,
            row["author"],
            kind,
            None if stored is None else orjson.loads(stored),
        )

    async def history(self, name: str) -> Sequence[InstructionsRevision]:
        """Every revision of `name`, newest first, numbered (not cached)."""
        revisions: Sequence[InstructionsRevision] = await self._numbered_history(name)
        return revisions

    # -- internals -------------------------------------------------------------------------------

    def _revision_of(self, row: Mapping[str, Any]) -> InstructionsRevision:
        return _revision(row)

    def _declaration_of(self, row: Mapping[str, Any]) -> InstructionsDeclaration:
        return _declaration(row)

    def _newest(self, key: str) -> Awaitable[InstructionsRevision | None]:
        return self._read(self._pool(), key, _fetch_newest)

    @staticmethod
    async def _fetch_declarations(postgres: Postgres) -> tuple[InstructionsDeclaration, ...]:
        rows = await postgres.run(names.instructions_declarations)
        return tuple(sorted((_declaration(row) for row in rows), key=lambda declaration: declaration.name))


async def _fetch_newest(postgres: Postgres, key: str) -> InstructionsRevision | None:
    """The newest revision of `key` (None when there is none), by the seed's statement."""
    row = await postgres.run(names.instructions_newest, name=key)
    return None if row is None else _revision(row)
