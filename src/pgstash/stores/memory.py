"""Conversational model memory on the seed's `memories`, `memories_elements` and
`memories_variables` tables: `PostgresModelMemory`, what it recalls and how it stores elements.

Elements are pgstash's own (`pgstash.stores.elements`: frozen attrs classes as JSON objects tagged
by `"type"`) unless a codec says otherwise (`ElementCodec`). Every item of
a `remember` is converted and serialised before anything is sent, so an item that is not JSON
fails the call with nothing written. The ordering scheme (why `remember` runs its statement
twice in one pipeline) is explained at the top of `queries/memory.sql`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import attrs
import orjson
from attrs import validators

from pgstash.connection import Postgres, resolve
from pgstash.errors import MemoryElementError
from pgstash.jsonvalue import dumps_json
from pgstash.sql.catalogue import query
from pgstash.sql.statements import Statement
from pgstash.stores.elements import (
    ModelContextElement,
    ModelInput,
    ModelOutput,
    ToolRequest,
    ToolResponse,
    _mapping,
    _text,
    element_json,
    element_of,
    elements_of,
)
from pgstash.validators import cutoff, key_validator, positive_int

__all__ = [
    "ElementCodec",
    "ModelContextElement",
    "ModelInput",
    "ModelMemoryRecall",
    "ModelOutput",
    "PostgresModelMemory",
    "ToolRequest",
    "ToolResponse",
    "element_json",
    "element_of",
    "elements_of",
]


def _elements(values: Iterable[ModelContextElement]) -> tuple[ModelContextElement, ...]:
    return tuple(values)


@attrs.frozen(slots=True)
class ModelMemoryRecall:
    """A memory as recalled: its newest variables and its context, oldest element first.
    `created[i]` is when `context[i]` was stored: with the memory's identifier, an element's id
    (the primary key of `memories_elements`), and what `recall(before=...)` pages by."""

    identifier: str = attrs.field(validator=_text)
    variables: Mapping[str, Any] = attrs.field(validator=_mapping)
    context: tuple[Any, ...] = attrs.field(converter=_elements)
    created: tuple[datetime, ...] = attrs.field(default=(), converter=tuple, eq=False)


@runtime_checkable
class ElementCodec(Protocol):
    """How a memory stores its elements: `encode` gives the JSON object an element is stored
    as (`TypeError` for what it does not take), `decode` the element a stored object holds.
    The default codec stores pgstash's `ModelInput`/`ModelOutput` tagged by `"type"`; a
    framework passes its own so that its element JSON is stored as it is."""

    def encode(self, element: Any) -> Mapping[str, Any]: ...

    def decode(self, content: Any) -> Any: ...


def _serialised(
    identifier: str, position: int, item: object, codec: ElementCodec | None = None
) -> orjson.Fragment:
    """The item as JSON, checked now so that a bad item fails `remember` before anything is sent:
    `TypeError` for what JSON cannot hold, `ValueError` for NaN, infinities and NUL characters,
    naming the memory, the item's position and the place in it."""
    if codec is not None:
        what = f"memory {identifier!r}: item {position} ({type(item).__name__})"
        encoded = codec.encode(item)
        if not isinstance(encoded, Mapping):
            raise TypeError(f"{what}: the codec encoded it as a {type(encoded).__name__}, not a mapping")
        return orjson.Fragment(dumps_json(dict(encoded), what))
    if not isinstance(item, ModelInput | ModelOutput):
        raise TypeError(
            f"memory {identifier!r}: item {position} is a {type(item).__name__}; remember takes "
            "ModelInput and ModelOutput elements"
        )
    what = f"memory {identifier!r}: item {position} ({type(item).__name__})"
    return orjson.Fragment(dumps_json(element_json(item), what))


def _serialised_variables(identifier: str, variables: object) -> orjson.Fragment:
    if not isinstance(variables, Mapping):
        raise TypeError(f"memory {identifier!r}: variables must be a mapping, got {type(variables).__name__}")
    return orjson.Fragment(dumps_json(dict(variables), f"memory {identifier!r}: variables"))


def _limit(value: object, name: str) -> int | None:
    return None if value is None else positive_int(value, name)


def _validate_recall_limit(_: object, __: attrs.Attribute[int | None], value: int | None) -> None:
    _limit(value, "recall_limit")


def _opens_a_turn(element: ModelContextElement) -> bool:
    """Whether a context may start here: a ModelInput that answers no tool request."""
    return isinstance(element, ModelInput) and not element.tool_responses


@attrs.frozen(slots=True, eq=False)
class PostgresModelMemory:
    """Durable conversational memory under one `identifier`.

    Built without `postgres=`, it uses the current pool (`async with PostgresConnectionPool.of()`)
    at call time. Inside `postgres.transaction()` its calls join that transaction.
    """

    identifier: str = attrs.field(validator=key_validator)
    postgres: Postgres | None = attrs.field(
        default=None, kw_only=True, validator=validators.optional(validators.instance_of(Postgres))
    )
    recall_limit: int | None = attrs.field(default=None, kw_only=True, validator=_validate_recall_limit)
    codec: ElementCodec | None = attrs.field(
        default=None, kw_only=True, validator=validators.optional(validators.instance_of(ElementCodec))  # type: ignore[type-abstract]
    )
    starts: Callable[[Any], bool] | None = attrs.field(
        default=None, kw_only=True, validator=validators.optional(validators.is_callable())
    )

    def _postgres(self) -> Postgres:
        return resolve(self.postgres)

    async def remember(self, *items: ModelContextElement, variables: Mapping[str, Any] | None = None) -> None:
        """Appends `items` in order, and a variables snapshot when `variables` is given, in one
        transaction and one round trip, creating the memory if it does not exist. Items of
        concurrent calls on one memory never interleave; recall order is commit order."""
        contents = [
            _serialised(self.identifier, position, item, self.codec) for position, item in enumerate(items, 1)
        ]
        snapshot = None if variables is None else _serialised_variables(self.identifier, variables)
        await self._append(contents, snapshot)

    async def maintenance(self, variables: Mapping[str, Any] | None = None) -> None:
        """Ensures the memory exists, and stores a variables snapshot when `variables` is given."""
        snapshot = None if variables is None else _serialised_variables(self.identifier, variables)
        await self._append([], snapshot)

    async def _append(self, contents: Sequence[orjson.Fragment], variables: orjson.Fragment | None) -> None:
        # memory_remember runs first with nothing to append (create or lock the memory), then
        # with the items: one pipeline, one implicit transaction (see queries/memory.sql).
        named = query("memory_remember")
        runs = [named.arguments({"identifier": self.identifier, "contents": [], "variables": None})]
        if contents or variables is not None:
            runs.append(
                named.arguments({"identifier": self.identifier, "contents": contents, "variables": variables})
            )
        await self._postgres().run_statement(Statement(named.name, named.kind, named.sql, tuple(runs)))

    async def recall(self, limit: int | None = None, *, before: datetime | None = None) -> ModelMemoryRecall:
        """The newest variables (`{}` when none) and the last `limit` elements (else
        `recall_limit`, else all) stored before `before` (an aware datetime, an element's
        `created`: the page before it; None: the newest), oldest first, in one round trip.

        Where a context may begin: with `starts=` given, every recall is trimmed at its start
        until `starts(element)` holds (none left when it never does). Without it, a limited
        window is trimmed until it begins with a `ModelInput` without tool responses; an
        unlimited recall returns the whole history as stored."""
        window = _limit(limit, "limit") if limit is not None else self.recall_limit
        if before is not None and (not isinstance(before, datetime) or before.tzinfo is None):
            raise TypeError(f"before must be an aware datetime (an element's created), got {before!r}")
        row = await self._postgres().run(
            "memory_recall", identifier=self.identifier, element_limit=window, before=before
        )
        stored = row["context"]
        contents = [element[0] for element in stored]
        created = [element[1] for element in stored]
        context = self._decoded(contents)
        starts = self.starts
        if starts is None and window is not None and self.codec is None:
            starts = _opens_a_turn  # the default rule is about pgstash's own elements
        if starts is not None:
            opening = next((index for index, element in enumerate(context) if starts(element)), len(context))
            del context[:opening]
            del created[:opening]
        variables = row["variables"]
        return ModelMemoryRecall(
            identifier=self.identifier,
            variables={} if variables is None else variables,
            context=context,
            created=created,
        )

    def _decoded(self, contents: Sequence[Any]) -> list[Any]:
        if self.codec is None:
            return elements_of(contents, self.identifier)
        decode = self.codec.decode
        decoded = []
        for position, content in enumerate(contents, 1):
            try:
                decoded.append(decode(content))
            except Exception as error:
                raise MemoryElementError(
                    f"memory {self.identifier!r}: stored element {position} does not decode with "
                    f"{type(self.codec).__name__}: {type(error).__name__}: {error}"
                ) from error
        return decoded

    async def forget(self) -> None:
        """Deletes the memory, its elements and its variables."""
        await self._postgres().run("memory_forget", identifier=self.identifier)

    @classmethod
    async def forget_idle(cls, idle: timedelta | datetime, *, postgres: Postgres | None = None) -> int:
        """Forgets every memory with nothing remembered for `idle` (an age; or an aware datetime:
        nothing since then) and returns how many. A memory is idle since its newest element or
        variables snapshot (its creation when it holds neither); one a `remember` in flight
        writes to is kept. Runs `memory_forget_idle` twice in one transaction (lock, then
        delete; see docs/queries.md), on `postgres` or the current pool."""
        if postgres is not None and not isinstance(postgres, Postgres):
            raise TypeError(f"postgres must be a pgstash Postgres or None, got {type(postgres).__name__}")
        idle_before = cutoff(idle, "idle")
        pool = resolve(postgres)
        async with pool.transaction():
            await pool.run("memory_forget_idle", idle_before=idle_before, lock_only=True)
            forgotten: int = await pool.run("memory_forget_idle", idle_before=idle_before, lock_only=False)
        return forgotten
