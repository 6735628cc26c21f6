"""What the command line prints: tables and progress, with `rich` (the extra `pgstash[cli]`).

`rich` is imported here only, when a table or a bar is drawn: `import pgstash` never loads it.
A bar is drawn only on a terminal; in a pipe or CI, progress is a few plain lines on stderr.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

from pgstash.errors import ConfigurationError

__all__ = ["human_size", "progress", "table"]

CLI_HINT = 'the command line needs its extra: pip install "pgstash[cli]"'


def _require_rich() -> None:
    try:
        import rich  # noqa: F401
    except ImportError as error:
        raise ConfigurationError(CLI_HINT) from error


def table(rows: Sequence[Sequence[Any]], header: Sequence[str], *, right: Collection[int] = ()) -> str:
    """A plain-text table; columns `right` and columns holding only numbers are right-aligned."""
    _require_rich()
    from rich import box
    from rich.console import Console
    from rich.table import Table

    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, highlight=False)
    for column, name in enumerate(header):
        numbers = bool(rows) and all(
            isinstance(row[column], int | float) and not isinstance(row[column], bool) for row in rows
        )
        grid.add_column(name, justify="right" if column in right or numbers else "left", no_wrap=True)
    for row in rows:
        grid.add_row(
            *(
                f"{cell:,}" if isinstance(cell, int) and not isinstance(cell, bool) else str(cell)
                for cell in row
            )
        )
    out = io.StringIO()
    Console(file=out, width=1000, color_system=None, force_terminal=False, emoji=False).print(grid)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines() if line.strip())


def human_size(size: int) -> str:
    """Bytes in one unit style: `8.0 KiB`, `1.5 MiB`, `2.0 GiB` (one decimal, powers of 1024)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@contextlib.contextmanager
def progress(label: str, total: int | None, unit: str = "rows") -> Iterator[Callable[[int, int], None]]:
    """Yields `advance(done, rows)`: `done` out of `total` (None: unknown), `rows` written so far.

    On a terminal: a rich progress bar on stderr, ended by a newline even on Ctrl-C. Elsewhere: a
    plain line at most every 5 seconds and one at the end."""
    if sys.stderr.isatty():
        _require_rich()
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(
            TextColumn(label),
            BarColumn(),
            TextColumn("{task.fields[rows]:,} rows"),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr),
        )
        task = bar.add_task(label, total=total, rows=0)
        with bar:
            yield lambda done, rows: bar.update(task, completed=done, rows=rows)
        return
    started = last = time.perf_counter()
    state = {"rows": 0}

    def advance(done: int, rows: int) -> None:
        nonlocal last
        state["rows"] = rows
        now = time.perf_counter()
        if now - last >= 5.0:
            last = now
            share = f" ({100 * done // total}%)" if total else ""
            print(f"{label}: {rows:,} {unit}{share}, {now - started:.0f} s", file=sys.stderr, flush=True)

    yield advance
