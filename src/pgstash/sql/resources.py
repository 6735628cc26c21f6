"""Where the SQL lives: `queries/` and `schema/`, shipped inside the wheel or read from a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # src/pgstash


def resource_dir(name: str) -> Path:
    """The folder `name` (`queries` or `schema`): inside the installed package when the wheel
    carries it, else at the top of the source checkout (editable installs, the test suite)."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"pgstash's {name}/ folder is missing next to {_PACKAGE}; reinstall pgstash")
