"""`diff(name, a, b)`: two revisions of instructions as a unified diff of what a reviewer reads:
the description, the declared arguments, the meta, the config and the content (for a chat
prompt, one block per message)."""

from __future__ import annotations

import difflib
from typing import Any

import orjson

__all__ = ["unified"]


def _lines(revision: Any) -> list[str]:
    declaration = revision.declaration
    lines = [f"description: {declaration.description if declaration.description is not None else '(none)'}"]
    lines.append("arguments:")
    for argument in declaration.arguments:
        kind = "required" if argument.required else "optional"
        about = f": {argument.description}" if argument.description else ""
        lines.append(f"  {argument.name} ({kind}){about}")
    lines.append("meta:")
    meta = orjson.dumps(dict(declaration.meta), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    lines.extend(f"  {line}" for line in meta.splitlines())
    if revision.config is not None:
        lines.append("config:")
        config = orjson.dumps(revision.config, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
        lines.extend(f"  {line}" for line in config.splitlines())
    if revision.kind == "chat":
        for message in orjson.loads(revision.content):
            if "placeholder" in message:
                lines.append(f"[placeholder: {message['placeholder']}]")
            else:
                lines.append(f"[{message['role']}]")
                lines.extend(message["content"].splitlines() or [""])
    else:
        lines.append("content:")
        lines.extend(revision.content.splitlines() or [""])
    return lines


def unified(name: str, old: Any, old_as: str, new: Any, new_as: str) -> str:
    """The unified diff from `old` to `new` ("" when they read the same); the file headers name
    each side (`name@production (revision 3)`)."""

    def header(revision: Any, selected: str) -> str:
        number = f"revision {revision.revision}" if revision.revision is not None else "unnumbered"
        return f"{name}@{selected} ({number}, {revision.created.isoformat()})"

    lines = difflib.unified_diff(
        _lines(old), _lines(new), fromfile=header(old, old_as), tofile=header(new, new_as), lineterm=""
    )
    return "\n".join(lines)
