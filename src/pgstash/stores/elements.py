"""pgstash's own memory elements: `ModelInput`, `ModelOutput` and the tool calls they carry,
frozen attrs classes stored as JSON objects tagged by `"type"` (`"model_input"`, `"model_output"`),
converted both ways by one cattrs converter with a tagged union. The default codec of
`PostgresModelMemory` (a framework passes its own: `pgstash.stores.memory.ElementCodec`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, TypeAlias

import attrs
import cattrs
from attrs import validators
from cattrs.strategies import configure_tagged_union

from pgstash.converters import problems
from pgstash.errors import MemoryElementError

__all__ = [
    "ELEMENT_TAGS",
    "ModelContextElement",
    "ModelInput",
    "ModelOutput",
    "ToolRequest",
    "ToolResponse",
    "converter",
    "element_json",
    "element_of",
    "elements_of",
]

_text = validators.instance_of(str)


def _mapping(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, dict | Mapping):  # dict first: the ABC check is slow
        raise TypeError(f"{attribute.name} must be a mapping, got {type(value).__name__}")


@attrs.frozen(slots=True)
class ToolRequest:
    """A tool call the model asked for."""

    identifier: str = attrs.field(validator=_text)
    tool: str = attrs.field(validator=_text)
    arguments: Mapping[str, Any] = attrs.field(factory=dict, validator=_mapping)


@attrs.frozen(slots=True)
class ToolResponse:
    """What a tool returned for the request with the same `identifier`."""

    identifier: str = attrs.field(validator=_text)
    tool: str = attrs.field(validator=_text)
    content: str = attrs.field(validator=_text)
    error: bool = attrs.field(default=False, validator=validators.instance_of(bool))


def _responses(value: Iterable[ToolResponse]) -> tuple[ToolResponse, ...]:
    return tuple(value)


def _requests(value: Iterable[ToolRequest]) -> tuple[ToolRequest, ...]:
    return tuple(value)


@attrs.frozen(slots=True)
class ModelInput:
    """What went into the model: user content and the responses of the tools it requested."""

    content: str = attrs.field(validator=_text)
    tool_responses: tuple[ToolResponse, ...] = attrs.field(
        default=(),
        converter=_responses,
        validator=validators.deep_iterable(validators.instance_of(ToolResponse)),
    )
    meta: Mapping[str, Any] = attrs.field(factory=dict, validator=_mapping)


@attrs.frozen(slots=True)
class ModelOutput:
    """What the model produced: content and the tools it wants called."""

    content: str = attrs.field(validator=_text)
    tool_requests: tuple[ToolRequest, ...] = attrs.field(
        default=(),
        converter=_requests,
        validator=validators.deep_iterable(validators.instance_of(ToolRequest)),
    )
    meta: Mapping[str, Any] = attrs.field(factory=dict, validator=_mapping)


ModelContextElement: TypeAlias = ModelInput | ModelOutput

ELEMENT_TAGS: Mapping[type, str] = {ModelInput: "model_input", ModelOutput: "model_output"}


def _json_object(value: Any, _: Any) -> Mapping[str, Any]:
    """Stored JSON objects (meta, arguments) are used as decoded, not copied key by key."""
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _as_decoded(value: Any, _: Any) -> Any:
    """Stored strings are used as decoded; the classes' validators check their type."""
    return value


def _is_json_object(cl: Any) -> bool:
    return bool(cl == Mapping[str, Any])


_TOOL_CALLS: Mapping[Any, type] = {
    tuple[ToolRequest, ...]: ToolRequest,
    tuple[ToolResponse, ...]: ToolResponse,
}


def _tuple_of(converter: cattrs.Converter, sequence: Any) -> Any:
    cl = _TOOL_CALLS[sequence]
    structure = converter.get_structure_hook(cl)

    def structure_tuple(values: Any, _: Any) -> tuple[Any, ...]:
        return tuple([structure(value, cl) for value in values]) if values else ()

    return structure_tuple


def _element_converter() -> cattrs.Converter:
    """cattrs for elements <-> JSON: a tagged union on `"type"`. Recall structures thousands of
    elements per second, so JSON objects and strings pass through as decoded (the attrs
    validators check them) and empty tool lists skip the generic sequence machinery."""
    converter = cattrs.Converter()
    converter.register_structure_hook(str, _as_decoded)
    converter.register_structure_hook_func(_is_json_object, _json_object)
    # A shallow copy: orjson checks the values when remember serialises the element.
    converter.register_unstructure_hook_func(_is_json_object, dict)
    converter.register_structure_hook_factory(_TOOL_CALLS.__contains__, partial(_tuple_of, converter))
    configure_tagged_union(
        ModelContextElement, converter, tag_generator=ELEMENT_TAGS.__getitem__, tag_name="type"
    )
    return converter


converter = _element_converter()
_unstructure_element = converter.get_unstructure_hook(ModelContextElement)
# The union's members by tag, for element_of and recall's hot path.
_STRUCTURE_BY_TAG = {tag: (converter.get_structure_hook(cl), cl) for cl, tag in ELEMENT_TAGS.items()}


def _one_argument(structure: Callable[[Any, Any], Any], cl: type) -> Callable[[Any], ModelContextElement]:
    return lambda content: structure(content, cl)


_FROM_JSON = {tag: _one_argument(structure, cl) for tag, (structure, cl) in _STRUCTURE_BY_TAG.items()}


def element_json(element: ModelContextElement) -> dict[str, Any]:
    """The JSON object an element is stored as, tagged by `"type"`."""
    unstructured: dict[str, Any] = _unstructure_element(element)
    return unstructured


def elements_of(contents: Sequence[Any], identifier: str = "?") -> list[ModelContextElement]:
    """The elements of stored JSON objects, in order; a bad one raises as in `element_of`."""
    try:
        return [_FROM_JSON[content["type"]](content) for content in contents]
    except Exception:
        for content in contents:  # the slow path finds the bad one and says what is wrong
            element_of(content, identifier)
        raise


def element_of(content: Any, identifier: str = "?") -> ModelContextElement:
    """The element a stored JSON object holds; `MemoryElementError` names an unknown `type` or a
    shape that does not fit."""
    tag = content.get("type") if isinstance(content, dict) else None
    member = _STRUCTURE_BY_TAG.get(tag) if isinstance(tag, str) else None
    if member is None:
        raise MemoryElementError(
            f"memory {identifier!r} holds an element of unknown type {tag!r}: pgstash reads "
            f"{sorted(_STRUCTURE_BY_TAG)}; remove or fix that row of memories_elements"
        )
    structure, cl = member
    try:
        element: ModelContextElement = structure(content, cl)
    except Exception as error:
        raise MemoryElementError(
            f"memory {identifier!r} holds a {tag!r} element that does not fit: {problems(error)}"
        ) from error
    return element
