"""The README as a newcomer follows it: the quickstart's shell block runs as written (but the
`pip install` line) twice in a new folder, and every ```python block runs, as written, on a fresh
server migrated by the "Run the examples" block, after `pgstash demo`, twice in a row."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import PGSTASH, pgstash

README = Path(__file__).resolve().parent.parent / "README.md"
TEXT = README.read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, re.S)


def section(heading: str) -> str:
    start = TEXT.index(f"\n## {heading}\n")
    end = TEXT.find("\n## ", start + 1)
    return TEXT[start : end if end != -1 else len(TEXT)]


def shell_block(heading: str) -> str:
    (block,) = re.findall(r"```sh\n(.*?)```", section(heading), re.S)[:1]
    return block


def test_the_readme_has_examples() -> None:
    assert len(BLOCKS) >= 4


def test_the_quickstart_is_one_screen_and_no_prose_line_is_over_120() -> None:
    assert len(section("Quickstart").strip().splitlines()) <= 30
    code = False
    for number, line in enumerate(TEXT.splitlines(), 1):
        if line.startswith("```"):
            code = not code
        elif not code:
            assert len(line) <= 120, f"README.md:{number} has {len(line)} characters"


def user_env(**extra: str) -> dict[str, str]:
    """A shell as a pip user has it: `pgstash` and `python` on PATH, no PGSTASH_* set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGSTASH_")}
    return env | {"PATH": f"{Path(PGSTASH).parent}{os.pathsep}{env.get('PATH', '')}"} | extra


def run_shell(script: str, folder: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=folder,
        env=user_env(**extra),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.process
def test_the_quickstart_runs_as_written_twice(tmp_path: Path) -> None:
    script = "\n".join(line for line in shell_block("Quickstart").splitlines() if "pip install" not in line)
    try:
        first = run_shell(script, tmp_path)
        assert first.returncode == 0, first.stderr
        second = run_shell(script, tmp_path)
        assert second.returncode == 0, second.stderr
    finally:
        pgstash("server", "stop", "--data-dir", str(tmp_path / ".pgstash"))
    for result in (first, second):
        lines = result.stdout.splitlines()
        kitten = next(line for line in lines if line.lstrip().startswith("1 "))
        assert " n1 " in kitten  # by meaning: "a kitten napping in the sun" finds the cat
        assert any(line.startswith('{"id":"n2"') for line in lines)  # "pay the government": taxes
    assert "unchanged" in second.stdout
    assert "ingested 3 rows" in first.stdout


def run_example(block: str, dsn: str, folder: Path) -> subprocess.CompletedProcess[str]:
    script = folder / "example.py"
    script.write_text(block, encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)],
        env=user_env(PGSTASH_DSN=dsn),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=folder,
    )


@pytest.mark.process
def test_the_examples_pass_on_a_fresh_database_after_the_demo_twice(empty_dsn: str, tmp_path: Path) -> None:
    """As the "Run the examples" block: migrate, then the examples; here after the demo."""
    assert "pgstash migrate" in shell_block("Run the examples")
    assert "unset PGSTASH_DSN" in shell_block("Run the examples")
    migrated = pgstash("migrate", "--dsn", empty_dsn)
    assert migrated.returncode == 0, migrated.stderr
    demo = pgstash("demo", "--limit", "200", "--dsn", empty_dsn)
    assert demo.returncode == 0, demo.stderr
    for attempt in (1, 2):
        for number, block in enumerate(BLOCKS):
            result = run_example(block, empty_dsn, tmp_path)
            assert result.returncode == 0, f"run {attempt}, block{number}: {result.stderr}"
