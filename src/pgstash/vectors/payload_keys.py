"""Which payload key the converter writes for each attrs field of a model.

An `AttributeRequirement` on `attrs.fields(Model).identifier` must filter on the key the vector
index's converter really writes: `"id"` when the field has `alias="id"` and the converter uses
aliases (`cattrs.Converter(use_alias=True)`, cattrs 25.2+), or whatever a `rename=` override says.
cattrs attaches a generated hook's overrides (renames included) to the hook as `overrides`
(documented on `make_dict_unstructure_fn`); that is what is read here. A hand-written unstructure
hook says nothing: its fields map to their names, or to aliases when the converter uses aliases.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import attrs

from pgstash.vectors.filters import KeyOf

__all__ = ["payload_key_of"]

Field = attrs.Attribute


def payload_key_of(converter: Any, model: type) -> KeyOf:
    """A `key_of` for requirements on `model`'s payload: each attrs field of `model` (and of the
    attrs classes its fields hold) to the key `converter` writes for it, read from the cattrs
    unstructure hook's `overrides` (`rename`, aliases under `use_alias=True`). A field the
    converter omits, or that belongs to no class of the model, raises `ValueError`."""
    keys: dict[Field[Any], str] = {}
    omitted: set[str] = set()
    _collect(converter, model, keys, omitted, set())
    by_name = {field.name: key for field, key in keys.items() if field in _fields(model)}

    def key_of(field: Field[Any]) -> str:
        if field.name in omitted and field not in keys:
            raise ValueError(f"{model.__name__}: the converter does not write field {field.name!r}")
        key = keys.get(field)
        if key is None:
            key = by_name.get(field.name)
        if key is None:
            raise ValueError(
                f"{field.name!r} is not a field of {model.__name__} nor of an attrs class it holds"
            )
        return key

    return key_of


def _fields(cls: type) -> tuple[Field[Any], ...]:
    return tuple(attrs.fields(cls)) if attrs.has(cls) else ()


def _collect(
    converter: Any, cls: type, keys: dict[Field[Any], str], omitted: set[str], seen: set[type]
) -> None:
    if cls in seen or not attrs.has(cls):
        return
    seen.add(cls)
    with contextlib.suppress(Exception):  # string annotations that cannot be resolved stay strings
        attrs.resolve_types(cls)
    hook = converter.get_unstructure_hook(cls) if hasattr(converter, "get_unstructure_hook") else None
    overrides = getattr(hook, "overrides", None)
    use_alias = bool(getattr(converter, "use_alias", False))
    for field in attrs.fields(cls):
        override = overrides.get(field.name) if isinstance(overrides, Mapping) else None
        if override is not None and getattr(override, "omit", None):
            omitted.add(field.name)
            continue
        rename = getattr(override, "rename", None)
        keys[field] = rename or (field.alias if use_alias and field.alias else field.name)
        if isinstance(field.type, type):  # a nested attrs class (after resolve_types)
            _collect(converter, field.type, keys, omitted, seen)
