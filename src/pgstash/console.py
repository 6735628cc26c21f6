"""What the command line prints: plain-text tables and a progress bar on stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["progress", "table"]


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain-text table, columns padded to their widest cell."""
    cells = [[str(cell) for cell in header], *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def progress(label: str, done: int, total: int, started: float) -> None:
    """One progress line on stderr, rewritten in place; ends with a newline when done."""
    width = 30
    filled = width * done // max(total, 1)
    rate = done / max(time.perf_counter() - started, 1e-9)
    bar = f"[{'#' * filled}{'.' * (width - filled)}]"
    sys.stderr.write(f"\r  {label}{bar} {done}/{total} ({rate:,.0f} rows/s)")
    if done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()
