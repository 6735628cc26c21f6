"""What the command line prints: tables and progress.

`rich` (the extra `pgstash[cli]`) draws the tables and a progress bar on a terminal when it is
installed; without it every command prints the same content as plain text. It is imported here
only: `import pgstash` never loads it. In a pipe or CI, progress is one line per phase (reading,
writing, building index) on stderr, plus a line every few seconds during a long phase.
"""

from __future__ import annotations

import contextlib
import functools
import io
import sys
import time
from collections.abc import Collection, Iterator, Sequence
from typing import Any

__all__ = ["Progress", "human_size", "progress", "table"]


@functools.cache
def _has_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _cell(cell: Any) -> str:
    return f"{cell:,}" if isinstance(cell, int) and not isinstance(cell, bool) else str(cell)


def _plain(rows: Sequence[Sequence[Any]], header: Sequence[str], right: set[int]) -> str:
    texts = [[_cell(c) for c in row] for row in rows]
    widths = [max([len(name)] + [len(row[i]) for row in texts]) for i, name in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(cells)
        ).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in texts)])


def table(rows: Sequence[Sequence[Any]], header: Sequence[str], *, right: Collection[int] = ()) -> str:
    """A plain-text table; columns `right` and columns holding only numbers are right-aligned."""
    aligned = {
        column
        for column in range(len(header))
        if column in right
        or (
            bool(rows)
            and all(
                isinstance(row[column], int | float) and not isinstance(row[column], bool) for row in rows
            )
        )
    }
    if not _has_rich():
        return _plain(rows, header, aligned)
    from rich import box
    from rich.console import Console
    from rich.table import Table

    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, highlight=False)
    for column, name in enumerate(header):
        grid.add_column(name, justify="right" if column in aligned else "left", no_wrap=True)
    for row in rows:
        grid.add_row(*(_cell(cell) for cell in row))
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


class Progress:
    """`advance(done, rows)` (also the object's call) and `phase(name)`; see `progress`."""

    def __init__(self, label: str, total: int | None, unit: str, bar: Any = None) -> None:
        self.label, self.total, self.unit, self.bar = label, total, unit, bar
        self.task: Any = None
        self.started = self.last = time.perf_counter()
        self.current = ""

    def phase(self, name: str) -> None:
        """A new phase: its name on the bar, or one line in a pipe."""
        if name == self.current:
            return
        self.current = name
        if self.bar is not None:
            self.bar.update(self.task, description=f"{self.label}: {name}")
        else:
            print(f"{self.label}: {name}", file=sys.stderr, flush=True)

    def advance(self, done: int, rows: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done, rows=rows)
            return
        now = time.perf_counter()
        if now - self.last >= 5.0:
            self.last = now
            share = f" ({100 * done // self.total}%)" if self.total else ""
            print(
                f"{self.label}: {self.current or 'working'}, {rows:,} {self.unit}{share}, "
                f"{now - self.started:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    __call__ = advance


@contextlib.contextmanager
def progress(label: str, total: int | None, unit: str = "rows") -> Iterator[Progress]:
    """Yields a `Progress`: `advance(done, rows)`, `done` out of `total` (None: unknown), `rows`
    so far, and `phase(name)`. On a terminal with `rich`: a bar on stderr naming the phase, ended
    by a newline even on Ctrl-C. Elsewhere: one line per phase and one every 5 seconds."""
    if not (sys.stderr.isatty() and _has_rich()):
        yield Progress(label, total, unit)
        return
    from rich.console import Console
    from rich.progress import BarColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    bar = Bar(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[rows]:,} " + unit),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
    )
    shown = Progress(label, total, unit, bar)
    shown.task = bar.add_task(label, total=total, rows=0)
    with bar:
        yield shown
