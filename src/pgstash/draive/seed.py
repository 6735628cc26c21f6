"""The seed's adapters (draive 0.89.x, `draive.postgres` as shared/spec/seed.md describes it) on
pgstash's stores, in the seed's tables and with the rows draive's own adapters write:
configurations as JSON snapshots, instructions with draive's raw `format_map` templates, memory
elements as draive's element JSON (`to_json()`, tagged by `"type"`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from draive import ConfigurationRepository, InstructionsDeclaration, InstructionsRepository, Meta
from draive.models import ModelMemory, ModelMemoryRecall
from draive.models.instructions.types import InstructionsArgumentDeclaration
from draive.models.types import ModelInput, ModelOutput

from pgstash.draive.pool import current_postgres, repository_on_scope
from pgstash.stores import instructions as _instructions
from pgstash.stores.configurations import PostgresConfigurationRepository as _Configurations
from pgstash.stores.instructions import PostgresInstructionsRepository as _Instructions
from pgstash.stores.memory import PostgresModelMemory as _Memory

__all__ = [
    "DraiveElements",
    "PostgresConfigurationRepository",
    "PostgresInstructionsRepository",
    "PostgresModelMemory",
]


def PostgresConfigurationRepository(
    cache_limit: int = 32, cache_expiration: float = 600.0
) -> ConfigurationRepository:
    """draive's `ConfigurationRepository` on pgstash's configurations (NOTIFY-invalidated cache)."""
    store = repository_on_scope(
        lambda postgres: _Configurations(postgres, cache_limit=cache_limit, cache_expiration=cache_expiration)
    )

    async def listing(**extra: Any) -> Sequence[str]:
        return tuple(await store().configurations())

    async def loading(identifier: str, **extra: Any) -> Mapping[str, Any] | None:
        loaded: Mapping[str, Any] | None = await store().load_raw(identifier)
        return loaded

    async def defining(identifier: str, value: Mapping[str, Any], **extra: Any) -> None:
        await store().define(json.loads(json.dumps(value)), identifier)

    async def removing(identifier: str, **extra: Any) -> None:
        await store().remove(identifier)

    return ConfigurationRepository(listing=listing, loading=loading, defining=defining, removing=removing)


def declaration_to_draive(declaration: _instructions.InstructionsDeclaration) -> InstructionsDeclaration:
    return InstructionsDeclaration(
        name=declaration.name,
        description=declaration.description or "",
        arguments=tuple(
            InstructionsArgumentDeclaration(
                name=argument.name, description=argument.description, required=argument.required
            )
            for argument in declaration.arguments
        ),
        meta=Meta.of(json.loads(json.dumps(dict(declaration.meta)))),
    )


def declaration_of_draive(declaration: Any) -> _instructions.InstructionsDeclaration:
    return _instructions.InstructionsDeclaration(
        name=declaration.name,
        description=declaration.description or None,
        arguments=tuple(
            _instructions.InstructionsArgumentDeclaration(
                name=argument.name, description=argument.description, required=argument.required
            )
            for argument in declaration.arguments
        ),
        meta=json.loads(declaration.meta.to_json()),
    )


def PostgresInstructionsRepository(
    cache_limit: int = 32, cache_expiration: float = 600.0
) -> InstructionsRepository:
    """draive's `InstructionsRepository` on pgstash's instructions: content is stored raw
    (`syntax="raw"`), as draive's own adapter stores it; draive fills its placeholders."""
    store = repository_on_scope(
        lambda postgres: _Instructions(postgres, cache_limit=cache_limit, cache_expiration=cache_expiration)
    )

    async def listing(**extra: Any) -> Sequence[InstructionsDeclaration]:
        return tuple(declaration_to_draive(each) for each in await store().available_instructions())

    async def loading(name: str, meta: Any, **extra: Any) -> str | None:
        loaded: str | None = await store().load(name)
        return loaded

    async def defining(declaration: InstructionsDeclaration, content: str, **extra: Any) -> None:
        await store().define(declaration_of_draive(declaration), content, syntax="raw")

    async def removing(name: str, meta: Any, **extra: Any) -> None:
        await store().remove(name)

    return InstructionsRepository(listing=listing, loading=loading, defining=defining, removing=removing)


class DraiveElements:
    """The memory codec for draive's context elements: stored as `to_json()` (tagged by
    `"type"`: `model_input`, `model_output`), read with `from_mapping`."""

    def encode(self, element: Any) -> Mapping[str, Any]:
        if not isinstance(element, ModelInput | ModelOutput):
            raise TypeError(
                "remember takes draive's ModelInput and ModelOutput elements, "
                f"got {type(element).__qualname__}"
            )
        encoded: Mapping[str, Any] = json.loads(element.to_json())
        return encoded

    def decode(self, content: Any) -> Any:
        kind = content.get("type") if isinstance(content, Mapping) else None
        if kind == "model_input":
            return ModelInput.from_mapping(content)
        if kind == "model_output":
            return ModelOutput.from_mapping(content)
        raise ValueError(f"Invalid model context element: {kind}")


def context_starts(element: Any) -> bool:
    """draive's rule for where a recalled context may begin: an input without tool responses."""
    return isinstance(element, ModelInput) and not element.contains_tools


def PostgresModelMemory(identifier: str, *, recall_limit: int | None = None) -> ModelMemory:
    """draive's `ModelMemory` on pgstash's memory under `identifier`, in the seed's tables."""
    if recall_limit is not None and recall_limit <= 0:
        raise ValueError(f"recall_limit must be positive, got {recall_limit!r}")
    codec = DraiveElements()

    def memory() -> _Memory:
        return _Memory(identifier, postgres=current_postgres(), codec=codec, starts=context_starts)

    async def recall(**extra: Any) -> ModelMemoryRecall:
        recalled = await memory().recall(extra.get("limit", recall_limit))
        return ModelMemoryRecall(context=recalled.context, variables=dict(recalled.variables))

    async def remember(*elements: Any, variables: Mapping[str, Any] | None = None, **extra: Any) -> None:
        if not elements and variables is None:
            return
        await memory().remember(*elements, variables=variables)

    async def maintenance(variables: Mapping[str, Any] | None = None, **extra: Any) -> None:
        await memory().maintenance(variables)

    return ModelMemory(recall=recall, remember=remember, maintenance=maintenance)
