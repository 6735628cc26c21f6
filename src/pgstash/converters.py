"""The cattrs converters pgstash stores objects with, and the checks that keep them honest.

`make_converter()` is cattrs' orjson preconfiguration plus hooks for the types a caller's classes
commonly hold that it would write but not read back: `uuid.UUID` (its string), `decimal.Decimal`
(its string, exact), `datetime.time` (ISO 8601), every `pathlib` path (its string); `datetime`,
`date`, `Enum` and `bytes` already round-trip there. `strict=True` also takes str, int, float,
bool and JSON arrays as they are where cattrs would coerce (`str(5)`, `int("7")`, a string
iterated into its characters) and so hide a wrong stored value.

`readable(converter, unstructured, cl, what)` structures a value back before it is stored, so a
type the converter cannot read back is refused with `TypeError` before anything is written;
`problems(error)` says what a structuring error found, field by field.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import pathlib
import typing
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import cattrs
import orjson
from cattrs.cols import (
    homogenous_tuple_structure_factory,
    is_mutable_sequence,
    is_sequence,
    list_structure_factory,
)
from cattrs.preconf.orjson import make_converter as _orjson_converter

__all__ = ["make_converter", "problems", "readable"]


def _from_string(parse: Callable[[Any, Any], Any], accepted: tuple[type, ...] = (str,)) -> Any:
    """A structure hook that reads the type from its JSON string (and `accepted` others)."""

    def structure(value: Any, cl: Any) -> Any:
        if isinstance(value, accepted) and not isinstance(value, bool):
            return parse(cl, value)
        raise TypeError(f"expected {cl.__name__} as a JSON string, got {type(value).__name__} {value!r}")

    return structure


def _decimal(cl: Any, value: Any) -> Any:
    try:
        return cl(str(value))
    except decimal.InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal number") from None


def _is_path(cl: Any) -> bool:
    return isinstance(cl, type) and issubclass(cl, pathlib.PurePath)


def _strict(expected: type, accepted: tuple[type, ...]) -> Any:
    """A structure hook that takes JSON values of the expected kind as they are."""

    def structure(value: Any, _: Any) -> Any:
        if type(value) in accepted:
            return expected(value)
        raise TypeError(f"expected {expected.__name__}, got {type(value).__name__} {value!r}")

    return structure


def _array(factory: Any) -> Any:
    """A sequence hook factory whose hooks take JSON arrays only."""

    def make(sequence_type: Any, made: cattrs.Converter) -> Any:
        structure = factory(sequence_type, made)

        def array(value: Any, target: Any) -> Any:
            if not isinstance(value, list | tuple):
                raise TypeError(f"expected a JSON array, got {type(value).__name__} {value!r}")
            return structure(value, target)

        return array

    return make


def _is_fixed_tuple(value: Any) -> bool:
    arguments = typing.get_args(value)
    return typing.get_origin(value) is tuple and bool(arguments) and arguments[-1] is not Ellipsis


def make_converter(*, strict: bool = False) -> cattrs.Converter:
    """A new converter: cattrs' orjson preconfiguration with pgstash's round-trip hooks (and, when
    `strict`, no coercion of JSON scalars and arrays). Every value it unstructures is JSON that
    `orjson` encodes and that it structures back into an equal value."""
    made = _orjson_converter(detailed_validation=True)
    made.register_unstructure_hook(uuid.UUID, str)
    made.register_structure_hook(uuid.UUID, _from_string(lambda cl, value: cl(value)))
    made.register_unstructure_hook(decimal.Decimal, str)
    made.register_structure_hook(decimal.Decimal, _from_string(_decimal, (str, int, float)))
    made.register_unstructure_hook(datetime.time, datetime.time.isoformat)
    made.register_structure_hook(datetime.time, _from_string(lambda cl, value: cl.fromisoformat(value)))
    made.register_unstructure_hook_func(_is_path, str)
    made.register_structure_hook_func(_is_path, _from_string(lambda cl, value: cl(value)))
    if strict:
        made.register_structure_hook(str, _strict(str, (str,)))
        made.register_structure_hook(int, _strict(int, (int,)))
        made.register_structure_hook(float, _strict(float, (float, int)))
        made.register_structure_hook(bool, _strict(bool, (bool,)))
        # the latest registration wins: the general case first
        made.register_structure_hook_factory(is_sequence, _array(homogenous_tuple_structure_factory))
        made.register_structure_hook_factory(is_mutable_sequence, _array(list_structure_factory))
        made.register_structure_hook_factory(
            _is_fixed_tuple, _array(lambda tuple_type, made: made.gen_structure_hetero_tuple(tuple_type))
        )
    return made


def _described(error: BaseException, _: Any) -> str:
    if isinstance(error, KeyError):
        return "required field missing"
    if isinstance(error, cattrs.StructureHandlerNotFoundError):
        return f"no structure hook for {error.type_!r}"
    return str(error.args[0]) if error.args else type(error).__name__


def problems(error: BaseException, cl: type | None = None, converter: cattrs.Converter | None = None) -> str:
    """What a structuring error found, field by field (`... @ $.field`). A type the converter has
    no hook for (or cannot make one for: a union of classes it cannot tell apart) fails before
    any field is read: with `converter`, the field paths whose hook it cannot make are named
    (`$.holder.choice`, nested classes walked); without, the fields of `cl` of the missing type."""
    if isinstance(error, cattrs.BaseValidationError):
        return "; ".join(cattrs.transform_error(error, format_exception=_described))
    if cl is not None:
        fields = [] if converter is None else _unhooked(converter, cl, "$", 0)
        if not fields and isinstance(error, cattrs.StructureHandlerNotFoundError):
            fields = [f"$.{name}" for name, hint in _hints(cl).items() if _mentions(hint, error.type_)]
        if fields:
            return f"{_described(error, None)} @ {', '.join(fields)}"
    return _described(error, None)


def _is_class(hint: Any) -> bool:
    return isinstance(hint, type) and (attrs.has(hint) or dataclasses.is_dataclass(hint))


def _unhooked(converter: cattrs.Converter, cl: Any, path: str, depth: int) -> list[str]:
    """The paths of `cl`'s fields (an attrs class or dataclass) whose structure hook `converter`
    cannot make, the innermost of nested classes (at most 16 levels)."""
    if not _is_class(cl) or depth > 16:
        return []
    found: list[str] = []
    for name, hint in _hints(cl).items():
        try:
            converter.get_structure_hook(hint)
        except Exception:
            found.extend(_unhooked(converter, hint, f"{path}.{name}", depth + 1) or [f"{path}.{name}"])
    return found


def _hints(cl: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cl)
    except Exception:  # unresolvable annotations: name no field rather than fail here
        return {}


def _mentions(hint: Any, wanted: Any) -> bool:
    return hint == wanted or any(_mentions(argument, wanted) for argument in typing.get_args(hint))


def readable(converter: cattrs.Converter, data: bytes, cl: type, what: str) -> None:
    """Structures the JSON `data` (what `converter` unstructured from a `cl`) back into `cl`;
    `TypeError` naming `what` and the fields when it cannot, so nothing unreadable is stored."""
    try:
        converter.structure(orjson.loads(data), cl)
    except Exception as error:
        raise TypeError(
            f"{what} could not be read back as {cl.__qualname__}: {problems(error, cl, converter)}; register "
            "a structure hook for the type on the converter, or use a type it reads"
        ) from None
