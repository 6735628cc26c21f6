"""Chat prompts: a revision holding a list of messages instead of one text, and typed settings.

A message is `{"role": role, "content": template}` (the template as for text instructions) or
`{"placeholder": name}`, replaced at `resolve` by the messages given for `name`. The revision is
stored with kind 'chat' in `instructions_revisions`; `instructions.content` holds the messages
as JSON, so any reader of the seed's table sees all of it. `config` is stored as JSON beside it
and structured by cattrs into the type `resolve` is given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import attrs
import orjson

from pgstash.converters import make_converter, problems
from pgstash.errors import ConfigurationError, MissingArgumentError, StoredDataError
from pgstash.jsonvalue import dumps_json
from pgstash.stores.memory import ModelInput, ModelOutput
from pgstash.stores.templates import fill
from pgstash.validators import no_nul

__all__ = [
    "ChatPrompt",
    "config_json",
    "decode_messages",
    "encode_messages",
    "prompt",
    "render",
    "structure_config",
]

_C = TypeVar("_C")

converter = make_converter(strict=True)


@attrs.frozen
class ChatPrompt(Generic[_C]):
    """What `resolve` returns for a chat prompt (or with `placeholders=`/`config_type=`): the
    messages, each template filled and each placeholder replaced (a text revision is one
    `system` message), the config structured into `config_type` (the stored JSON without one;
    None when none was stored), the revision's number, and whether it was served stale."""

    messages: list[dict[str, Any]]
    config: _C | None
    revision: int | None = None
    stale: bool = False


def encode_messages(name: str, messages: Any) -> tuple[str, tuple[str, ...]]:
    """The messages of `define(..., messages=)` checked and as stored (JSON), with the templates
    to check; `TypeError`/`ValueError` naming the message otherwise."""
    if isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Sequence):
        raise TypeError(f"messages of {name!r} must be a list of dicts, got {type(messages).__name__}")
    if not messages:
        raise ValueError(f"messages of {name!r} must hold at least one message")
    stored: list[dict[str, str]] = []
    templates: list[str] = []
    placeholders: set[str] = set()
    for index, message in enumerate(messages):
        where = f"message {index} of {name!r}"
        if not isinstance(message, Mapping):
            raise TypeError(f"{where} must be a dict, got {type(message).__name__}")
        if set(message) == {"placeholder"}:
            placeholder = message["placeholder"]
            if not isinstance(placeholder, str) or not placeholder.isidentifier():
                raise ValueError(f"{where}: a placeholder is named by an identifier, got {placeholder!r}")
            if placeholder in placeholders:
                raise ValueError(f"{where}: the placeholder {placeholder!r} appears twice")
            placeholders.add(placeholder)
            stored.append({"placeholder": placeholder})
            continue
        if set(message) != {"role", "content"}:
            raise ValueError(
                f"{where} must be {{'role': ..., 'content': template}} or {{'placeholder': name}}, "
                f"got the keys {sorted(map(str, message))}"
            )
        role, content = message["role"], message["content"]
        if not isinstance(role, str) or not role or not isinstance(content, str):
            raise TypeError(f"{where}: role must be a non-empty str and content a str")
        no_nul(role, f"the role of {where}")
        no_nul(content, f"the content of {where}")
        stored.append({"role": role, "content": content})
        templates.append(content)
    return orjson.dumps(stored).decode(), tuple(templates)


def is_messages(content: str) -> bool:
    """Whether stored content is a chat prompt's messages: `[{"` starts no template `define`
    accepts (a `{` must open a `{name}` placeholder or a `{{`), so this is never a text prompt."""
    return content.startswith('[{"')


def decode_messages(name: str, content: str) -> list[dict[str, str]]:
    try:
        messages = orjson.loads(content)
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise ValueError("not a list of objects")
    except (orjson.JSONDecodeError, ValueError) as error:
        raise StoredDataError(
            f"chat instructions {name!r} are stored with messages pgstash cannot read ({error}); "
            "define() a new revision"
        ) from None
    return messages


def config_json(name: str, config: Any) -> bytes | None:
    """The config of `define(..., config=)` as JSON: an attrs or dataclass instance (unstructured
    by cattrs) or a Mapping."""
    if config is None:
        return None
    if not isinstance(config, Mapping) and not (attrs.has(type(config)) or dataclasses.is_dataclass(config)):
        raise TypeError(f"config of {name!r} must be an attrs or dataclass instance or a Mapping")
    value = config if isinstance(config, Mapping) else converter.unstructure(config)
    if not isinstance(value, Mapping):
        raise TypeError(f"config of {name!r} must be an attrs or dataclass instance or a Mapping")
    return dumps_json(dict(value), f"config of {name!r}")


def structure_config(name: str, config: Any, config_type: type[_C] | None) -> Any:
    """The stored config as `config_type` (a fresh copy of the JSON without one)."""
    if config is None:
        return None
    copy = orjson.loads(orjson.dumps(config))
    if config_type is None:
        return copy
    try:
        return converter.structure(copy, config_type)
    except Exception as error:  # cattrs' validation errors carry the fields
        raise ConfigurationError(
            f"the config of instructions {name!r} does not fit {config_type.__name__}: "
            f"{problems(error, config_type)}"
        ) from error


def _as_messages(name: str, placeholder: str, given: Any) -> list[dict[str, Any]]:
    """The messages given for a placeholder: dicts with a role (copied), or memory elements
    (`recall().context`): a `ModelInput` as `user`, a `ModelOutput` as `assistant`."""
    if isinstance(given, str | bytes | Mapping) or not isinstance(given, Sequence):
        raise TypeError(f"placeholder {placeholder!r} of {name!r} takes a list of messages")
    messages: list[dict[str, Any]] = []
    for item in given:
        if isinstance(item, ModelInput):
            messages.append({"role": "user", "content": item.content})
        elif isinstance(item, ModelOutput):
            messages.append({"role": "assistant", "content": item.content})
        elif isinstance(item, Mapping) and isinstance(item.get("role"), str):
            messages.append(dict(item))
        else:
            raise TypeError(
                f"placeholder {placeholder!r} of {name!r}: a message is a dict with a 'role', a "
                f"ModelInput or a ModelOutput, got {type(item).__name__}"
            )
    return messages


def render(
    name: str,
    messages: list[dict[str, str]],
    fill: Callable[[str], str],
    placeholders: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """The messages with each template filled (`fill`) and each placeholder replaced."""
    given = placeholders or {}
    if not isinstance(given, Mapping):
        raise TypeError(f"placeholders must be a Mapping, got {type(given).__name__}")
    rendered: list[dict[str, Any]] = []
    for message in messages:
        if "placeholder" in message:
            placeholder = message["placeholder"]
            if placeholder not in given:
                raise MissingArgumentError(name, placeholder)
            rendered.extend(_as_messages(name, placeholder, given[placeholder]))
        else:
            rendered.append({"role": message["role"], "content": fill(message["content"])})
    unknown = set(given) - {message.get("placeholder") for message in messages}
    if unknown:
        raise ValueError(f"instructions {name!r} have no placeholder {sorted(unknown)}")
    return rendered


def prompt(
    name: str,
    revision: Any,
    given: Mapping[str, Any],
    placeholders: Mapping[str, Any] | None,
    config_type: type[Any] | None,
    stale: bool,
) -> ChatPrompt[Any]:
    """`resolve`'s answer for `revision` as a chat prompt (a text revision: one system message)."""
    messages = (
        decode_messages(name, revision.content)
        if revision.kind == "chat"
        else [{"role": "system", "content": revision.content}]
    )

    def filled(template: str) -> str:
        return fill(name, revision.declaration.arguments, given, template)

    rendered = render(name, messages, filled, placeholders)
    return ChatPrompt(
        rendered, structure_config(name, revision.config, config_type), revision.revision, stale
    )
