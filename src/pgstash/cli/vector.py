"""`pgstash vector create-table NAME [--dimension D] [--precision float16] [--text-field F]`,
`ingest NAME FILE.jsonl [--key-field K]`, `search` (search.py), `list` (the tables), `delete`,
`drop` (rows.py), `list NAME` and `get` (reads.py) and `build-index NAME [--index M]`.

Ingest is ingest.py (one file, one transaction: every row or none; with `--key-field`, rows whose
key is already stored replace them). `build-index` rebuilds the index concurrently, printing
`pg_stat_progress_create_index`'s phase and counts on stderr. Only create-table and ingest create
the embedded server's folder; the others need a database that exists.
"""

from __future__ import annotations

import argparse
import sys

from pgstash.cli import reads, rows, search
from pgstash.cli.ingest import Record, converter, ingest, size_of
from pgstash.connection import Postgres
from pgstash.embedding_models import EMBED_HINT, wordllama_installed
from pgstash.errors import ConfigurationError
from pgstash.sql import names
from pgstash.sql.templates import validate_identifier
from pgstash.vectors import PostgresVectorIndex
from pgstash.vectors.write.builds import BuildProgress

CREATING = ("create-table", "ingest")  # the actions that may create the embedded server
BULK = ("ingest", "build-index")  # long statements expected: no slow-query warnings

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
    create.add_argument(
        "--dimension",
        type=int,
        help="the vectors' length (default 256, WordLlama's, when pgstash[embed] is installed)",
    )
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
    source.add_argument("--text-field", help="embed this field's text (a string) with --embedding")
    source.add_argument("--vector-field", help="use this field's ready vector (a list of numbers)")
    ingest.add_argument(
        "--embedding",
        choices=("wordllama", "hashing"),
        help="how --text-field is embedded: wordllama (by meaning, 256 dimensions; the default when "
        "pgstash[embed] is installed) or hashing (lexical: shared words; the default otherwise)",
    )
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
    found = actions.add_parser(
        "search",
        parents=[common],
        help="search a vector table: vector, full-text or hybrid",
        description="Prints the best rows with their scores. A QUERY text is embedded as the "
        "table's rows were (the embedding vector ingest recorded); a table of ready vectors takes "
        "--vector FILE or --mode text. The text and hybrid modes need create-table --text-field.",
    )
    search.configure(found)
    rows.configure(actions, common)


async def _table_dimension(postgres: Postgres, name: str, action: str) -> int | None:
    """The vector table's dimension; None when no table has that name. A table of that name that
    is not a vector table is refused here, with one line."""
    validate_identifier(name)
    found = await postgres.run(names.status_relation, table_name=name)
    if found is None:
        return None
    if found["dimension"] is None:
        raise ValueError(
            f"table {name!r} exists and is not a vector table (no vector column `embedding`): "
            f"{action} needs another name"
        )
    dimension: int = found["dimension"]
    return dimension


async def _rows(postgres: Postgres, name: str) -> int:
    from pgstash.cli.status import _count

    return await _count(postgres, name)


async def create_table(postgres: Postgres, args: argparse.Namespace) -> int:
    await _table_dimension(postgres, args.name, "create-table")
    if args.dimension is None:
        if not wordllama_installed():
            raise ConfigurationError(
                f"vector create-table {args.name} needs --dimension D (no default embedding: {EMBED_HINT})"
            )
        args.dimension = 256
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


async def _existing(postgres: Postgres, name: str, action: str) -> int:
    dimension = await _table_dimension(postgres, name, action)
    if dimension is None:
        raise ValueError(f"no vector table {name!r}: pgstash vector list shows them")
    return dimension


async def run(postgres: Postgres, args: argparse.Namespace) -> int:
    if args.action == "create-table":
        return await create_table(postgres, args)
    if args.action == "list" and args.name is None:
        if args.where or args.limit is not None or args.after is not None:
            raise ValueError(
                "vector list takes --where, --limit and --after with a table: vector list NAME ..."
            )
        return await rows.listing(postgres, args)
    if args.action == "build-index":
        return await build_index(postgres, args)
    if args.action in ("search", "list", "get", "delete", "drop"):
        dimension = await _existing(postgres, args.name, args.action)
        if args.action == "search":
            return await search.search(postgres, args, dimension)
        if args.action == "list":
            return await reads.page(postgres, args)
        if args.action == "get":
            return await reads.get(postgres, args)
        if args.action == "delete":
            return await rows.delete(postgres, args)
        return await rows.drop(postgres, args, await _rows(postgres, args.name))
    found = await _table_dimension(postgres, args.name, "ingest")
    if found is None:
        raise ValueError(
            f"no vector table {args.name!r}: run pgstash vector create-table {args.name} --dimension "
            f"{256 if wordllama_installed() else 'D'} first"
        )
    dimension = found
    if args.file == "-":
        return await ingest(postgres, args, sys.stdin.buffer, "<stdin>", None, dimension)
    with open(args.file, "rb") as stream:
        return await ingest(postgres, args, stream, args.file, size_of(stream), dimension)


async def build_index(postgres: Postgres, args: argparse.Namespace) -> int:
    await _existing(postgres, args.name, "build-index")
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
