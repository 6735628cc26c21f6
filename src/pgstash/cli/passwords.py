"""A password given with `--dsn` is visible to every user of the machine (`ps`, /proc/PID/cmdline)
for as long as the command runs. pgstash warns, and on Linux overwrites it in the process's own
argument memory (the bytes /proc/PID/cmdline shows, found from /proc/self/stat and written
through /proc/self/mem) as soon as the command starts; it was still visible from the exec until
then. The way that never shows it: the DSN in `PGSTASH_DSN`, or no password in the DSN and the
password in a passfile (`~/.pgpass`, or the file `PGPASSFILE` names), which asyncpg reads.
"""

from __future__ import annotations

import os
import re
from urllib.parse import parse_qsl, unquote, urlsplit

from pgstash.connection.pool import redact

__all__ = ["WARNING", "hide_in_command_line", "passwords_in"]

WARNING = (
    "a password given with --dsn is visible to other users (ps) while the command starts: set "
    "PGSTASH_DSN instead, or keep the password in a passfile (~/.pgpass or $PGPASSFILE)"
)
_KEYWORD = re.compile(r"(?i)\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|[^&\s]*)")


def passwords_in(dsn: str) -> list[str]:
    """The password texts `dsn` holds, as they are written in it (URL userinfo, `password=`)."""
    found: list[str] = []
    if "://" in dsn:
        try:
            parts = urlsplit(dsn)
            userinfo = parts.netloc.rpartition("@")[0]
            if ":" in userinfo:
                found.append(userinfo.partition(":")[2])
            found += [value for key, value in parse_qsl(parts.query) if key == "password"]
        except ValueError:
            pass
    found += [match.group(1).strip("'") for match in _KEYWORD.finditer(dsn)]
    found += [unquote(text) for text in found]
    if not found and redact(dsn) != dsn:
        found.append(dsn)  # a form the parsers above missed: hide the whole argument
    # an empty password (`postgres:@host`, as `pgstash server dsn` prints) is no secret
    return sorted({text for text in found if text}, key=len, reverse=True)


def hide_in_command_line(secrets: list[str]) -> bool:
    """Overwrites each of `secrets` with `*` in this process's argument memory; whether it could
    (Linux only: elsewhere, or without /proc, it cannot)."""
    try:
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end: fields 48 and 49
        with open("/proc/self/mem", "r+b", buffering=0) as memory:
            memory.seek(start)
            block = memory.read(end - start)
            hidden = False
            for secret in secrets:
                needle = os.fsencode(secret)
                at = block.find(needle)
                while at >= 0:
                    memory.seek(start + at)
                    memory.write(b"*" * len(needle))
                    hidden = True
                    at = block.find(needle, at + len(needle))
            return hidden
    except (OSError, ValueError, IndexError):
        return False
