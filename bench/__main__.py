"""`make bench`: every store's workloads against raw asyncpg, one markdown table.

python -m bench [--scale full|tiny|million] [--dsn DSN] [--only documents memory ...]
"""

from __future__ import annotations

from bench import bulk, documents, hybrid, labels, memory, pooler, precision, quantize, split, v3, vectors
from bench.common import Runner, main

RUNNERS: dict[str, Runner] = {
    "documents": documents.run,
    "labels": labels.run,  # instructions labels: resolve(label=) and a label move's lag (issue 27)
    "memory": memory.run,
    "vectors": vectors.run,
    "split": split.run,  # HNSW top-10 by layers: statement path, + models, the search (issue 22)
    "hybrid": hybrid.run,  # full text, hybrid search and keyed ingest (issue 14)
    "bulk": bulk.run,  # index into a new HNSW table against COPY then CREATE INDEX (issue 13)
    "precision": precision.run,  # float32 against float16 tables (issue 13)
    "pooler": pooler.run,  # through PgBouncer in transaction mode against direct (issue 24)
    "v3": v3.run,  # indexed payload fields, documents as chunk sets (issue 26)
    "quantize": quantize.run,  # float32, float16 and binary+re-rank HNSW; --scale million (issue 26)
}

if __name__ == "__main__":
    main(RUNNERS)
