"""The wheel carries queries/ and schema/, so a non-editable install works from any directory."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from pgstash.resources import resource_dir

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_ships_every_query_and_migration(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("pgstash-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("queries", "schema"):
        for path in resource_dir(folder).rglob("*.sql"):
            relative = path.relative_to(resource_dir(folder)).as_posix()
            assert f"pgstash/{folder}/{relative}" in names
    assert "pgstash/py.typed" in names
