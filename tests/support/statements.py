"""What a call sent: the statements it ran (`sent`, shared with the benchmarks' recorder) or the
names its queries logged (`logged`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from bench.common import sent

from pgstash import Postgres

__all__ = ["logged", "sent"]


def logged(monkeypatch: pytest.MonkeyPatch, keep: Callable[[str], bool] = lambda _: True) -> list[str]:
    """The names of the queries every pool logs (`Postgres.log`) from now on, those `keep` keeps
    (a live list; it stops when `monkeypatch` is undone)."""
    ran: list[str] = []
    log = Postgres.log

    def recording(self: Postgres, name: str, rows: int, seconds: float) -> None:
        if keep(name):
            ran.append(name)
        log(self, name, rows, seconds)

    monkeypatch.setattr(Postgres, "log", recording)
    return ran
