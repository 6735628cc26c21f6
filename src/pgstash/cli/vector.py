"""`pgstash vector create-table NAME --dimension D [--precision float16] [--text-field F]`,
`pgstash vector ingest NAME FILE.jsonl [--key-field K]`, `pgstash vector search NAME QUERY
[--mode M]` and `pgstash vector build-index NAME [--index M]`.

Ingest is `vector_ingest.py` (one file, one transaction: every row or none; with `--key-field`,
rows whose key is already stored replace them). `search` embeds its query with the same
`HashingEmbedding` as `ingest --text-field` (vector and hybrid modes). `build-index` rebuilds the
index concurrently, printing `pg_stat_progress_create_index`'s phase and counts on stderr.
"""

from __future__ import annotations

import argparse
import sys

import orjson

from pgstash.cli.console import table
from pgstash.cli.ingest import Record, converter, ingest, size_of
from pgstash.connection import Postgres
from pgstash.embeddings import HashingEmbedding
from pgstash.sql.templates import validate_identifier
from pgstash.vectors import PostgresVectorIndex
from pgstash.vectors.filters import AttributeRequirement
from pgstash.vectors.write.builds import BuildProgress

INDEXES_HELP = (
    "the index on embedding that serves nearest-neighbour search: hnsw (default; best recall and "
    "speed, slower to build), ivfflat (faster to build, build it after loading), or none (exact "
    "search, any dimension). The GIN index on payload serves equality and contains filters; the "
    "B-tree on created serves listing newest first; both are made with any --index."
)


def configure(parser: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create-table",
        parents=[common],
        help="create a vector table and its indexes",
        description=INDEXES_HELP,
    )
    create.add_argument("name", help="table name: a-z, 0-9 and _, at most 63 characters, not pg_...")
    create.add_argument("--dimension", type=int, required=True, help="the vectors' length")
    create.add_argument("--index", choices=("hnsw", "ivfflat", "none"), default="hnsw", help=INDEXES_HELP)
    create.add_argument(
        "--precision",
        choices=("float32", "float16"),
        default="float32",
        help="float32 stores vector (default); float16 stores halfvec: half the table and index "
        "size, HNSW and IVFFlat up to 4,000 dimensions, components within +-65,504",
    )
    create.add_argument(
        "--text-field",
        help="also index this payload field (a dotted path) for full-text and hybrid search: a "
        "tsvector column the server generates from it, and a GIN index (rewrites a table holding rows)",
    )
    create.add_argument(
        "--language",
        default="english",
        help="the text search configuration of --text-field (default english)",
    )
    ingest = actions.add_parser(
        "ingest",
        parents=[common],
        help="load a JSON-lines file into a vector table, all rows or none",
        description="Loads one JSON object per line, in one transaction: every row, or none.",
    )
    ingest.add_argument("name", help="an existing vector table (pgstash vector create-table)")
    ingest.add_argument("file", help="a JSON-lines file, or - for standard input")
    source = ingest.add_mutually_exclusive_group(required=True)
    source.add_argument("--text-field", help="embed this field's text (a string) with HashingEmbedding")
    source.add_argument("--vector-field", help="use this field's ready vector (a list of numbers)")
    ingest.add_argument(
        "--key-field",
        help="the field (a string or integer) that identifies a row: a row whose key is stored "
        "already replaces it, so loading a file again changes nothing",
    )
    build = actions.add_parser(
        "build-index",
        parents=[common],
        help="rebuild a vector table's nearest-neighbour index without blocking reads or writes",
        description="Builds the table's HNSW or IVFFlat index again from its rows with CREATE INDEX "
        "CONCURRENTLY / REINDEX INDEX CONCURRENTLY (IVFFlat: lists from today's row count), printing "
        "the build's phase and progress on stderr.",
    )
    build.add_argument("name", help="a vector table")
    build.add_argument(
        "--index",
        choices=("hnsw", "ivfflat"),
        default=None,
        help="the method (default: the one it has, else the one create-table noted, else hnsw)",
    )
    search = actions.add_parser(
        "search",
        parents=[common],
        help="search a vector table: vector, full-text or hybrid",
        description="Prints the best rows with their scores. The vector and hybrid modes embed QUERY "
        "with HashingEmbedding of the table's dimension (lexical: shared words, not meaning), as "
        "ingest --text-field does; the text and hybrid modes need a table made with "
        "create-table --text-field.",
    )
    search.add_argument("name", help="a vector table")
    search.add_argument("query", help="the text to search for (web-search syntax in text mode)")
    search.add_argument("--mode", choices=("vector", "text", "hybrid"), default="vector")
    search.add_argument("--limit", type=int, default=10, help="how many rows (default 10)")
    search.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="only rows whose payload field PATH equals VALUE (JSON, else text); repeatable",
    )


async def _table_dimension(postgres: Postgres, name: str, action: str) -> int | None:
    """The vector table's dimension; None when no table has that name. A table of that name that
    is not a vector table is refused here, with one line."""
    validate_identifier(name)
    found = await postgres.run("status_relation", table_name=name)
    if found is None:
        return None
    if found["dimension"] is None:
        raise ValueError(
            f"table {name!r} exists and is not a vector table (no vector column `embedding`): "
            f"{action} needs another name"
        )
    dimension: int = found["dimension"]
    return dimension


async def create_table(postgres: Postgres, args: argparse.Namespace) -> int:
    await _table_dimension(postgres, args.name, "create-table")
    index = PostgresVectorIndex(postgres, converter=converter())
    await index.create_table(
        Record,
        dimension=args.dimension,
        index=None if args.index == "none" else args.index,
        table=args.name,
        text=args.text_field,
        language=args.language,
        precision=args.precision,
    )
    text = f", text {args.text_field!r} ({args.language})" if args.text_field else ""
    kind = "halfvec" if args.precision == "float16" else "vector"
    print(f"table {args.name}: {kind}({args.dimension}) ({args.precision}), index {args.index}{text}")
    return 0


def _requirements(pairs: list[str]) -> AttributeRequirement | None:
    """`--where PATH=VALUE ...`: every field equal to its value (JSON, else the text as it is)."""
    found: AttributeRequirement | None = None
    for pair in pairs:
        path, separator, text = pair.partition("=")
        if not separator or not path:
            raise ValueError(f"--where takes PATH=VALUE, got {pair!r}")
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = text
        requirement = AttributeRequirement.equal(path, value)
        found = requirement if found is None else found & requirement
    return found


async def search(postgres: Postgres, args: argparse.Namespace) -> int:
    where = _requirements(args.where)
    dimension = await _table_dimension(postgres, args.name, "search")
    if dimension is None:
        raise ValueError(f"no vector table {args.name!r}: run pgstash vector create-table {args.name} first")
    embedding = HashingEmbedding(dimension)
    index = PostgresVectorIndex(postgres, embedding=embedding, converter=converter())
    found = await index.search_scored(
        Record, query=args.query, mode=args.mode, limit=args.limit, requirements=where, table=args.name
    )
    rows = [
        (rank, f"{score:.4f}", orjson.dumps(record.payload).decode()[:100])
        for rank, (record, score) in enumerate(found, 1)
    ]
    print(table(rows, ("#", "score", "payload")))
    return 0


async def run(postgres: Postgres, args: argparse.Namespace) -> int:
    if args.action == "create-table":
        return await create_table(postgres, args)
    if args.action == "search":
        return await search(postgres, args)
    if args.action == "build-index":
        return await build_index(postgres, args)
    dimension = await _table_dimension(postgres, args.name, "ingest")
    if dimension is None:
        raise ValueError(
            f"no vector table {args.name!r}: run pgstash vector create-table {args.name} --dimension D first"
        )
    if args.file == "-":
        return await ingest(postgres, args, sys.stdin.buffer, "<stdin>", None, dimension)
    with open(args.file, "rb") as stream:
        return await ingest(postgres, args, stream, args.file, size_of(stream), dimension)


async def build_index(postgres: Postgres, args: argparse.Namespace) -> int:
    if await _table_dimension(postgres, args.name, "build-index") is None:
        raise ValueError(f"no vector table {args.name!r}")
    index = PostgresVectorIndex(postgres, converter=converter())
    last = [""]

    def report(sample: BuildProgress) -> None:
        line = (
            f"build-index {args.name}: {sample.phase}  blocks {sample.blocks_done:,}/"
            f"{sample.blocks_total:,}  tuples {sample.tuples_done:,}/{sample.rows:,}"
        )
        if line != last[0]:
            last[0] = line
            print(line, file=sys.stderr, flush=True)

    seconds = await index.build_index(Record, index=args.index, table=args.name, progress=report)
    print(f"index of {args.name} built in {seconds:.2f} s, without blocking reads or writes")
    return 0

