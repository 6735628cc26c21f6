"""Issue 12 #2: nothing a caller does to a value a store returned changes what the next call
returns. Frozen classes whose fields are all immutable are shared (that keeps cached `load`
fast, see `make bench`); any other value is structured or copied afresh per call."""

from __future__ import annotations

import dataclasses

import attrs

from pgstash import (
    InstructionsDeclaration,
    Postgres,
    PostgresConfigurationRepository,
    PostgresInstructionsRepository,
)
from tests.support.caches import drained


@attrs.frozen
class Agent:
    name: str
    tools: list[str]
    limits: dict[str, int]


@dataclasses.dataclass(frozen=True)
class FrozenDataAgent:
    name: str
    tools: list[str]


@dataclasses.dataclass
class MutableAgent:
    name: str
    tools: list[str]


@attrs.frozen
class Model:
    name: str
    temperature: float


@attrs.frozen
class Sealed:
    name: str
    tools: tuple[str, ...]
    tags: frozenset[str]
    model: Model
    fallback: Model | None = None


async def test_changing_a_loaded_frozen_class_with_a_list_never_changes_the_next_load(
    postgres: Postgres,
) -> None:
    repository = PostgresConfigurationRepository(postgres)
    await repository.define(Agent("a", ["search"], {"calls": 1}))
    first = await repository.load(Agent)
    assert first is not None
    first.tools.append("shell")
    first.limits["calls"] = 99
    assert await repository.load(Agent) == Agent("a", ["search"], {"calls": 1})


async def test_changing_a_loaded_dataclass_never_changes_the_next_load(postgres: Postgres) -> None:
    repository = PostgresConfigurationRepository(postgres)
    await repository.define(FrozenDataAgent("a", ["search"]))
    await repository.define(MutableAgent("m", ["search"]))
    frozen = await repository.load(FrozenDataAgent)
    mutable = await repository.load(MutableAgent)
    assert frozen is not None and mutable is not None
    frozen.tools.append("shell")
    mutable.tools.append("shell")
    mutable.name = "changed"
    assert await repository.load(FrozenDataAgent) == FrozenDataAgent("a", ["search"])
    assert await repository.load(MutableAgent) == MutableAgent("m", ["search"])


async def test_a_frozen_class_of_immutable_fields_is_shared_from_the_cache(postgres: Postgres) -> None:
    repository = PostgresConfigurationRepository(postgres)
    sealed = Sealed("s", ("search",), frozenset({"a", "b"}), Model("m", 0.5))
    await repository.define(sealed)
    await drained(postgres)  # listening, and the define's own NOTIFY has come back
    first = await repository.load(Sealed)
    assert first == sealed
    assert await repository.load(Sealed) is first  # one instance per cached snapshot


async def test_changing_the_meta_of_listed_instructions_never_changes_the_next_listing(
    postgres: Postgres,
) -> None:
    repository = PostgresInstructionsRepository(postgres)
    meta = {"tags": ["support"], "owner": {"team": "core"}}
    await repository.define(InstructionsDeclaration("greeting", meta=meta), "Hello")
    (listed,) = await repository.available_instructions()
    listed.meta["tags"].append("changed")
    listed.meta["owner"]["team"] = "changed"
    (again,) = await repository.available_instructions()
    assert again.meta == {"tags": ["support"], "owner": {"team": "core"}}
    assert meta == {"tags": ["support"], "owner": {"team": "core"}}  # the caller's dict untouched
