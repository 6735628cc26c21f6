"""Runs the real `pgstash` command in a subprocess, as a user would, and reads what it wrote."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from pgstash import PostgresConnectionPool

PGSTASH = str(Path(sys.executable).with_name("pgstash"))


def pgstash(
    *args: str, cwd: Path | None = None, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`pgstash ARGS...` with PGSTASH_DSN unset unless `env` sets it; output captured as text."""
    environment = {k: v for k, v in os.environ.items() if k != "PGSTASH_DSN"} | (env or {})
    return subprocess.run(
        [PGSTASH, *args],
        cwd=cwd,
        input=stdin,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def fetch(dsn: str, sql: str) -> Any:
    """One value read from the database (outside any event loop, as a command's caller would)."""

    async def go() -> Any:
        async with PostgresConnectionPool.of(dsn=dsn) as postgres:
            return await postgres.fetch_value(sql)

    return asyncio.run(go())
