"""`pgstash status`, written for a DBA: where it is connected, the migrations with their dates and
checksums, and pgstash's tables and vector tables with exact row counts, sizes, and each vector
table's dimension and precision (float32: `vector`, float16: `halfvec`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pgstash.cli.console import human_size, table
from pgstash.connection import Postgres
from pgstash.migrations import applied, migrations
from pgstash.sql.catalogue import query
from pgstash.sql.composer import compose
from pgstash.vectors.write import bulk

__all__ = ["REPLICAS_VARIABLE", "report"]

REPLICAS_VARIABLE = "PGSTASH_REPLICAS"  # `pgstash status`: replica DSNs, separated by spaces

EXACT_BELOW = 1_000_000  # tables estimated to hold more rows show the planner's estimate, marked ~
_CREATED_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS\s+(\w+)", re.IGNORECASE)


def pgstash_tables() -> list[str]:
    """The tables pgstash's migrations create, and its tracking table."""
    names = {"pgstash_migrations"}
    for migration in migrations():
        names.update(match.lower() for match in _CREATED_TABLE.findall(migration.sql))
    return sorted(names)


def _where(dsn: str | None, data_dir: str, address: str | None, port: int | None) -> str:
    """The server's address as the client reached it, without user or password."""
    if dsn is None:
        return f"the embedded server in {Path(data_dir).resolve()}"
    parts = urlsplit(dsn) if "://" in dsn else None
    host = (parts.hostname if parts else None) or (
        parse_qs(parts.query).get("host", [None])[0] if parts else None
    )
    host = host or address or "local socket"
    return f"{host}:{port}" if port and not host.startswith("/") else str(host)


async def report(postgres: Postgres, dsn: str | None, data_dir: str) -> str:
    """The whole status report as text."""
    who = await postgres.run("status_connection")
    lines = [
        f"connected to PostgreSQL {who['server_version']} at "
        f"{_where(dsn, data_dir, who['address'], who['port'])}, database {who['database']}, "
        f"user {who['username']}, schema {who['schema_name']}"
    ]
    vector = await postgres.run("status_extension", extension_name="vector")
    if vector["installed"]:
        lines.append(f"pgvector {vector['installed']}")
    elif vector["available"]:
        lines.append(f"pgvector {vector['available']} available, not created: run pgstash migrate")
    else:
        lines.append("pgvector not available on this server: install the pgvector package on it")

    if postgres.replicas is not None:
        lines += ["", "replicas (reads go to those up; lag: how long its oldest WAL not replayed has waited)"]
        lines.append(table(postgres.replicas.describe(), ("replica", "state")))

    done = {row["name"]: row for row in await _applied_rows(postgres)}
    files = {m.name: m for m in migrations()}
    rows = []
    for name in sorted(files.keys() | done.keys()):
        record = done.get(name)
        if record is None:
            rows.append((name, "pending", "", files[name].checksum[:12]))
            continue
        state = "applied"
        if name not in files:
            state = "applied, file missing"
        elif files[name].checksum != record["checksum"]:
            state = "applied, FILE CHANGED since"
        when = record["applied"].strftime("%Y-%m-%d %H:%M:%S %Z") if record["applied"] else ""
        rows.append((name, state, when, record["checksum"][:12]))
    lines += ["", "migrations", table(rows, ("name", "state", "applied", "checksum"))]

    tables = await postgres.run("status_tables", table_names=pgstash_tables(), exact_below=EXACT_BELOW)
    if tables:
        lines += ["", "tables (rows: exact count; ~ marks the planner's estimate, for large tables)"]
        lines.append(
            table(
                [
                    (
                        r["name"],
                        "vector" if r["dimension"] is not None else "pgstash",
                        f"~{r['row_estimate']:,}"
                        if r["row_estimate"] is not None
                        else f"{await _count(postgres, r['name']):,}",
                        human_size(r["size_bytes"]),
                        "" if r["dimension"] is None else r["dimension"],
                        r["vector_precision"] or "",
                        _methods(r["indexes"]),
                    )
                    for r in tables
                ],
                ("table", "kind", "rows", "size", "dimension", "precision", "indexes"),
                right=(2, 3, 4),
            )
        )
        lines += _dropped_indexes(tables)
    else:
        lines += ["", "no pgstash tables yet: run pgstash migrate"]
    return "\n".join(lines)


def _methods(indexes: str | None) -> str:
    """`btree (a_pkey), hnsw (a_embedding_idx), gin (...)` as `hnsw, gin, btree`: the methods,
    once each, so a line fits a terminal (`\\d TABLE` in psql names them)."""
    if not indexes:
        return "none"
    methods = [part.split(" (")[0].strip() for part in indexes.split("), ")]
    return ", ".join(sorted(dict.fromkeys(methods), key=lambda m: (m == "btree", m)))


def _dropped_indexes(tables: list[Any]) -> list[str]:
    """A line for each vector table whose ANN index a bulk load dropped (its record: write/bulk.py)."""
    lines = []
    for row in tables:
        dropped = bulk.dropped_of(row["table_comment"])
        if not dropped:
            continue
        names = ", ".join(f"{index.method} ({index.name})" for index in dropped)
        if row["bulk_locked"]:
            lines.append(f"{row['name']}: a bulk load is running; it builds {names} again at its commit")
        else:
            lines.append(
                f"{row['name']}: its ANN index was dropped by a bulk load that never committed: "
                f"{names} is missing and searches scan the whole table; the next index() or "
                f"create_table builds it again, or run: pgstash vector build-index {row['name']}"
            )
    return ["", *lines] if lines else []


async def _count(postgres: Postgres, name: str) -> int:
    """An exact count(*) of one listed table (its name comes from the catalog and is quoted)."""
    count: int = await postgres.run_statement(compose(query("status_count"), slots={"table": name}))
    return count


async def _applied_rows(postgres: Postgres) -> list[dict[str, Any]]:
    if not await applied(postgres):
        return []
    return [dict(row) for row in await postgres.run("migrations_applied")]
