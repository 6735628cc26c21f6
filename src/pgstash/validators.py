"""The checks every store applies to what a caller gives it, written once.

`require_key` is the one check for every key pgstash stores: configuration identifiers,
instructions names, memory identifiers and variable keys. `MAX_KEY_LENGTH` is the longest key in
characters: at most 4 bytes each in UTF-8 (2,048 bytes, under the 2,704-byte B-tree row limit of
a primary key that also holds a timestamp), and at most 6 bytes each once escaped in the JSON of
an invalidation NOTIFY (3,072 bytes plus the envelope, under PostgreSQL's 8,000-byte payload
limit). So any key up to this length (quotes, backslashes and control characters included)
is stored, invalidated and removed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

__all__ = [
    "MAX_KEY_LENGTH", "cutoff", "key_validator", "no_nul", "positive_int", "require_key", "surrogate_at",
]  # fmt: skip

MAX_KEY_LENGTH = 512


def no_nul(value: str, what: str) -> str:
    """`value`, unless it holds a NUL character or a lone surrogate (PostgreSQL text and jsonb
    cannot hold either; the driver cannot even encode a surrogate, and the server answered
    22000): `ValueError` naming `what` and the position. Plain ASCII costs one scan."""
    if "\x00" in value:
        raise ValueError(
            f"{what} must not contain NUL characters (PostgreSQL text cannot hold them), "
            f"found one at position {value.index(chr(0))}"
        )
    if not value.isascii():
        at = surrogate_at(value)
        if at is not None:
            raise ValueError(
                f"{what} must be Unicode text: it holds a lone surrogate (U+{ord(value[at]):04X}) at "
                f"position {at}, which UTF-8 and PostgreSQL text cannot hold (decode the bytes it "
                "came from with errors='replace')"
            )
    return value


def surrogate_at(value: str) -> int | None:
    """The position of the first lone surrogate in `value` (U+D800 to U+DFFF, what
    `surrogateescape` decoding leaves), else None."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        return error.start
    return None


def require_key(value: object, what: str, max_length: int = MAX_KEY_LENGTH) -> str:
    """`value` if it is a non-empty str of at most `max_length` characters without NUL or lone
    surrogates, else
    `TypeError`/`ValueError` naming `what`. A plain ASCII str (every store call's key) is taken
    after one test, without `no_nul`'s call."""
    if type(value) is str and 0 < len(value) <= max_length and value.isascii() and "\x00" not in value:
        return value
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > max_length:
        raise ValueError(f"{what} must be at most {max_length} characters, got {len(value)}")
    return no_nul(value, what)


def key_validator(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    """`require_key` as an attrs validator, naming the field."""
    require_key(value, attribute.alias or attribute.name)


def positive_int(value: object, what: str, most: int | None = None, *, spans: bool = False) -> int:
    """`value` if it is an int (not a bool) >= 1 and, when `most` is given, <= `most`; else
    `ValueError` naming `what`: "must be a positive int" / "must be at most `most`", or with
    `spans` (the vector index's wording) "must be an integer from 1 to `most`" either way. The
    one positive-integer check of the package."""
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and 1 <= value
        and (most is None or value <= most)
    ):
        return value
    if spans and most is not None:
        raise ValueError(f"{what} must be an integer from 1 to {most:,}, got {value!r}")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    raise ValueError(f"{what} must be at most {most}, got {value!r}")


def cutoff(value: object, what: str) -> datetime:
    """The moment `value` names: an aware datetime as it is, or a positive timedelta as that long
    before now (this process's clock); else `TypeError`/`ValueError` naming `what`."""
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise ValueError(f"{what} must be a positive timedelta (an age), got {value!r}")
        try:
            return datetime.now(UTC) - value
        except OverflowError:
            raise ValueError(f"{what} reaches before the year 1: {value!r}") from None
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise ValueError(f"{what} must be a timezone-aware datetime (tzinfo=UTC), got {value!r}")
        return value
    kind = type(value).__name__
    raise TypeError(f"{what} must be a datetime.timedelta (an age) or an aware datetime, got {kind}")
