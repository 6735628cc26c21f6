"""The rows of the bulk-load tests: a chunk that is only a key and a rank (its vector's row)."""

from __future__ import annotations

import attrs


@attrs.frozen
class Chunk:
    identifier: str
    rank: int = 0


def chunks(count: int, first: int = 0) -> list[Chunk]:
    """`count` chunks `c<first>`, `c<first + 1>`... ranked by their number."""
    return [Chunk(f"c{i}", i) for i in range(first, first + count)]
