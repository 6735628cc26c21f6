"""Every ```python block of README.md runs, as written, in order, on a fresh migrated database, and
all of them pass again when run a second time on the same database (each block runs twice: once
on the database as the blocks before it left it, once more after all of them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.readme import BLOCKS


def test_the_readme_has_examples() -> None:
    assert len(BLOCKS) >= 4


def run_example(block: str, dsn: str, folder: Path) -> subprocess.CompletedProcess[str]:
    script = folder / "example.py"
    script.write_text(block, encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "PGSTASH_DSN": dsn},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=folder,
    )


@pytest.mark.process
def test_the_examples_pass_twice_in_a_row_on_one_database(database_dsn: str, tmp_path: Path) -> None:
    for attempt in (1, 2):
        for number, block in enumerate(BLOCKS):
            result = run_example(block, database_dsn, tmp_path)
            assert result.returncode == 0, f"run {attempt}, block{number}: {result.stderr}"
