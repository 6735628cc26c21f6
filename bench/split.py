"""Where an HNSW top-10 search's time goes, against raw asyncpg replaying its statement (issue 22
item 7): the `vectors` row measured in three layers, each by `versus_raw` (the raw pool's replay,
the pinned connection's, the call; rotated every round), several turns, the layers taking turns:

- `statement`: `Postgres.run_statement` of the very statement the search sends, nothing more
  (pgstash's statement path: acquire, liveness, send, log, release);
- `models`: that, then the converter's structure hook on each row's payload: what any caller that
  returns the models (raw asyncpg included) must add to the replay;
- `search`: `PostgresVectorIndex.search` itself (options, table facts, query check, plan, models).

One turn of one layer is one `versus_raw` of `scale.call_rounds` rounds (2,000), so its ratio
carries that turn's machine noise; the median over turns is what the split reads, and the note
gives the gap over raw at p50 in microseconds.

Run: `.venv/bin/python -m bench.split [--turns N]` (embedded server in a temporary folder), or
`python -m bench --only split` with the rest (one turn there).
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from bench.common import Result, Scale, Stats, main, pgstash_and_raw, record, versus_raw
from bench.vectors import EXACT, HNSW, POOL_SIZE, Chunk, build, mixture
from pgstash import PostgresVectorIndex

STORE = "split"
TURNS = 5


async def run(dsn: str, scale: Scale, turns: int = 1) -> list[Result]:
    """The three layers of an HNSW top-10 search at 20,000 rows (`scale.vectors[0]`), `turns` each."""
    async with pgstash_and_raw(dsn, pool_size=POOL_SIZE) as (postgres, raw):
        index = PostgresVectorIndex(postgres)
        count = scale.vectors[0]
        try:
            await postgres.execute(f"DROP TABLE IF EXISTS {EXACT}")
            await index.create_table(Chunk, dimension=scale.dimension, index=None, table=EXACT)
            await build(postgres, index, count, scale)
            query = mixture(1, scale.dimension, seed=2)[0]

            def search() -> Awaitable[list[Chunk]]:
                return index.search(Chunk, query=query, limit=10, table=HNSW)

            (statement,) = (await record(postgres, search)).statements
            hook = index.converter.get_structure_hook(Chunk)

            async def models() -> list[Chunk]:
                rows = await postgres.run_statement(statement)
                return [hook(row["payload"], Chunk) for row in rows if row["payload"] is not None]

            layers: dict[str, Callable[[], Awaitable[Any]]] = {
                "statement": lambda: postgres.run_statement(statement),
                "models": models,
                "search": search,
            }
            seen: dict[str, list[Result]] = {name: [] for name in layers}
            for _ in range(turns):
                for name, call in layers.items():
                    seen[name].append(await versus_raw(postgres, raw, STORE, name, call, scale.call_rounds))
        finally:
            await postgres.execute(f"DROP TABLE IF EXISTS {HNSW}, {EXACT}")
    return [_median(name, found, count) for name, found in seen.items()]


def _median(name: str, found: list[Result], count: int) -> Result:
    """The turn of median ratio, its note listing every turn's ratio and gap."""
    ordered = sorted(found, key=lambda result: result.ratio or 0.0)
    middle = ordered[len(ordered) // 2]
    raw: Stats = middle.raw  # type: ignore[assignment]
    gaps = [(result.pgstash.p50 - result.raw.p50) * 1e6 for result in found if result.raw is not None]
    turns = ", ".join(f"{result.ratio:.2f}x" for result in found)
    note = (
        f"{len(found)} turn(s): {turns}; gap over raw p50 median {statistics.median(gaps):.0f} us; "
        f"raw {raw.p50 * 1000:.3f} ms p50 in the median turn"
    )
    return Result(STORE, f"HNSW top-10 ({count:,}): {name}", raw, middle.pgstash, note, middle.pinned)


def _turns() -> int:
    if "--turns" in sys.argv:
        at = sys.argv.index("--turns")
        turns = int(sys.argv[at + 1])
        del sys.argv[at : at + 2]
        return turns
    return TURNS


if __name__ == "__main__":
    chosen = _turns()

    async def turned(dsn: str, scale: Scale) -> list[Result]:
        return await run(dsn, scale, chosen)

    main({STORE: turned})
