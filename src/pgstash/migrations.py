"""`migrate()`: applies the numbered files of `schema/` once each, in order, under a lock."""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import attrs

from pgstash.connection import Postgres, logger
from pgstash.errors import DatabaseError, MigrationError
from pgstash.sql.resources import resource_dir
from pgstash.sql.statements import Statement
from pgstash.sql.templates import named

__all__ = ["Migration", "migrate", "migrations"]

_MIGRATION_FILE = re.compile(r"\d{4}_[a-z0-9_]+\.sql")
# pg_advisory_lock key: the first 8 bytes of sha256("pgstash.migrate"), as a signed bigint.
LOCK_KEY = int.from_bytes(hashlib.sha256(b"pgstash.migrate").digest()[:8], "big", signed=True)


@attrs.frozen(slots=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def migrations(folder: Path | None = None) -> list[Migration]:
    """The migration files (`NNNN_name.sql`) of `schema/`, in order."""
    folder = folder or resource_dir("schema")
    return [
        Migration(path.stem, path.read_text(encoding="utf-8"))
        for path in sorted(folder.iterdir())
        if _MIGRATION_FILE.fullmatch(path.name)
    ]


async def applied(postgres: Postgres) -> dict[str, str]:
    """Name -> checksum of every applied migration ({} before the first `migrate`)."""
    if not await postgres.run("migrations_tracking_exists"):
        return {}
    return {row["name"]: row["checksum"] for row in await postgres.run("migrations_applied")}


async def migrate(postgres: Postgres, folder: Path | None = None) -> list[str]:
    """Applies the migrations not yet applied, each in its own transaction under a transaction
    advisory lock (safe from many processes at once, and through a transaction pooler: no
    session state), and returns the names it applied. An applied migration whose file has
    changed raises `MigrationError` before anything is applied."""
    files = migrations(folder)
    done: list[str] = []
    while True:
        async with postgres.transaction():
            # each transaction takes the lock and reads what is applied: a process that waited
            # sees the migrations another one applied meanwhile
            await postgres.run("migrations_lock", lock_key=LOCK_KEY)
            with _needs_the_owner():
                await postgres.run("migrations_create_table")
                recorded = await applied(postgres)
            _check_unchanged(files, recorded)
            pending = [migration for migration in files if migration.name not in recorded]
            if not pending:
                return done
            await _apply(postgres, pending[0])
        done.append(pending[0].name)
        logger.info("applied migration %s", pending[0].name)


@contextlib.contextmanager
def _needs_the_owner() -> Iterator[None]:
    """A permission error (SQLSTATE 42501) as a `MigrationError` saying who runs `migrate`."""
    try:
        yield
    except DatabaseError as error:
        if error.sqlstate != "42501":
            raise
        raise MigrationError(
            f"migrate must run as the role that owns pgstash's tables (it creates tables, indexes "
            f"and the vector extension), and this role may not: {error}. Run `pgstash migrate` "
            "with the owner's DSN; the application's role needs only the grants listed in the "
            "README's Deployment section"
        ) from error


def _check_unchanged(files: list[Migration], recorded: dict[str, str]) -> None:
    for migration in files:
        checksum = recorded.get(migration.name)
        if checksum is not None and checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.name} was applied with checksum {checksum[:12]}, but its "
                f"file now has {migration.checksum[:12]}: an applied migration must not change; "
                "put the change in a new numbered file under schema/"
            )


async def require_extension(postgres: Postgres, name: str) -> None:
    """`MigrationError` saying how to get the extension when the server cannot create it."""
    if not await postgres.run("extension_available", extension_name=name):
        raise MigrationError(
            f'the PostgreSQL server has no "{name}" extension to install: install pgvector on '
            "it (for example the postgresql-NN-pgvector package, or the pgvector/pgvector image), "
            "or leave PGSTASH_DSN unset to use pgstash's embedded server, which ships it"
        )


async def _apply(postgres: Postgres, migration: Migration) -> None:
    """Runs one migration and records it, in the caller's transaction (in a savepoint, so that
    its failure says which file failed; the transaction then rolls back whole)."""
    if re.search(r"CREATE\s+EXTENSION\s+IF\s+NOT\s+EXISTS\s+vector", migration.sql, re.I):
        await require_extension(postgres, "vector")
    try:
        async with postgres.transaction():
            name = f"schema/{migration.name}"  # named after its file in pg_stat_statements and the log
            await postgres.run_statement(Statement(name, "execute", named(migration.sql, name), ()))
            await postgres.run("migrations_record", name=migration.name, checksum=migration.checksum)
    except DatabaseError as error:
        raise MigrationError(f"migration {migration.name} failed and was rolled back: {error}") from error
