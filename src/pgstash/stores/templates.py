"""The template grammar of instructions: text, `{name}` placeholders (`name` a Python
identifier) and the escapes `{{` and `}}`; nothing else. `define` refuses anything else with the
position (`parse_template`); `resolve` fills the placeholders from its own parse of the stored
text (`fill`), never with `str.format`, so no stored text can reach attributes, indexes,
conversions or format specs of the arguments."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from pgstash.errors import MissingArgumentError, StoredDataError

__all__ = ["fill", "parse_template"]


def parse_template(template: str) -> tuple[str | tuple[str], ...]:
    """The template as parts: text (str) and placeholders (a 1-tuple holding the name).
    `ValueError` names the position (0-based) of anything but text, `{name}`, `{{` and `}}`."""
    parts: list[str | tuple[str]] = []
    text: list[str] = []
    position, end = 0, len(template)
    while position < end:
        brace = _next_brace(template, position)
        text.append(template[position:brace])
        if brace == end:
            break
        if template.startswith(("{{", "}}"), brace):
            text.append(template[brace])
            position = brace + 2
            continue
        if template[brace] == "}":
            raise ValueError(f"a single '}}' at position {brace}: write '}}}}' for a literal brace")
        close = template.find("}", brace + 1)
        name = template[brace + 1 : close] if close >= 0 else template[brace + 1 :]
        if close < 0:
            raise ValueError(f"the '{{' at position {brace} is not closed: write '{{{{' for a literal brace")
        if not name.isidentifier():
            raise ValueError(
                f"placeholder {{{name}}} at position {brace}: only {{name}} placeholders (a Python "
                "identifier) are allowed, no index, attribute, conversion or format spec"
            )
        if text:
            parts.append("".join(text))
            text = []
        parts.append((name,))
        position = close + 1
    if text:
        parts.append("".join(text))
    return tuple(parts)


def _next_brace(template: str, position: int) -> int:
    found = [index for index in (template.find("{", position), template.find("}", position)) if index >= 0]
    return min(found) if found else len(template)


@functools.lru_cache(maxsize=512)
def _stored_template(name: str, content: str) -> tuple[str | tuple[str], ...]:
    """The parse of a stored template; a row no `define` would have written raises."""
    try:
        return parse_template(content)
    except ValueError as error:
        raise StoredDataError(
            f"instructions {name!r} are stored with a template pgstash does not resolve ({error}); "
            "define() a new revision"
        ) from None


def fill(key: str, arguments: Sequence[Any], given: Mapping[str, Any], template: str) -> str:
    """`template` (stored under `key`) with its placeholders filled from `given`: a declared
    optional argument (of `arguments`, the declaration's) not given is "", a declared required
    one or any other placeholder not given raises `MissingArgumentError`."""
    optional = set()
    for argument in arguments:
        if argument.name not in given:
            if argument.required:
                raise MissingArgumentError(key, argument.name)
            optional.add(argument.name)
    pieces = []
    for part in _stored_template(key, template):
        if isinstance(part, str):
            pieces.append(part)
        elif part[0] in given:
            pieces.append(str(given[part[0]]))
        elif part[0] not in optional:
            raise MissingArgumentError(key, part[0])
    return "".join(pieces)
