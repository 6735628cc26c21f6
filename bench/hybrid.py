"""Full-text and hybrid search, and upserts by key (issue 14), against raw asyncpg doing the same.

- ingest by key: `index(..., key=...)` (ids from the keys, the replaced rows deleted in the
  COPY's transaction) into an empty table and replacing every row, against `index` without a key,
  on a table with the text column and no ANN index (goal: within 1.5x);
- text and hybrid top-10 p50/p95: pgstash against raw asyncpg replaying the very statements
  pgstash sent (`bench.common.versus_raw`; goal: within 1.1x of asyncpg's pool with a no-op
  reset), for a rare identifier and a two-word query, with the number of rows each matches;
  hybrid p50 against vector-only HNSW top-10 (goal: under 3x), both from their own runs and
  interleaved in the same rounds (with hybrid as one statement, `text_timeout=None`, and the text
  arm alone beside them).

Texts are made-up words with Zipf frequencies (seeded), so that word counts look like prose;
every 997th text also holds the identifier `JSONDecodeError`.

Run alone: `.venv/bin/python -m bench.hybrid --scale tiny`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import attrs
import numpy as np

from bench.common import Call, Raw, Result, Scale, alternating, main, pgstash_and_raw, versus_raw
from bench.vectors import mixture
from pgstash import Postgres, PostgresVectorIndex

STORE = "hybrid"
TABLE = "bench_hybrid"
POOL_SIZE = 4
GOAL = 1.1  # text and hybrid top-10 within 1.1x of raw asyncpg's pool
SYLLABLES = "ka lo me ta ri su no ve pa di zo bu ne fi ro gu la mi te xo".split()


@attrs.frozen
class Passage:
    identifier: str
    body: str
    rank: int


def vocabulary(size: int = 3_000) -> list[str]:
    rng = np.random.default_rng(0)
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES, int(rng.integers(2, 4)))))
    return sorted(words)


def passages(count: int, seed: int = 1, length: int = 30) -> list[Passage]:
    words = vocabulary()
    rng = np.random.default_rng(seed)
    ranks = np.minimum(rng.zipf(1.2, (count, length)) - 1, len(words) - 1)
    made = []
    for i, row in enumerate(ranks):
        body = " ".join(words[r] for r in row) + (" JSONDecodeError" if i % 997 == 0 else "")
        made.append(Passage(f"p{i}", body, i))
    return made


async def keyed_ingest(
    postgres: Postgres, index: PostgresVectorIndex, count: int, scale: Scale
) -> list[Result]:
    """`index` with and without a key, alternating, each on a freshly emptied table."""
    values = passages(count)
    vectors = mixture(count, scale.dimension, seed=1)

    def attribute(passage: Passage) -> object:
        return vectors[passage.rank]

    async def plain() -> None:
        await index.index(Passage, values=values, attribute=attribute, table=TABLE)

    async def keyed() -> None:
        await index.index(Passage, values=values, attribute=attribute, table=TABLE, key="identifier")

    async def empty(which: int) -> None:
        await postgres.execute(f"TRUNCATE {TABLE}")
        if which == 2:  # replacing every row: the keyed rows are there first (untimed)
            await keyed()

    rounds = max(2, min(5, 200_000 // count))
    plain_stats, *timed = await alternating((plain, keyed, keyed), rounds, before=empty)
    plain_p50 = plain_stats.p50
    results = []
    for stats, label in zip(timed, ("into an empty table", f"replacing all {count:,}"), strict=True):
        ratio = stats.p50 / plain_p50
        goal = "meets" if ratio <= 1.5 else "misses"
        results.append(
            Result(
                STORE,
                f"ingest by key, {label} ({count:,})",
                None,
                stats,
                f"{ratio:.2f}x the same ingest without a key ({plain_p50 * 1000:,.0f} ms p50; "
                f"{goal} the goal <= 1.5x); text column, dimension {scale.dimension}",
            )
        )
    return results


async def matches(postgres: Postgres, words: str) -> int:
    found: int = await postgres.fetch_value(
        f"SELECT count(*) FROM {TABLE}, websearch_to_tsquery('english', $1) AS q WHERE text_vector @@ q",
        words,
    )
    return found


async def searches(
    postgres: Postgres, raw: Raw, index: PostgresVectorIndex, count: int, scale: Scale
) -> list[Result]:
    """Text and hybrid top-10 against raw asyncpg replaying the same statements; hybrid against
    vector-only HNSW top-10."""
    query = mixture(1, scale.dimension, seed=2)[0]
    words = vocabulary()
    embedded = attrs.evolve(index, embedding=_constant(query))
    size = f"({count:,})"

    def searching(searcher: PostgresVectorIndex, text: str, mode: str) -> Call:
        return lambda: searcher.search(Passage, query=text, mode=mode, limit=10, table=TABLE)

    vector = await versus_raw(
        postgres,
        raw,
        STORE,
        f"search HNSW top-10, for hybrid's ratio {size}",
        lambda: embedded.search(Passage, query="x", limit=10, table=TABLE),
        scale.rounds,
    )
    results = [vector]
    for label, text in (("rare identifier", "JSONDecodeError"), ("two words", f"{words[40]} {words[90]}")):
        found = await matches(postgres, text)
        results.append(
            await versus_raw(
                postgres,
                raw,
                STORE,
                f"text top-10, {label} {size}",
                searching(index, text, "text"),
                scale.rounds,
                f"{found:,} matching rows",
                goal=GOAL,
            )
        )
        hybrid = await versus_raw(
            postgres,
            raw,
            STORE,
            f"hybrid top-10, {label} {size}",
            searching(embedded, text, "hybrid"),
            scale.rounds,
            f"{found:,} matching rows, 40 candidates per arm",
            goal=GOAL,
        )
        times = hybrid.pgstash.p50 / vector.pgstash.p50
        verdict = "meets" if times < 3 else "misses"
        results.append(
            attrs.evolve(hybrid, note=f"{hybrid.note}; {times:.1f}x HNSW top-10 ({verdict} the goal < 3x)")
        )
        results.append(await against_floor(embedded, index, text, label, size, scale.rounds))
    return results


async def against_floor(
    embedded: PostgresVectorIndex, index: PostgresVectorIndex, text: str, label: str, size: str, rounds: int
) -> Result:
    """Hybrid top-10 and its floor, HNSW top-10, run alternately in the same rounds (on a shared
    machine two separate runs meet different load), with what it is made of: hybrid as one
    statement (`text_timeout=None`: the default's statement timeout costs a transaction, 4 round
    trips instead of 1) and the text arm alone (text top-10, default settings)."""
    single = attrs.evolve(embedded, text_timeout=None)

    def hybrid(searcher: PostgresVectorIndex) -> Call:
        return lambda: searcher.search(Passage, query=text, mode="hybrid", limit=10, table=TABLE)

    calls: tuple[Call, ...] = (
        lambda: embedded.search(Passage, query="x", limit=10, table=TABLE),
        hybrid(embedded),
        hybrid(single),
        lambda: index.search(Passage, query=text, mode="text", limit=10, table=TABLE),
    )
    await alternating(calls, 3)
    floor, ours, one, alone = await alternating(calls, rounds)
    times = ours.p50 / floor.p50
    verdict = "meets" if times < 3 else "misses"
    return Result(
        STORE,
        f"hybrid top-10 against HNSW top-10, interleaved, {label} {size}",
        None,
        ours,
        f"{times:.2f}x HNSW top-10 ({floor.p50 * 1000:.3f} ms p50 in the same rounds; {verdict} the "
        f"goal < 3x); as one statement (text_timeout=None) {one.p50 / floor.p50:.2f}x; the text arm "
        f"alone (text top-10) {alone.p50 / floor.p50:.2f}x; at p5 (the least loaded calls) "
        f"{ours.p5 / floor.p5:.2f}x, {one.p5 / floor.p5:.2f}x and {alone.p5 / floor.p5:.2f}x",
    )


def _constant(vector: np.ndarray) -> Callable[[Sequence[str]], Awaitable[np.ndarray]]:
    async def embed(texts: Sequence[str]) -> np.ndarray:
        return np.stack([vector] * len(texts))

    return embed


async def run(dsn: str, scale: Scale) -> list[Result]:
    results: list[Result] = []
    async with pgstash_and_raw(dsn, pool_size=POOL_SIZE) as (postgres, raw):
        index = PostgresVectorIndex(postgres)
        try:
            await postgres.execute(f"DROP TABLE IF EXISTS {TABLE}")
            await index.create_table(Passage, dimension=scale.dimension, index=None, table=TABLE, text="body")
            for count in scale.vectors:
                results += await keyed_ingest(postgres, index, count, scale)
                await index.create_table(Passage, dimension=scale.dimension, table=TABLE, text="body")
                await postgres.execute(f"VACUUM ANALYZE {TABLE}")
                results += await searches(postgres, raw, index, count, scale)
                await postgres.execute(f"DROP TABLE {TABLE}")
                await index.create_table(
                    Passage, dimension=scale.dimension, index=None, table=TABLE, text="body"
                )
        finally:
            await postgres.execute(f"DROP TABLE IF EXISTS {TABLE}")
    return results


if __name__ == "__main__":
    main({"hybrid": run})
