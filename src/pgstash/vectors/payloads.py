"""Models to stored payloads and back: the default converter, the jsonb fields of binary COPY, and
reading a stored payload back into its model.

A payload the converter writes must read back: UUID, Decimal, date, time, datetime, Enum and paths
round-trip through the default converter; a model the converter cannot read back is refused by
`index` before anything is written, and a stored payload that does not fit its model (written by
older code, or by hand) raises `StoredDataError` naming the table and the field, never a bare cattrs
error. Payloads nest at most `MAX_PAYLOAD_DEPTH` levels (orjson's limit): deeper ones are refused
with `ValueError`.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import cattrs
import orjson

from pgstash.converters import make_converter
from pgstash.errors import StoredDataError
from pgstash.jsonvalue import dumps_json

__all__ = [
    "MAX_PAYLOAD_DEPTH", "default_converter", "jsonb_field", "metas", "payload_fields", "read_back", "reader",
]  # fmt: skip

MAX_PAYLOAD_DEPTH = 255  # orjson's nesting limit; a deeper payload raises ValueError
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")  # an escaped NUL, not an escaped backslash + "u0000"


def default_converter(converter: cattrs.Converter | None = None) -> cattrs.Converter:
    """The given converter, else pgstash's (`pgstash.converters.make_converter`): cattrs' orjson
    preset plus the standard types it writes but cannot read back (UUID, Decimal, time, paths)."""
    return make_converter() if converter is None else converter


def _json(value: Any, what: str, position: int) -> bytes:
    try:
        return dumps_json(value)
    except RecursionError:
        raise _too_deep(what, position) from None
    except TypeError as error:
        if "Recursion limit" in str(error):
            raise _too_deep(what, position) from None
        raise TypeError(
            f"{what} {position} is not JSON ({error}); nothing was written: give PostgresVectorIndex "
            "a converter= that unstructures the model to JSON values"
        ) from None
    except ValueError as error:
        raise ValueError(f"{what} {position} cannot be stored as JSON: {error}") from None


def _too_deep(what: str, position: int) -> ValueError:
    return ValueError(
        f"{what} {position} nests deeper than {MAX_PAYLOAD_DEPTH} levels, more than pgstash stores; "
        "nothing was written"
    )


def jsonb_field(value: Any, what: str, position: int) -> bytes:
    """One jsonb field of binary COPY: its length, format version 1, the JSON text."""
    text = _json(value, what, position)
    if b"\\u0000" in text and _JSON_NUL.search(text):
        raise ValueError(f"{what} {position} holds a NUL character, which PostgreSQL text cannot store")
    return (len(text) + 1).to_bytes(4, "big") + b"\x01" + text


def payload_fields(items: Sequence[Any], unstructure: Callable[[Any], Any]) -> Iterator[bytes]:
    """Each model's payload as a jsonb field, made while the COPY runs (so that the server
    stores one batch while the next is encoded). One that is not JSON ends the COPY with a
    `TypeError`, and the aborted COPY leaves nothing written."""
    for position, item in enumerate(items):
        try:
            unstructured = unstructure(item)
        except RecursionError:
            raise _too_deep("payload", position) from None
        yield jsonb_field(unstructured, "payload", position)


def metas(meta: object, count: int) -> list[bytes]:
    """The meta jsonb field of each row: one mapping for all, or one per value."""
    if meta is None:
        return [jsonb_field({}, "meta", 0)] * count
    if isinstance(meta, Mapping):
        return [jsonb_field(meta, "meta", 0)] * count
    if isinstance(meta, Sequence) and not isinstance(meta, str | bytes):
        if len(meta) != count:
            raise ValueError(f"meta has {len(meta)} mappings for {count} values; give one per value")
        return [jsonb_field(item, "meta", position) for position, item in enumerate(meta)]
    raise TypeError(f"meta is a mapping or a sequence of mappings, not {type(meta).__name__}")


def check_round_trip(converter: cattrs.Converter, model: type, item: Any, table: str) -> None:
    """Refuses, before anything is written, a model whose payload the converter writes but cannot
    read back (a field type with an unstructure hook and no structure hook)."""
    try:
        stored = orjson.loads(dumps_json(converter.unstructure(item)))
    except RecursionError:
        raise _too_deep("payload", 0) from None
    except (TypeError, ValueError):
        return  # not JSON: payload_fields says so, naming the value
    try:
        converter.structure(stored, model)
    except Exception as error:
        raise TypeError(
            f"{_unreadable(error, model, table)}; nothing was written: register a structure hook "
            "on the converter, or give PostgresVectorIndex a converter= that reads it back"
        ) from None


def read_back(converter: cattrs.Converter, payload: Any, model: type, table: str) -> Any:
    """The stored payload as a `model`; one that does not fit raises `StoredDataError` naming the
    table and the field."""
    try:
        return converter.structure(payload, model)
    except Exception as error:
        raise StoredDataError(_unreadable(error, model, table)) from error


_STRUCTURE = cattrs.BaseConverter.structure


def reader(converter: cattrs.Converter, model: type, table: str) -> Callable[[list[Any]], list[Any]]:
    """`read_back` for the payloads of one call's rows, as a list: the model's structure hook is
    looked up once (what `converter.structure` does for every payload), unless the converter has
    a `structure` of its own, or no hook for `model` (each payload then goes through
    `read_back`, which says why)."""
    if getattr(type(converter), "structure", None) is not _STRUCTURE:
        return lambda payloads: [read_back(converter, payload, model, table) for payload in payloads]
    try:
        hook = converter.get_structure_hook(model)
    except Exception:
        return lambda payloads: [read_back(converter, payload, model, table) for payload in payloads]

    def read(payloads: list[Any]) -> list[Any]:
        try:
            return [hook(payload, model) for payload in payloads]
        except Exception as error:
            raise StoredDataError(_unreadable(error, model, table)) from error

    return read


def _unreadable(error: Exception, model: type, table: str) -> str:
    where = f'a payload of table "{table}" cannot be read back as {model.__name__}'
    if isinstance(error, cattrs.StructureHandlerNotFoundError):
        fields = [name for name, kind in _field_types(model) if kind is error.type_]
        at = f" (field {', '.join(fields)})" if fields else ""
        return f"{where}{at}: the converter has no structure hook for {error.type_!r}"
    if isinstance(error, cattrs.BaseValidationError):
        return f"{where}: {'; '.join(cattrs.transform_error(error))}"
    return f"{where}: {type(error).__name__}: {error}"


def _field_types(model: type) -> list[tuple[str, Any]]:
    try:
        return list(typing.get_type_hints(model).items())
    except Exception:  # an annotation that does not resolve: no field to name
        return []
