"""`make bench`: every store's workloads against raw asyncpg, one markdown table.

python -m bench [--scale full|tiny] [--dsn DSN] [--only documents memory ...]
"""

from __future__ import annotations

from bench import bulk, documents, hybrid, labels, memory, precision, vectors
from bench.common import Runner, main

RUNNERS: dict[str, Runner] = {
    "documents": documents.run,
    "labels": labels.run,  # instructions labels: resolve(label=) and a label move's lag (issue 27)
    "memory": memory.run,
    "vectors": vectors.run,
    "hybrid": hybrid.run,  # full text, hybrid search and keyed ingest (issue 14)
    "bulk": bulk.run,  # index into a new HNSW table against COPY then CREATE INDEX (issue 13)
    "precision": precision.run,  # float32 against float16 tables (issue 13)
}

if __name__ == "__main__":
    main(RUNNERS)
