"""What writes to a vector table: ingest, binary COPY, keyed rows, bulk loads, index builds,
create_table's DDL and delete."""
