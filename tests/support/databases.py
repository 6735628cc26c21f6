"""The test server and its databases.

Each pytest process (each xdist worker) migrates one template database and keeps one working
database cloned from it. A test that asks for `database_dsn` gets the working database; when the
test ends, the working database is reset to the template's state: other sessions ended, tables the
test created dropped, the template's empty tables truncated, planner statistics cleared. A test
that changed anything else (a function, a trigger, a setting of the database, a grant, a schema)
leaves a catalog that no longer matches the template's fingerprint, and the working database is
then dropped and cloned again, as every test used to get. Tests that need a database of their own
(an empty one, or one they keep for a module) clone it with `fresh_database`; a module whose tests
each start from the same rows fills a template once (`filled_template`) and clones it (`copy_of`).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

import pgstash
from pgstash import PostgresConnectionPool

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
"""This pytest process's name: `gw0`, `gw1`... under xdist, else `main`."""

_RUN = f"{WORKER}_{uuid.uuid4().hex[:6]}"  # processes sharing a server (PGSTASH_TEST_DSN) never meet
TEMPLATE_DATABASE = f"pgstash_template_{_RUN}"
EMPTY_TEMPLATE_DATABASE = f"pgstash_empty_template_{_RUN}"
WORKING_DATABASE = f"pgstash_test_{_RUN}"

# Everything a test could change in its database but rows and tables of its own: one text, compared
# with the template's after each reset. Object identities are by name, not oid. The fingerprinting
# session's own temporary function and view (pgstash_test_seeded) are left out: they live in its
# pg_temp_N, whose N differs from one session to the next.
FINGERPRINT = """
SELECT md5(string_agg(line, E'\\n' ORDER BY line)) FROM (
    SELECT format('class %s.%s %s %s %s %s %s', n.nspname, c.relname, c.relkind, c.relowner::regrole,
                  c.relacl, c.reloptions, c.relpersistence)
    FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
      AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
    UNION ALL
    SELECT format('column %s.%s %s %s %s %s %s %s', c.oid::regclass, a.attname,
                  format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attisdropped, a.attgenerated,
                  pg_get_expr(d.adbin, d.adrelid), a.attacl)
    FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attnum > 0 AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
      AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
    UNION ALL
    SELECT format('index %s', pg_get_indexdef(i.indexrelid)) FROM pg_index AS i
    JOIN pg_class AS c ON c.oid = i.indrelid JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
    UNION ALL
    SELECT format('constraint %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
    FROM pg_constraint
    WHERE connamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
    UNION ALL
    SELECT format('trigger %s %s %s', tgrelid::regclass, tgname, tgenabled) FROM pg_trigger
    WHERE NOT tgisinternal
    UNION ALL
    SELECT format('rule %s %s', ev_class::regclass, rulename) FROM pg_rewrite
    WHERE ev_class >= 16384 AND rulename <> '_RETURN'
    UNION ALL
    SELECT format('policy %s %s', polrelid::regclass, polname) FROM pg_policy
    UNION ALL
    SELECT format('function %s %s %s %s %s', p.oid::regprocedure, p.proowner::regrole, md5(p.prosrc),
                  p.proacl, p.proconfig)
    FROM pg_proc AS p
    WHERE p.pronamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
      AND p.pronamespace <> pg_my_temp_schema()
    UNION ALL
    SELECT format('type %s %s', t.oid::regtype, t.typowner::regrole) FROM pg_type AS t
    WHERE t.typnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
      AND t.typnamespace <> pg_my_temp_schema() AND t.typrelid = 0 AND t.typelem = 0
    UNION ALL
    SELECT format('enum %s %s', enumtypid::regtype, enumlabel) FROM pg_enum
    UNION ALL
    SELECT format('operator %s', oid::regoperator) FROM pg_operator WHERE oid >= 16384
    UNION ALL
    SELECT format('text search %s', oid::regconfig) FROM pg_ts_config WHERE oid >= 16384
    UNION ALL
    SELECT format('collation %s', collname) FROM pg_collation WHERE oid >= 16384
    UNION ALL
    SELECT format('cast %s %s', castsource::regtype, casttarget::regtype) FROM pg_cast WHERE oid >= 16384
    UNION ALL
    SELECT format('schema %s %s %s', nspname, nspowner::regrole, nspacl) FROM pg_namespace
    WHERE nspname NOT LIKE 'pg\\_temp\\_%' AND nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
    UNION ALL
    SELECT format('extension %s %s %s', extname, extversion, extnamespace::regnamespace) FROM pg_extension
    UNION ALL
    SELECT format('default acl %s %s %s', defaclrole::regrole, defaclobjtype, defaclacl) FROM pg_default_acl
    UNION ALL
    SELECT format('event trigger %s', evtname) FROM pg_event_trigger
    UNION ALL
    SELECT format('publication %s', pubname) FROM pg_publication
    UNION ALL
    SELECT format('statistics %s', stxname) FROM pg_statistic_ext
    UNION ALL
    SELECT format('setting %s %s', setrole, setconfig) FROM pg_db_role_setting
    WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
    UNION ALL
    SELECT format('database %s %s %s %s', datallowconn, datconnlimit, datacl, datdba::regrole)
    FROM pg_database WHERE datname = current_database()
    UNION ALL
    SELECT format('large objects %s', count(*)) FROM pg_largeobject_metadata
    UNION ALL
    SELECT format('prepared transactions %s', count(*)) FROM pg_prepared_xacts
    WHERE database = current_database()
    UNION ALL
    SELECT format('rows %s %s', relation, md5(content)) FROM pgstash_test_seeded
) AS everything (line)
"""

# The template's tables with rows after the migration (the ledger): kept, and their rows fingerprinted.
SEEDED = """
CREATE FUNCTION pg_temp.pgstash_test_rows(relation regclass) RETURNS text LANGUAGE plpgsql AS $$
DECLARE content text;
BEGIN
    EXECUTE format('SELECT coalesce(string_agg(t::text, E''\\n'' ORDER BY t::text), '''') FROM %s AS t',
                   relation) INTO content;
    RETURN content;
END $$;
CREATE TEMPORARY VIEW pgstash_test_seeded AS
SELECT relation, pg_temp.pgstash_test_rows(relation::regclass) AS content
FROM unnest($SEEDED$::text[]) AS relation;
"""

USER_TABLES = """
SELECT c.oid::regclass::text AS name, c.relkind::text AS kind
FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.relispartition = false
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'
  AND NOT EXISTS (SELECT FROM pg_depend AS d WHERE d.objid = c.oid AND d.deptype = 'e')
"""


def with_database(dsn: str, database: str) -> str:
    """The DSN pointing at another database on the same server."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def clone(server: str, template: str, name: str | None = None) -> str:
    """A new database copied from `template` (a unique name unless given); returns its name."""
    name = name or f"pgstash_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    finally:
        await admin.close()
    return name


async def drop(server: str, name: str) -> None:
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@asynccontextmanager
async def fresh_database(server: str, template: str = TEMPLATE_DATABASE) -> AsyncIterator[str]:
    """The DSN of a database of its own, cloned from `template` (the migrated one by default),
    dropped afterwards."""
    name = await clone(server, template)
    try:
        yield with_database(server, name)
    finally:
        await drop(server, name)


@contextmanager
def filled_template(server: str, fill: Callable[[str], object]) -> Iterator[str]:
    """A database cloned from the migrated template and filled once by `fill(its DSN)` (say, by
    `pgstash` commands), for a module whose tests each start from a copy of it (`copy_of`): the
    fill runs once, not once a test. Its name; dropped afterwards."""
    name = asyncio.run(clone(server, TEMPLATE_DATABASE))
    try:
        fill(with_database(server, name))
        yield name
    finally:
        asyncio.run(drop(server, name))


@contextmanager
def copy_of(server: str, template: str) -> Iterator[str]:
    """`fresh_database` for a test outside an event loop: the DSN of a clone of `template`."""
    name = asyncio.run(clone(server, template))
    try:
        yield with_database(server, name)
    finally:
        asyncio.run(drop(server, name))


async def prepare_templates(server: str) -> None:
    """The migrated template and the empty one, made anew."""
    admin = await asyncpg.connect(server)
    try:
        for name in (TEMPLATE_DATABASE, EMPTY_TEMPLATE_DATABASE):
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    async with PostgresConnectionPool.of(dsn=with_database(server, TEMPLATE_DATABASE)) as postgres:
        await pgstash.migrate(postgres)


async def drop_templates(server: str) -> None:
    for name in (TEMPLATE_DATABASE, EMPTY_TEMPLATE_DATABASE):
        await drop(server, name)


async def _fingerprint(connection: asyncpg.Connection, seeded: list[str]) -> str:
    await connection.execute(_seeded_view(seeded))
    try:
        value: str = await connection.fetchval(FINGERPRINT)
    finally:
        await connection.execute(
            "DROP VIEW pg_temp.pgstash_test_seeded; DROP FUNCTION pg_temp.pgstash_test_rows(regclass)"
        )
    return value


def _seeded_view(seeded: list[str]) -> str:
    quoted = ", ".join("'" + name.replace("'", "''") + "'" for name in seeded)
    return SEEDED.replace("$SEEDED$", f"ARRAY[{quoted}]")


class WorkingDatabase:
    """This process's working database: cloned once from the template, reset after each test."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.dsn = with_database(server, WORKING_DATABASE)
        self._tables: set[str] = set()
        self._seeded: list[str] = []
        self._emptied: list[str] = []
        self._fingerprint = ""

    async def create(self) -> None:
        """Clones the template and records what a reset brings the database back to."""
        await clone(self.server, TEMPLATE_DATABASE, WORKING_DATABASE)
        connection = await asyncpg.connect(self.dsn)
        try:
            rows = await connection.fetch(USER_TABLES)
            self._tables = {row["name"] for row in rows}
            tables = sorted(row["name"] for row in rows if row["kind"] in ("r", "p"))
            self._seeded = [t for t in tables if await connection.fetchval(f"SELECT EXISTS (TABLE {t})")]
            self._emptied = [t for t in tables if t not in self._seeded]
            self._fingerprint = await _fingerprint(connection, self._seeded)
        finally:
            await connection.close()

    async def reset(self) -> bool:
        """Back to the template's state; cloned anew when a cheap reset cannot prove it. True when
        the cheap reset sufficed, False when the database was cloned again."""
        try:
            if await self._reset():
                return True
        except Exception:  # a session that would not end, a lock that would not come: start afresh
            pass
        await self.create()
        return False

    async def _reset(self) -> bool:
        connection = await asyncpg.connect(self.dsn, server_settings={"lock_timeout": "10s"})
        try:
            await connection.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            extra = [row for row in await connection.fetch(USER_TABLES) if row["name"] not in self._tables]
            kinds = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
            drops = [
                f"DROP {kinds.get(row['kind'], 'FOREIGN TABLE')} IF EXISTS {row['name']} CASCADE"
                for row in extra
            ]
            emptied = ", ".join(self._emptied)
            await connection.execute(
                ";\n".join(
                    [
                        *drops,
                        *([f"TRUNCATE {emptied} RESTART IDENTITY CASCADE"] if emptied else []),
                        "DELETE FROM pg_catalog.pg_statistic WHERE starelid >= 16384",
                        "DELETE FROM pg_catalog.pg_statistic_ext_data WHERE stxoid >= 16384",
                        "SELECT pg_stat_reset()",
                    ]
                )
            )
            return await _fingerprint(connection, self._seeded) == self._fingerprint
        finally:
            await connection.close()

    async def drop(self) -> None:
        await drop(self.server, WORKING_DATABASE)
