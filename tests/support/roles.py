"""Login roles for tests of privileges: unique names (roles are server-wide, and xdist workers may
share a server), dropped with everything they own afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

PASSWORD = "reliability-secret"


def as_role(dsn: str, role: str, password: str = PASSWORD) -> str:
    """The DSN for the same server and database, logging in as `role`."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role}:{password}@{host}"))


@asynccontextmanager
async def login_roles(
    admin: asyncpg.Connection, *prefixes: str, password: str = PASSWORD
) -> AsyncIterator[list[str]]:
    """`async with login_roles(admin, "pgstash_app", ...) as (app, ...)`: one role per prefix,
    named `<prefix>_<8 hex>`, that logs in with `password`; afterwards (as the superuser `admin`
    connects as) whatever they own is dropped, their grants revoked, and the roles dropped."""
    suffix = uuid.uuid4().hex[:8]
    names = [f"{prefix}_{suffix}" for prefix in prefixes]
    created: list[str] = []
    try:
        for name in names:
            await admin.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
            created.append(name)
        yield names
    finally:
        await admin.execute("RESET ROLE")
        if created:
            await admin.execute(f"DROP OWNED BY {', '.join(created)} CASCADE")
            await admin.execute(f"DROP ROLE {', '.join(created)}")
