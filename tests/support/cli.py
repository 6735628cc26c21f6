"""Runs the real `pgstash` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
