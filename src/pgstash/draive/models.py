"""draive's models on pgstash's vector index: a converter that stores a haiway `State` (draive's
`DataModel`) as the JSON draive writes (`to_json()`: aliases as keys) and reads it back with
`from_mapping`; haiway `AttributeRequirement` trees as pgstash requirements on the keys stored;
the table name as draive derives it."""


import json
import re
from typing import Any

import cattrs
from haiway import AttributePath, AttributeRequirement, State

from pgstash.converters import make_converter
from pgstash.vectors.filters import AttributeRequirement as Requirement
from pgstash.vectors.filters import word_tokens

__all__ = ["requirement_of", "state_converter", "table_of"]

_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")


def table_of(model: type) -> str:
    """draive's table name for a model: an underscore before every capital (`Chunk` -> `chunk`,
    `HTTPDocument` -> `h_t_t_p_document`), lower case."""
    return _BOUNDARY.sub("_", model.__name__).lower()


def _is_state(cl: Any) -> bool:
    """A haiway `State` or a draive `DataModel` (0.89's is not a `State`): from_mapping, to_json."""
    return isinstance(cl, type) and (
        issubclass(cl, State) or (callable(getattr(cl, "from_mapping", None)) and hasattr(cl, "to_json"))
    )


def _structure(value: Any, cl: Any) -> Any:
    return cl.from_mapping(value)


def _unstructure(value: Any) -> Any:
    return json.loads(value.to_json())


def state_converter() -> cattrs.Converter:
    """pgstash's converter plus hooks for haiway `State` classes (draive's `DataModel`)."""
    converter = make_converter()
    converter.register_structure_hook_func(_is_state, _structure)
    converter.register_unstructure_hook_func(_is_state, _unstructure)
    return converter


def _keys(path: Any) -> tuple[str, ...]:
    """The payload keys an `AttributePath` reaches: each field's alias where it has one (what
    `to_json()` writes), through nested `State` classes."""
    if not isinstance(path, AttributePath):
        raise TypeError(f"a requirement's path is an AttributePath (Model._.field), not {path!r}")
    owner: Any = path.__root__
    keys = []
    for name in path.components:
        fields = {field.name: field for field in getattr(owner, "__FIELDS__", ())}
        field = fields.get(name)
        if field is None:
            keys.append(name)
            owner = None
            continue
        alias = getattr(field, "alias", None)
        if alias is None:  # haiway 0.48: the alias lives on the annotation
            alias = getattr(getattr(field, "annotation", None), "alias", None)
        keys.append(alias or name)
        owner = getattr(field.annotation, "base", None)
    return tuple(keys)


def requirement_of(requirement: Any) -> Requirement | None:
    """The pgstash requirement of a haiway `AttributeRequirement` (None: none). An operator
    pgstash has no translation for raises `NotImplementedError`, as draive's adapter does."""
    if requirement is None:
        return None
    operator = getattr(requirement, "operator", None)
    if operator == "and":
        return _both(requirement_of(requirement.lhs), requirement_of(requirement.rhs), "and")
    if operator == "or":
        return _both(requirement_of(requirement.lhs), requirement_of(requirement.rhs), "or")
    value: Any = getattr(requirement, "rhs", None)
    if operator == "equal":
        return Requirement.equal(_keys(requirement.lhs), value)
    if operator == "not_equal":
        return Requirement.not_equal(_keys(requirement.lhs), value)
    if operator == "contained_in":  # haiway puts the values left and the path right here
        return Requirement.contained_in(_keys(requirement.rhs), list(requirement.lhs))
    if operator == "contains":
        return Requirement.contains(_keys(requirement.lhs), value)
    if operator == "contains_any":
        return Requirement.contains_any(_keys(requirement.lhs), list(value))
    if operator == "text_match":
        return Requirement.text_match(_keys(requirement.lhs), _checked_words(value), words=True)
    raise NotImplementedError(f"requirement operator {operator!r} is not supported by pgstash.draive")


# haiway 0.35 (draive 0.89.5) checks only the first word of each whitespace-separated term ("a-cat"
# checks "a"); haiway 0.48 checks every word. The translation checks the words the installed
# haiway's own check() does, found by asking it once.
def _zipped_terms() -> bool:
    class _Probe(State):
        text: str

    requirement = AttributeRequirement.text_match("a-zz", _Probe._.text)
    return bool(requirement.check(_Probe(text="a"), raise_exception=False))


_ZIPPED_TERMS = _zipped_terms()


def _checked_words(text: str) -> str:
    if not _ZIPPED_TERMS:
        return text
    return " ".join(word for _, word in zip(text.split(), word_tokens(text), strict=False))


def _both(lhs: Requirement | None, rhs: Requirement | None, operator: str) -> Requirement:
    assert lhs is not None and rhs is not None
    return lhs & rhs if operator == "and" else lhs | rhs
