"""Full-text and hybrid search, and upserts by key (issue 14), against raw asyncpg doing the same.

- ingest by key: `index(..., key=...)` (ids from the keys, the replaced rows deleted in the
  COPY's transaction) into an empty table and replacing every row, against `index` without a key,
  on a table with the text column and no ANN index (goal: within 1.5x);
- text and hybrid top-10 p50/p95: pgstash against raw asyncpg replaying the very statements
  pgstash sent (goal: within 1.1x), for a rare identifier and a two-word query, with the number
  of rows each matches; hybrid p50 against vector-only HNSW top-10 (goal: under 3x).

Texts are made-up words with Zipf frequencies (seeded), so that word counts look like prose;
every 997th text also holds the identifier `JSONDecodeError`.

Run alone: `.venv/bin/python -m bench.hybrid --scale tiny`.
"""

from __future__ import annotations

import statistics
import time

import asyncpg
import attrs
import numpy as np

import pgstash
from bench.common import Result, Scale, Stats, main
from bench.vectors import mixture, versus_raw
from pgstash import Postgres, PostgresConnectionPool, PostgresVectorIndex
from pgstash.connection.codecs import register_codecs

STORE = "hybrid"
TABLE = "bench_hybrid"
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

    rounds = max(2, min(5, 200_000 // count))
    samples: dict[str, list[float]] = {"plain": [], "keyed": [], "replacing": []}
    for round_ in range(rounds):
        for which in ("plain", "keyed") if round_ % 2 == 0 else ("keyed", "plain"):
            await postgres.execute(f"TRUNCATE {TABLE}")
            started = time.perf_counter()
            if which == "plain":
                await index.index(Passage, values=values, attribute=attribute, table=TABLE)
                samples["plain"].append(time.perf_counter() - started)
                continue
            await index.index(Passage, values=values, attribute=attribute, table=TABLE, key="identifier")
            samples["keyed"].append(time.perf_counter() - started)
            started = time.perf_counter()
            await index.index(Passage, values=values, attribute=attribute, table=TABLE, key="identifier")
            samples["replacing"].append(time.perf_counter() - started)
    plain = statistics.median(samples["plain"])
    results = []
    for which, label in (("keyed", "into an empty table"), ("replacing", f"replacing all {count:,}")):
        stats = Stats.of(samples[which])
        ratio = stats.p50 / plain
        goal = "meets" if ratio <= 1.5 else "misses"
        results.append(
            Result(
                STORE,
                f"ingest by key, {label} ({count:,})",
                None,
                stats,
                f"{ratio:.2f}x the same ingest without a key ({plain * 1000:,.0f} ms p50; {goal} the goal "
                f"<= 1.5x); text column, dimension {scale.dimension}",
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
    postgres: Postgres, raw: asyncpg.Connection, index: PostgresVectorIndex, count: int, scale: Scale
) -> list[Result]:
    """Text and hybrid top-10 against raw asyncpg replaying the same statements; hybrid against
    vector-only HNSW top-10."""
    query = mixture(1, scale.dimension, seed=2)[0]
    words = vocabulary()
    embedded = attrs.evolve(index, embedding=_constant(query))
    size = f"({count:,})"
    vector = await versus_raw(
        postgres,
        raw,
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
                f"text top-10, {label} {size}",
                lambda text=text: index.search(Passage, query=text, mode="text", limit=10, table=TABLE),
                scale.rounds,
                f"{found:,} matching rows; goal <= 1.1x",
            )
        )
        hybrid = await versus_raw(
            postgres,
            raw,
            f"hybrid top-10, {label} {size}",
            lambda text=text: embedded.search(Passage, query=text, mode="hybrid", limit=10, table=TABLE),
            scale.rounds,
            f"{found:,} matching rows, 40 candidates per arm; goal <= 1.1x",
        )
        times = hybrid.pgstash.p50 / vector.pgstash.p50
        verdict = "meets" if times < 3 else "misses"
        results.append(
            attrs.evolve(hybrid, note=f"{hybrid.note}; {times:.1f}x HNSW top-10 ({verdict} the goal < 3x)")
        )
    return results


def _constant(vector: np.ndarray) -> object:
    async def embed(texts: object) -> np.ndarray:
        return np.stack([vector] * len(texts))  # type: ignore[arg-type]

    return embed


async def run(dsn: str, scale: Scale) -> list[Result]:
    results: list[Result] = []
    async with PostgresConnectionPool.of(dsn=dsn, max_size=4) as postgres:
        await pgstash.migrate(postgres)
        index = PostgresVectorIndex(postgres)
        raw = await asyncpg.connect(dsn)
        await register_codecs(raw)
        try:
            await postgres.execute(f"DROP TABLE IF EXISTS {TABLE}")
            await index.create_table(Passage, dimension=scale.dimension, index=None, table=TABLE, text="body")
            for count in scale.vectors:
                results += await keyed_ingest(postgres, index, count, scale)
                await index.create_table(Passage, dimension=scale.dimension, table=TABLE, text="body")
                await postgres.execute(f"VACUUM ANALYZE {TABLE}")
                found = await searches(postgres, raw, index, count, scale)
                results += [attrs.evolve(result, store=STORE) for result in found]  # versus_raw's
                await postgres.execute(f"DROP TABLE {TABLE}")
                await index.create_table(
                    Passage, dimension=scale.dimension, index=None, table=TABLE, text="body"
                )
        finally:
            await raw.close()
            await postgres.execute(f"DROP TABLE IF EXISTS {TABLE}")
    return results


if __name__ == "__main__":
    main({"hybrid": run})
