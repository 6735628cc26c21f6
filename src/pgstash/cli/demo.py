"""`pgstash demo`: the seed's "Putting it together", end to end on real data.

One connection scope; configurations, instructions, memory and vector search on the docstrings of
the standard library, embedded with WordLlama (`pgstash[embed]`: by meaning, offline), else with the
lexical `HashingEmbedding` (and a line saying so). Prints what happened, with timings. Its tables
and keys carry their own names (`demo_passages`, memory `pgstash-demo`), so the README's examples
never meet them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import attrs

from pgstash.cli.console import progress, table
from pgstash.cli.corpus import Passage, stdlib_passages
from pgstash.connection import Postgres
from pgstash.embedding_models import EMBED_HINT, default_embedding
from pgstash.embeddings import HashingEmbedding
from pgstash.migrations import migrate
from pgstash.stores.configurations import PostgresConfigurationRepository
from pgstash.stores.instructions import (
    InstructionsArgumentDeclaration,
    InstructionsDeclaration,
    PostgresInstructionsRepository,
)
from pgstash.stores.memory import ModelInput, ModelOutput, PostgresModelMemory, ToolRequest, ToolResponse
from pgstash.vectors import PostgresVectorIndex
from pgstash.vectors.filters import AttributeRequirement

LEXICAL_DIMENSION = 384
MODES = ("vector", "text", "hybrid")
BATCH = 500


@attrs.frozen
class AssistantSettings:
    model: str = "small-model"
    temperature: float = 0.2
    max_tokens: int = 512
    search_limit: int = 5


class Timings:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str]] = []

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.rows.append((name, f"{(time.perf_counter() - started) * 1000:.1f} ms"))


def heading(text: str) -> None:
    print(f"\n== {text} ==")


def first_line(text: str, width: int = 70) -> str:
    line = text.strip().splitlines()[0]
    return line if len(line) <= width else line[: width - 1] + "…"


async def run(postgres: Postgres, passages_limit: int | None = None) -> int:
    """Runs the demo on `postgres` (the current pool)."""
    timings = Timings()
    heading("schema")
    with timings.step("migrate"):
        applied = await migrate(postgres)
    print("applied " + ", ".join(applied) if applied else "the schema is current")

    heading("configurations")
    configurations = PostgresConfigurationRepository()
    with timings.step("configuration define"):
        await configurations.define(AssistantSettings(temperature=0.1))
    with timings.step("configuration load (database)"):
        loaded = await configurations.load(AssistantSettings)
    with timings.step("configuration load (cached)"):
        await configurations.load(AssistantSettings)
    history = await configurations.history("AssistantSettings")
    print(f"loaded {loaded!r}; {len(history)} snapshot(s) kept")

    heading("instructions")
    instructions = PostgresInstructionsRepository()
    declaration = InstructionsDeclaration(
        "librarian",
        description="Answers questions about the Python standard library",
        arguments=(
            InstructionsArgumentDeclaration("topic", description="what the user asks about"),
            InstructionsArgumentDeclaration("tone", required=False),
        ),
    )
    with timings.step("instructions define"):
        await instructions.define(
            declaration,
            "You are a librarian of the Python standard library. Answer about {topic}. {tone}"
            " Cite module names in {{braces}}.",
        )
    with timings.step("instructions resolve"):
        resolved = await instructions.resolve("librarian", {"topic": "reading files"})
    print(resolved)

    heading("memory")
    memory = PostgresModelMemory("pgstash-demo", recall_limit=20)
    await memory.forget()
    with timings.step("memory remember (4 elements)"):
        await memory.remember(
            ModelInput("How do I read a file line by line?"),
            ModelOutput("", tool_requests=(ToolRequest("call-1", "search_docs", {"query": "read lines"}),)),
            ModelInput("", tool_responses=(ToolResponse("call-1", "search_docs", "io.TextIOBase.readline"),)),
            ModelOutput("Iterate over the file object, or call readline()."),
            variables={"user": "demo", "turns": 1},
        )
    with timings.step("memory recall"):
        recall = await memory.recall(limit=4)
    print(f"variables {recall.variables}; a window of 4 holds {len(recall.context)} element(s):")
    for element in recall.context:
        print(f"  {type(element).__name__}: {element.content or '(tool exchange)'}")

    heading("vector index")
    passages = stdlib_passages(limit=passages_limit)
    print(f"{len(passages)} docstrings from {len({p.module for p in passages})} standard-library modules")
    embedding: Any = default_embedding()
    table_name = "demo_passages"
    if embedding is None:
        print(f"embedding: HashingEmbedding (lexical: shared words, not meaning); for meaning: {EMBED_HINT}")
        embedding, table_name = HashingEmbedding(LEXICAL_DIMENSION), "demo_passages_lexical"
    else:
        print("embedding: WordLlama (l2_supercat, 256 dimensions, from its wheel: no network)")
    dimension = embedding.dimension
    index = PostgresVectorIndex(embedding=embedding)
    # The HNSW index is built from the data after loading: inserting into it costs a graph search
    # per row (about 500 rows/s against tens of thousands without it).
    # text="text": the server also keeps a tsvector of each docstring, for text and hybrid search.
    await index.create_table(Passage, dimension=dimension, index=None, text="text", table=table_name)
    await index.delete(Passage, everything=True, table=table_name)
    with (
        timings.step(f"vector index ({len(passages)} passages)"),
        progress("indexing", len(passages), "passages") as advance,
    ):
        for offset in range(0, len(passages), BATCH):
            await index.index(
                Passage, values=passages[offset : offset + BATCH], attribute="text", table=table_name
            )
            done = min(offset + BATCH, len(passages))
            advance(done, done)

    with timings.step("HNSW index build"):
        await index.create_table(Passage, dimension=dimension, text="text", table=table_name)

    searches: Sequence[tuple[str, str, dict[str, Any]]] = (
        ("read a file line by line", "plain", {}),
        (
            "parse command line arguments",
            "only functions: kind == 'function'",
            {"requirements": AttributeRequirement.equal("kind", "function")},
        ),
        ("shrink data to save space", "score >= 0.25", {"score_threshold": 0.25}),
        ("json encoder", "MMR re-ranked", {"rerank": True}),
    )
    for text, described, options in searches:
        with timings.step(f"search {text!r}"):
            found = await index.search_scored(Passage, query=text, limit=5, table=table_name, **options)
        heading(f"search {text!r} ({described})")
        print(
            table(
                [(f"{score:.3f}", p.name, first_line(p.text)) for p, score in found],
                ("score", "name", "docstring"),
                right=(0,),
            )
        )

    # An exact identifier, where a lexical vector is weakest and full text strongest, and two
    # questions in words: the three modes side by side (hybrid fuses the other two, RRF).
    for text in ("TimeoutError", "read a file line by line", "wait with a timeout"):
        with timings.step(f"vector, text and hybrid {text!r}"):
            modes = [
                await index.search(Passage, query=text, limit=3, mode=mode, table=table_name)
                for mode in MODES
            ]
        heading(f"vector, text and hybrid search {text!r}")
        rows = [
            (rank, *(found[rank - 1].name if rank <= len(found) else "" for found in modes))
            for rank in (1, 2, 3)
        ]
        print(table(rows, ("#", *MODES), right=(0,)))

    heading("timings")
    print(table(timings.rows, ("step", "time"), right=(1,)))
    return 0
