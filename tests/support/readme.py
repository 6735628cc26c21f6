"""What tests read out of README.md: its Python examples and its Deployment section's SQL."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
"""Every ```python block of the README, in order."""


def deployment_blocks() -> list[str]:
    """Every SQL block of the README's Deployment section, in order."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## Deployment\n") :]
    return re.findall(r"```sql\n(.*?)```", section, re.S)


def deployment_grants() -> list[str]:
    """The SQL blocks of the README's Deployment section: the tables of migrate, then a vector
    table's (`chunk`)."""
    blocks = [block for block in deployment_blocks() if not block.startswith("-- as a superuser")]
    assert len(blocks) == 2, "the README's Deployment section has two sql blocks of grants"
    return blocks


def database_preparation() -> str:
    """The README's superuser block: REVOKE CREATE on public, the extension, the role's timeouts."""
    (block,) = [block for block in deployment_blocks() if block.startswith("-- as a superuser")]
    return block
