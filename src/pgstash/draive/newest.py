"""The newest draive's adapters (0.103: `draive.postgres` re-exports haiway's configuration
repository and adds templates and conversation memory) on pgstash's stores, in pgstash's tables:
configurations with their type in the `name` column (migration 0009), templates as instructions
(variables as arguments, content raw), conversation turns as memory elements (the turn's JSON).
draive's own `templates` and `conversation_memory` tables are not read or written."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from itertools import chain
from typing import Any
from uuid import UUID

from draive import ConfigurationRepository, Meta
from draive.conversation.state import ConversationMemory
from draive.conversation.types import ConversationAssistantTurn, ConversationUserTurn
from draive.multimodal.templates.repository import TemplatesRepository
from draive.multimodal.templates.types import TemplateDeclaration
from haiway import Paginated, Pagination

from pgstash.draive.pool import current_postgres, repository_on_scope
from pgstash.stores import instructions as _instructions
from pgstash.stores.configurations import PostgresConfigurationRepository as _Configurations
from pgstash.stores.instructions import PostgresInstructionsRepository as _Instructions
from pgstash.stores.memory import PostgresModelMemory as _Memory

__all__ = ["PostgresConfigurationRepository", "PostgresConversationMemory", "PostgresTemplatesRepository"]

_CURSOR = "templates:cursor:"


def PostgresConfigurationRepository(
    cache_limit: int = 32, cache_expiration: float = 600.0
) -> ConfigurationRepository:
    """haiway's `ConfigurationRepository` on pgstash's configurations; `configurations(config)`
    lists by the type name stored with each snapshot, in one indexed statement."""
    store = repository_on_scope(
        lambda postgres: _Configurations(postgres, cache_limit=cache_limit, cache_expiration=cache_expiration)
    )

    async def listing(config: type[Any] | None = None, **extra: Any) -> Sequence[str]:
        if config is None:
            return tuple(await store().configurations())
        return tuple(await store().configurations(kind=config.__name__))

    async def loading(config: type[Any], identifier: str, **extra: Any) -> Any:
        raw = await store().load_raw(identifier)
        return None if raw is None else config.from_mapping(raw)

    async def defining(identifier: str, value: Any, **extra: Any) -> None:
        await store().define(json.loads(value.to_json()), identifier, kind=type(value).__name__)

    async def removing(identifier: str, **extra: Any) -> None:
        await store().remove(identifier)

    return ConfigurationRepository(listing=listing, loading=loading, defining=defining, removing=removing)


def _template(declaration: _instructions.InstructionsDeclaration) -> TemplateDeclaration:
    return TemplateDeclaration(
        identifier=declaration.name,
        description=declaration.description,
        variables={argument.name: argument.description or "" for argument in declaration.arguments},
        meta=Meta.of(json.loads(json.dumps(dict(declaration.meta)))),
    )


def _after(pagination: Pagination) -> str | int | None:
    """The page's start: a name (`templates:cursor:NAME`) or, as draive's own adapter still
    takes, an offset (`templates:N` or an int)."""
    token = pagination.token
    if token is None:
        return None
    if isinstance(token, int) and not isinstance(token, bool):
        return max(token, 0)
    if isinstance(token, str) and token.startswith(_CURSOR) and len(token) > len(_CURSOR):
        return token.removeprefix(_CURSOR)
    if isinstance(token, str) and token.startswith("templates:"):
        try:
            return max(int(token.removeprefix("templates:")), 0)
        except ValueError:
            pass
    raise ValueError("Invalid postgres templates pagination token")


def PostgresTemplatesRepository(
    cache_limit: int = 32, cache_expiration: float = 600.0, meta: Any = None
) -> TemplatesRepository:
    """draive's `TemplatesRepository` on pgstash's instructions table: a template's identifier is
    the name, its variables the arguments (name and description), its content stored raw
    (draive's `{%name%}` grammar); listing pages by identifier."""
    store = repository_on_scope(
        lambda postgres: _Instructions(postgres, cache_limit=cache_limit, cache_expiration=cache_expiration)
    )

    async def listing(pagination: Pagination | None = None, **extra: Any) -> Paginated[TemplateDeclaration]:
        page = pagination or Pagination.of(limit=32)
        if page.limit <= 0:
            return Paginated[TemplateDeclaration].of((), pagination=page.with_token(None))
        start = _after(page)
        if isinstance(start, int):  # an offset: a slice of the cached listing
            found = (await store().available_instructions())[start : start + page.limit + 1]
        else:
            found = await store().available_instructions(after=start, limit=page.limit + 1)
        declarations = tuple(_template(each) for each in found[: page.limit])
        token = f"{_CURSOR}{declarations[-1].identifier}" if len(found) > page.limit else None
        return Paginated[TemplateDeclaration].of(declarations, pagination=page.with_token(token))

    async def loading(identifier: str, meta: Any, **extra: Any) -> str | None:
        loaded: str | None = await store().load(identifier)
        return loaded

    async def defining(
        identifier: str,
        description: str | None,
        content: str,
        variables: Mapping[str, str],
        meta: Any,
        **extra: Any,
    ) -> None:
        declaration = _instructions.InstructionsDeclaration(
            name=identifier,
            description=description,
            arguments=tuple(
                _instructions.InstructionsArgumentDeclaration(name=name, description=text or None)
                for name, text in variables.items()
            ),
            meta=json.loads(Meta.of(meta).to_json()),
        )
        await store().define(declaration, content, syntax="raw")

    return TemplatesRepository(
        listing=listing,
        loading=loading,
        defining=defining,
        meta=Meta.of(meta if meta is not None else {"source": "postgres"}),
    )


class DraiveTurns:
    """The memory codec for draive's conversation turns: stored as the turn's `to_json()`."""

    def encode(self, turn: Any) -> Mapping[str, Any]:
        if not isinstance(turn, ConversationUserTurn | ConversationAssistantTurn):
            raise TypeError(f"remember takes draive's conversation turns, got {type(turn).__qualname__}")
        encoded: Mapping[str, Any] = json.loads(turn.to_json())
        return encoded

    def decode(self, content: Any) -> Any:
        kind = content.get("turn") if isinstance(content, Mapping) else None
        if kind == "user":
            return ConversationUserTurn.from_mapping(content)
        if kind == "assistant":
            return ConversationAssistantTurn.from_mapping(content)
        raise ValueError(f"Unsupported conversation turn payload: {kind}")


def _before(pagination: Pagination) -> datetime | None:
    token = pagination.token
    if token is None:
        return None
    try:
        before = datetime.fromisoformat(str(token))
    except ValueError:
        raise ValueError("Invalid conversation memory pagination token") from None
    if before.tzinfo is None:
        raise ValueError("Invalid conversation memory pagination token")
    return before


def PostgresConversationMemory(*, thread: UUID | str) -> ConversationMemory:
    """draive's `ConversationMemory` of one thread on pgstash's memory (the thread id is the
    memory's identifier). A page is one indexed read of the turns before the cursor (the oldest
    turn's stored time of the page before)."""
    thread_id = str(thread)
    codec = DraiveTurns()

    def memory() -> _Memory:
        return _Memory(thread_id, postgres=current_postgres(), codec=codec)

    async def page(pagination: Pagination) -> Paginated[Any]:
        if pagination.limit <= 0:
            return Paginated[Any].of((), pagination=pagination.with_token(None))
        recalled = await memory().recall(pagination.limit, before=_before(pagination))
        token = recalled.created[0].isoformat() if len(recalled.context) >= pagination.limit else None
        return Paginated[Any].of(recalled.context, pagination=pagination.with_token(token))

    async def fetching(pagination: Pagination, **extra: Any) -> Paginated[Any]:
        return await page(pagination)

    async def recalling(pagination: Pagination | None = None, **extra: Any) -> Any:
        turns = (await memory().recall()).context if pagination is None else (await page(pagination)).items
        return tuple(chain.from_iterable(turn.to_model_context() for turn in turns))

    async def remembering(turns: Sequence[Any], **extra: Any) -> None:
        if turns:
            await memory().remember(*turns)

    return ConversationMemory(fetching=fetching, recalling=recalling, remembering=remembering)
