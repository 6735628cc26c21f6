"""Every ```python block of README.md runs, as written, against a fresh migrated database, and
all of them pass when run one after another, twice, on the same database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


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


def test_the_examples_pass_twice_in_a_row_on_one_database(database_dsn: str, tmp_path: Path) -> None:
    for attempt in (1, 2):
        for number, block in enumerate(BLOCKS):
            result = run_example(block, database_dsn, tmp_path)
            assert result.returncode == 0, f"run {attempt}, block{number}: {result.stderr}"


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_a_readme_example_runs(block: str, database_dsn: str, tmp_path: Path) -> None:
    result = run_example(block, database_dsn, tmp_path)
    assert result.returncode == 0, result.stderr
