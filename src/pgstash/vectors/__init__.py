"""The pgvector index: `PostgresVectorIndex` (index.py), a thin facade that makes one
`VectorTable` per call (table.py: pool, table, model, converter, embedders, the table's facts
from facts.py) and hands it to what writes (write/: ingest, binary COPY, keys, bulk loads, index
builds, create_table's DDL, delete) or searches (search/: `SearchOptions`, vector, text and hybrid
search, planning, MMR). Shared by both: input checks (inputs.py), payloads and the converter
(payloads.py, payload_keys.py), filters (filters.py), the scan gate (gate.py) and the text column
(text_column.py)."""

from pgstash.vectors.index import PostgresVectorIndex
from pgstash.vectors.inputs import table_name

__all__ = ["PostgresVectorIndex", "table_name"]
