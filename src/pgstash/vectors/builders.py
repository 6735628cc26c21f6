"""A model built from a stored payload without its cattrs hook's bookkeeping, where that gives the
very object the hook would.

cattrs' generated hook for an attrs class gathers each field's value into a dict, keeps a list of
errors with a note per field, then calls the class with `**` that dict, whose frozen `__init__`
sets each slot through `object.__setattr__`: about twice the work of setting the slots. A search
builds ten models or more per call (issue 22 item 7), so `plain_builder` makes, once per hook, a
function that does only the work: `object.__new__`, then each slot set from the field's
structuring of `payload[key]`, exactly the call the hook makes for it. It does so only when that
is provably the hook's result:

- the hook is the one the converter generates for the class by default (`Converter.
  gen_structure_attrs_fromdict`: the same code and the same bound objects), not one registered
  for it, without `forbid_extra_keys`;
- each field's structuring is cattrs' plain call of a builtin scalar type (`str`, `int`, `float`,
  `bool`: what the hook itself calls as `type(value)`);
- the class is a slotted attrs class whose `__init__` only sets its fields: attrs' own, no
  validators, converters, `__attrs_pre_init__` / `__attrs_post_init__`, no cached hash, no
  `__new__` or `__setattr__` of its own.

Anything else (another model, a payload missing a field that has a default, any exception) goes
through the hook itself, which then returns the same object or raises the same error
(`tests/test_builders.py` checks both, with hypothesis).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import attrs
import cattrs

__all__ = ["plain_builder"]

_SCALARS = (str, int, float, bool)
_MOST_BUILDERS = 256
# by hook: its builder, or None (none fits)
_BUILDERS: dict[Any, Callable[[list[Any]], list[Any]] | None] = {}


def plain_builder(
    converter: cattrs.Converter, model: type, hook: Any
) -> Callable[[list[Any]], list[Any]] | None:
    """A function building a `model` from each of a list of payloads as `hook` (the converter's
    structure hook for `model`) would, for the payloads it fits (any exception: ask `hook`);
    None when none fits."""
    try:
        return _BUILDERS[hook]
    except KeyError:
        pass
    except TypeError:  # a hook that is not hashable
        return None
    try:
        made = _made(converter, model, hook)
    except Exception:  # a class or converter this cannot read: the hook alone
        made = None
    if len(_BUILDERS) >= _MOST_BUILDERS:
        _BUILDERS.clear()
    _BUILDERS[hook] = made
    return made


def _made(converter: cattrs.Converter, model: type, hook: Any) -> Callable[[list[Any]], list[Any]] | None:
    if _plain_fields(model) is None or getattr(converter, "forbid_extra_keys", True):
        return None
    generate = getattr(converter, "gen_structure_attrs_fromdict", None)
    if generate is None or not _same_function(hook, generate(model)):
        return None
    fields = _plain_fields(model)  # again: generating resolved any string annotations
    if fields is None:
        return None
    parts: dict[str, Any] = {"__new": object.__new__, "__cl": model, "__type_of": type}
    lines = []
    use_alias = getattr(converter, "use_alias", False)
    for place, field in enumerate(fields):
        kind = field.type
        if (
            kind not in _SCALARS
            or hook.__globals__.get(f"__c_structure_{field.name}") is not kind
            or converter.get_structure_hook(kind) != converter._structure_call
        ):
            return None
        slot = _slot(model, field.name)
        if slot is None:
            return None
        key = field.alias if use_alias else field.name
        parts[f"__set{place}"], parts[f"__type{place}"] = slot.__set__, kind
        # `kind(value)` is `value` itself when it is exactly of that type: the call only when not
        kind_name = f"__type{place}"
        lines += [
            f"        value = payload[{key!r}]",
            f"        __set{place}(made, value if __type_of(value) is {kind_name} else {kind_name}(value))",
        ]
    arguments = ", ".join(f"{name}={name}" for name in parts)
    source = "\n".join([
        f"def build(payloads, {arguments}):",
        "    built = []",
        "    append = built.append",
        "    for payload in payloads:",
        "        made = __new(__cl)",
        *lines,
        "        append(made)",
        "    return built",
    ])  # fmt: skip
    scope: dict[str, Any] = dict(parts)
    exec(compile(source, f"<pgstash builder {model.__module__}.{model.__qualname__}>", "exec"), scope)
    built: Callable[[list[Any]], list[Any]] = scope["build"]
    return built


def _plain_fields(model: type) -> tuple[attrs.Attribute[Any], ...] | None:
    """The fields of a slotted attrs class whose `__init__` only sets them; None for another class."""
    if not isinstance(model, type) or not attrs.has(model) or "__slots__" not in model.__dict__:
        return None
    init = model.__dict__.get("__init__")
    code = getattr(init, "__code__", None)
    if code is None or not code.co_filename.startswith("<attrs generated"):
        return None
    if model.__new__ is not object.__new__ or model.__setattr__ not in (object.__setattr__, _FROZEN_SETATTR):
        return None
    if hasattr(model, "__attrs_pre_init__") or hasattr(model, "__attrs_post_init__"):
        return None
    fields: tuple[attrs.Attribute[Any], ...] = attrs.fields(model)
    if any(not field.init or field.validator is not None or field.converter is not None for field in fields):
        return None
    slots = {
        name
        for klass in model.__mro__
        for name in ((klass.__dict__.get("__slots__", ())) if klass is not object else ())
    }
    if slots - {"__weakref__"} != {field.name for field in fields}:
        return None  # a slot __init__ sets beyond the fields (attrs' cached hash)
    return fields


def _frozen_setattr() -> Any:
    """attrs' `__setattr__` of a frozen class: it refuses, and `__init__` sets through `object`."""

    @attrs.frozen(slots=True)
    class Probe:
        value: int

    return Probe.__setattr__


_FROZEN_SETATTR = _frozen_setattr()


def _slot(model: type, name: str) -> Any:
    """The member descriptor of slot `name`, from the class that declares it."""
    for klass in model.__mro__:
        found = klass.__dict__.get(name)
        if found is not None:
            return found if isinstance(found, types.MemberDescriptorType) else None
    return None


def _same_function(hook: Any, expected: Any) -> bool:
    """Whether `hook` runs the same code on the same objects as `expected` (freshly generated)."""
    try:
        code, other = hook.__code__, expected.__code__
    except AttributeError:
        return False
    defaults, others = hook.__defaults__ or (), expected.__defaults__ or ()
    return (
        code.co_code == other.co_code
        and code.co_consts == other.co_consts
        and code.co_names == other.co_names
        and code.co_varnames == other.co_varnames
        and len(defaults) == len(others)
        and all(mine is theirs for mine, theirs in zip(defaults, others, strict=True))
        and (hook.__kwdefaults__ or {}).keys() == (expected.__kwdefaults__ or {}).keys()
        and all(hook.__kwdefaults__[name] is value for name, value in (expected.__kwdefaults__ or {}).items())
    )
