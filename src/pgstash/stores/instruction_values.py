"""The values of the instructions store: `InstructionsDeclaration` (a name, what it is for, the
arguments its `{placeholders}` take), `InstructionsRevision` (one stored revision), and how a
stored row becomes them. `PostgresInstructionsRepository` (`instructions.py`) reads and writes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Any

import attrs
import orjson

from pgstash.errors import StoredDataError
from pgstash.stores.cache import immutable
from pgstash.validators import key_validator, no_nul

__all__ = ["InstructionsArgumentDeclaration", "InstructionsDeclaration", "InstructionsRevision"]


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
    """One stored revision: its declaration, its content and when it was stored; with
    schema/0010 also its number (per name, from 1; None for a row another writer stored that
    no define has numbered yet), its commit message, its author (the session's role), its kind
    ("text", or "chat": `content` holds the messages as JSON) and its config (JSON)."""

    declaration: InstructionsDeclaration
    content: str
    created: datetime
    revision: int | None = None
    message: str | None = None
    author: str | None = None
    kind: str = "text"
    config: Any = None


def _fresh(declaration: InstructionsDeclaration) -> InstructionsDeclaration:
    """The cached declaration itself when nothing about it can change, else one with its own copy
    of `meta` (nested lists and dicts a caller could change)."""
    if immutable(declaration):
        return declaration
    return attrs.evolve(declaration, meta=orjson.loads(orjson.dumps(dict(declaration.meta))))


def _revision(row: Mapping[str, Any]) -> InstructionsRevision:
    if "revision" not in row:  # the seed's table alone
        return InstructionsRevision(_declaration(row), row["content"], row["created"])
    return InstructionsRevision(
        _declaration(row),
        row["content"],
        row["created"],
        row["revision"],
        row["message"],
        row["author"],
        row["kind"] or "text",
        row["config"],
    )


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
