"""The pgvector index: `PostgresVectorIndex` (index.py) and what it is made of: input checks and
embedding (inputs.py), payloads and the converter (payloads.py), binary COPY ingest (ingest.py),
table facts and search planning (planning.py), and create_table's DDL (tables.py)."""

from pgstash.vectors.index import PostgresVectorIndex
from pgstash.vectors.inputs import table_name

__all__ = ["PostgresVectorIndex", "table_name"]
